package upload_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage/fs"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
	"github.com/hevc-encoder/hevc-encoder/pkg/upload"
)

var (
	clipDir string
	clipMu  sync.Mutex
	clips   = map[string]string{}
)

func TestMain(m *testing.M) {
	code := awstest.Run(m)
	if clipDir != "" {
		os.RemoveAll(clipDir)
	}
	os.Exit(code)
}

var old = time.Now().Add(-time.Hour).Truncate(time.Second)

// clip copies a generated clip (made once per opts) to dst, an hour old.
func clip(t *testing.T, dst string, o mediatest.ClipOpts) {
	t.Helper()
	clipMu.Lock()
	src, ok := clips[fmt.Sprintf("%+v", o)]
	if !ok {
		if clipDir == "" {
			d, err := os.MkdirTemp("", "uploader-clips-*")
			if err != nil {
				t.Fatal(err)
			}
			clipDir = d
		}
		src = filepath.Join(clipDir, strconv.Itoa(len(clips))+".mp4")
		mediatest.Clip(t, src, o)
		clips[fmt.Sprintf("%+v", o)] = src
	}
	clipMu.Unlock()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	write(t, dst, b)
}

func write(t *testing.T, dst string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(dst, old, old); err != nil {
		t.Fatal(err)
	}
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	s, _, err := library.FileSHA256(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keys(t *testing.T, st storage.Store, prefix string) []string {
	t.Helper()
	var out []string
	if err := storage.Walk(context.Background(), st, prefix, func(o storage.Object) error {
		out = append(out, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func put(t *testing.T, st storage.Store, key string, b []byte, md map[string]string) {
	t.Helper()
	if _, err := st.Put(context.Background(), key, bytes.NewReader(b), storage.PutOptions{Size: int64(len(b)), Metadata: md}); err != nil {
		t.Fatal(err)
	}
}

func newUploader(t *testing.T, st storage.Store, root string) *upload.Uploader {
	return &upload.Uploader{Store: st, Log: zerolog.New(zerolog.NewTestWriter(t)).With().Str("service", "s3-uploader").Logger(),
		Cfg: upload.Config{Root: root, Include: "*.mp4", MinAge: 5 * time.Minute, Concurrency: 3}}
}

func fsStore(t *testing.T, dir string) storage.Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := fs.New(dir, "local")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSkipRules builds a library with one file per rule, runs the
// uploader once, and checks what went to TODO/ and why the rest did not;
// then runs it again: nothing more is uploaded.
func TestSkipRules(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	root := t.TempDir()
	st := fsStore(t, "")
	ctx := context.Background()
	p := func(rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }
	h264 := mediatest.ClipOpts{Seconds: 2}
	hevc := mediatest.ClipOpts{Seconds: 2, HEVC: true}

	uploaded := []string{"plain.mp4", "CAMERA.MP4", "odd name + #1 é.mp4", "broken.mp4", "stale-todo.mp4", "done-old.mp4", "failed-changed.mp4"}
	for _, rel := range []string{"plain.mp4", "CAMERA.MP4", "odd name + #1 é.mp4", "stale-todo.mp4", "done-old.mp4", "failed-changed.mp4",
		"converted.mp4", "taken.mp4", "queued.mp4", "done.mp4", "failed.mp4", "fresh.mp4", "excluded/skip.mp4", "a.tmp.mp4", ".hidden/x.mp4"} {
		clip(t, p(rel), h264)
	}
	write(t, p("broken.mp4"), []byte("not a video, but named like one"))
	write(t, p("notes.txt"), []byte("not included"))
	clip(t, p("movie.mov"), h264)
	clip(t, p("result-hevc.mp4"), hevc)            // a result: never uploaded
	clip(t, p("converted-hevc.mp4"), hevc)         // verified sibling
	write(t, p("taken-hevc.mp4"), []byte("other")) // a stranger with the name
	clip(t, p("shortsib.mp4"), mediatest.ClipOpts{Seconds: 3})
	clip(t, p("shortsib-hevc.mp4"), mediatest.ClipOpts{Seconds: 1, HEVC: true}) // HEVC, but not as long
	clip(t, p("hevc.mp4"), hevc)
	write(t, p(".hevc-tmp-123.mp4"), []byte("in progress"))
	now := time.Now()
	os.Chtimes(p("fresh.mp4"), now, now)

	b, _ := os.ReadFile(p("queued.mp4"))
	put(t, st, "TODO/queued.mp4", b, nil)
	b, _ = os.ReadFile(p("stale-todo.mp4"))
	stale := append([]byte{}, b...)
	stale[len(stale)/2] ^= 1
	put(t, st, "TODO/stale-todo.mp4", stale, nil)
	b, _ = os.ReadFile(p("done.mp4"))
	put(t, st, "DONE/done-hevc.mp4", []byte("result"), map[string]string{storage.MetaSourceSize: strconv.Itoa(len(b)), storage.MetaSourceSHA: sha(b)})
	put(t, st, "DONE/done-old-hevc.mp4", []byte("result"), map[string]string{storage.MetaSourceSize: strconv.Itoa(len(b)), storage.MetaSourceSHA: strings.Repeat("0", 64)})
	put(t, st, "FAILED/failed.mp4.json", []byte(fmt.Sprintf(`{"status":"failed","reason":"x","source_size":%d,"source_sha256":%q}`, len(b), sha(b))), nil)
	put(t, st, "FAILED/failed-changed.mp4.json", []byte(fmt.Sprintf(`{"status":"failed","reason":"x","source_size":%d,"source_sha256":%q}`, len(b), strings.Repeat("0", 64))), nil)

	u := newUploader(t, st, root)
	u.Cfg.Exclude = "excluded/*, *.TMP.mp4"
	sum, err := u.Run(ctx)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Logf("summary: %s", sum)
	var got []string
	for _, k := range keys(t, st, library.TodoPrefix) {
		got = append(got, strings.TrimPrefix(k, library.TodoPrefix))
	}
	want := append([]string{"queued.mp4"}, uploaded...)
	sort.Strings(want)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("TODO/ holds\n%v\nwant\n%v", got, want)
	}
	if sum.Uploaded != len(uploaded) || sum.Failed != 0 {
		t.Errorf("uploaded %d, failed %d", sum.Uploaded, sum.Failed)
	}
	wantSkips := map[string]int{
		upload.SkipConverted: 1, upload.SkipSibling: 2, upload.SkipHevc: 1, upload.SkipQueued: 1,
		upload.SkipDone: 1, upload.SkipFailed: 1, upload.SkipTooNew: 1, upload.SkipExcluded: 2,
	}
	for r, n := range wantSkips {
		if sum.Skipped[r] != n {
			t.Errorf("skipped %q: %d, want %d", r, sum.Skipped[r], n)
		}
	}
	if len(sum.Skipped) != len(wantSkips) {
		t.Errorf("skip reasons %v", sum.Skipped)
	}
	attention := strings.Join(sum.Attention, "\n")
	for _, want := range []string{"converted.mp4: kept beside converted-hevc.mp4, an HEVC copy of the same duration (not compared picture by picture, so both are kept)", "taken.mp4: taken-hevc.mp4 exists but is not its HEVC copy", "shortsib.mp4: shortsib-hevc.mp4 exists but is not its HEVC copy (durations differ"} {
		if !strings.Contains(attention, want) {
			t.Errorf("attention lacks %q:\n%s", want, attention)
		}
	}

	// Uploaded objects carry the checksum and the source's size, mtime and
	// SHA-256; the stale TODO/ object was replaced by the current bytes.
	for _, rel := range uploaded {
		obj, err := st.Head(ctx, "TODO/"+rel)
		if err != nil {
			t.Fatal(err)
		}
		fsha := fileSHA(t, p(rel))
		fi, _ := os.Stat(p(rel))
		if obj.SHA256 != fsha || obj.Metadata[storage.MetaSourceSHA] != fsha || obj.Metadata[storage.MetaSourceSize] != strconv.FormatInt(fi.Size(), 10) {
			t.Errorf("%s: object %+v, file sha %s", rel, obj, fsha)
		}
		if mt, err := time.Parse(time.RFC3339Nano, obj.Metadata[storage.MetaSourceMtime]); err != nil || !mt.Equal(fi.ModTime()) {
			t.Errorf("%s: source-mtime %q, file %v", rel, obj.Metadata[storage.MetaSourceMtime], fi.ModTime())
		}
	}
	// The library is untouched.
	if _, err := os.Stat(p("plain.mp4")); err != nil {
		t.Errorf("original moved: %v", err)
	}

	// Second run: idempotent.
	sum2, err := u.Run(ctx)
	if err != nil || sum2.Uploaded != 0 || sum2.Skipped[upload.SkipQueued] != len(uploaded)+1 {
		t.Errorf("second run: %v %s", err, sum2)
	}
}

// TestDryRun uploads nothing and says what it would upload.
// Issue 15, point 5: a.mp4 and a.MP4 in one folder are two works with two
// result keys; a result made before spellings were told apart
// (DONE/b-hevc.mp4 for b.MP4, or b-hevc.mp4 beside it) still counts for a
// lone b.MP4, but not once a b.mp4 exists, whose name it now is. No
// attention note tells anyone to delete an original.
func TestSpellingsInOneFolder(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	root := t.TempDir()
	st := fsStore(t, "")
	ctx := context.Background()
	p := func(rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }
	h264 := mediatest.ClipOpts{Seconds: 2}
	other := mediatest.ClipOpts{Seconds: 3}
	hevc := mediatest.ClipOpts{Seconds: 2, HEVC: true}

	clip(t, p("both/a.mp4"), h264)
	clip(t, p("both/a.MP4"), other)
	clip(t, p("legacy/b.MP4"), h264) // its old-scheme result waits in DONE/
	clip(t, p("legacyboth/c.mp4"), h264)
	clip(t, p("legacyboth/c.MP4"), other) // DONE/legacyboth/c-hevc.mp4 is c.MP4's, old scheme
	clip(t, p("legacysib/d.MP4"), h264)
	clip(t, p("legacysib/d-hevc.mp4"), hevc) // converted under the old scheme, original kept
	clip(t, p("sibboth/e.mp4"), h264)
	clip(t, p("sibboth/e.MP4"), h264)
	clip(t, p("sibboth/e-hevc.mp4"), hevc) // e.mp4's, by name
	clip(t, p("newsib/f.Mp4"), h264)
	clip(t, p("newsib/f-hevc-Mp4.mp4"), hevc) // f.Mp4's result; never uploaded itself
	for _, rel := range []string{"legacy/b.MP4", "legacyboth/c.MP4"} {
		b, _ := os.ReadFile(p(rel))
		old := "DONE/" + strings.TrimSuffix(rel, ".MP4") + "-hevc.mp4"
		put(t, st, old, []byte("result"), map[string]string{storage.MetaSourceSize: strconv.Itoa(len(b)), storage.MetaSourceSHA: sha(b)})
	}

	sum, err := newUploader(t, st, root).Run(ctx)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Logf("summary: %s", sum)
	want := []string{"TODO/both/a.MP4", "TODO/both/a.mp4", "TODO/legacyboth/c.MP4", "TODO/legacyboth/c.mp4", "TODO/sibboth/e.MP4"}
	if got := keys(t, st, library.TodoPrefix); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("TODO/ holds\n%v\nwant\n%v", got, want)
	}
	for _, rel := range []string{"both/a.mp4", "both/a.MP4"} {
		obj, err := st.Head(ctx, "TODO/"+rel)
		if err != nil || obj.SHA256 != fileSHA(t, p(rel)) {
			t.Errorf("TODO/%s is not %s: %+v %v", rel, rel, obj, err)
		}
	}
	if sum.Skipped[upload.SkipDone] != 1 || sum.Skipped[upload.SkipConverted] != 3 || sum.Skipped[upload.SkipSibling] != 0 {
		t.Errorf("skips %v, want 1 done (legacy/b.MP4), 3 converted (legacysib/d.MP4, sibboth/e.mp4, newsib/f.Mp4)", sum.Skipped)
	}
	attention := strings.Join(sum.Attention, "\n")
	for _, want := range []string{"legacysib/d.MP4: kept beside d-hevc.mp4", "sibboth/e.mp4: kept beside e-hevc.mp4", "newsib/f.Mp4: kept beside f-hevc-Mp4.mp4"} {
		if !strings.Contains(attention, want) {
			t.Errorf("attention lacks %q:\n%s", want, attention)
		}
	}
	if strings.Contains(strings.ToLower(attention), "delete") || strings.Contains(attention, "by hand") {
		t.Errorf("attention advises deleting an original without a picture comparison:\n%s", attention)
	}
}

func TestDryRun(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	root := t.TempDir()
	st := fsStore(t, "")
	clip(t, filepath.Join(root, "a.mp4"), mediatest.ClipOpts{Seconds: 2})
	clip(t, filepath.Join(root, "b", "c.mp4"), mediatest.ClipOpts{Seconds: 2})
	u := newUploader(t, st, root)
	u.Cfg.DryRun = true
	sum, err := u.Run(context.Background())
	if err != nil || sum.WouldUpload != 2 || sum.Uploaded != 0 || sum.WouldBytes == 0 {
		t.Fatalf("dry run: %v %+v", err, sum)
	}
	if k := keys(t, st, ""); len(k) > 0 {
		t.Errorf("dry run wrote %v", k)
	}
	var b strings.Builder
	sum.Print(&b, true)
	if !strings.Contains(b.String(), "dry run: would upload 2 file(s)") {
		t.Errorf("summary:\n%s", b.String())
	}
}

// h264 is what the stub probe answers: an H.264 video.
func h264Probe(_ context.Context, p string) (media.Info, error) {
	return media.Info{Path: p, Duration: 2, Streams: []media.Stream{{Kind: "video", Codec: "h264", Width: 320, Height: 240}}}, nil
}

// TestChangedWhileUploading: a file that changes after it was hashed is
// not queued (the store refuses the mismatching stream) and is reported.
func TestChangedWhileUploading(t *testing.T) {
	root := t.TempDir()
	st := fsStore(t, "")
	p := filepath.Join(root, "growing.mp4")
	write(t, p, []byte("first version of the file"))
	// A same-size TODO/ object with other bytes makes the uploader hash
	// the file before it probes it.
	put(t, st, "TODO/growing.mp4", []byte("First version of the file"), nil)
	u := newUploader(t, st, root)
	u.Probe = func(ctx context.Context, path string) (media.Info, error) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
		} else {
			f.WriteString(" and more")
			f.Close()
		}
		return h264Probe(ctx, path)
	}
	sum, err := u.Run(context.Background())
	if err == nil || sum.Failed != 1 || !strings.Contains(strings.Join(sum.Attention, ""), "changed while it was read") {
		t.Fatalf("run: %v %+v", err, sum)
	}
	b, _, _ := st.Get(context.Background(), "TODO/growing.mp4")
	var buf bytes.Buffer
	buf.ReadFrom(b)
	b.Close()
	if buf.String() != "First version of the file" {
		t.Errorf("TODO/ object replaced by a torn upload: %q", buf.String())
	}
}

// TestLargeLibraryIdempotent uploads a 2,000-file library, then runs again
// and uploads nothing. The files are small and unique; the probe is a stub
// (what is under test is the walk and the object checks, at scale). On
// MinIO the same is done with the first 500 files, to keep the test short.
func TestLargeLibraryIdempotent(t *testing.T) {
	lib := func(t *testing.T, n int) string {
		root := t.TempDir()
		for i := 0; i < n; i++ {
			rel := fmt.Sprintf("user%d/%02d/VID_%04d.mp4", i%3, i%50, i)
			write(t, filepath.Join(root, filepath.FromSlash(rel)), []byte(fmt.Sprintf("video %d %s", i, strings.Repeat("x", i%97))))
		}
		return root
	}
	run := func(t *testing.T, st storage.Store, n int) {
		u := newUploader(t, st, lib(t, n))
		u.Log = zerolog.Nop()
		u.Probe = h264Probe
		u.Cfg.Concurrency = 8
		sum, err := u.Run(context.Background())
		if err != nil || sum.Uploaded != n {
			t.Fatalf("first run: %v %s", err, sum)
		}
		if k := keys(t, st, library.TodoPrefix); len(k) != n {
			t.Fatalf("%d objects in TODO/", len(k))
		}
		sum, err = u.Run(context.Background())
		if err != nil || sum.Uploaded != 0 || sum.Skipped[upload.SkipQueued] != n {
			t.Fatalf("second run: %v %s", err, sum)
		}
	}
	t.Run("fs", func(t *testing.T) {
		// The bucket's fsyncs are not under test here; tmpfs keeps them cheap.
		dir := ""
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			if d, err := os.MkdirTemp("/dev/shm", "uploader-bucket-*"); err == nil {
				dir = d
				t.Cleanup(func() { os.RemoveAll(d) })
			}
		}
		run(t, fsStore(t, dir), 2000)
	})
	t.Run("s3", func(t *testing.T) {
		e := awstest.Shared(t)
		st, err := s3store.New(context.Background(), e.StoreConfig(e.ScratchBucket(t)))
		if err != nil {
			t.Fatal(err)
		}
		run(t, st, 500)
	})
}

// TestUploadToMinIO: the AWS path. Uploads to the bucket with
// notifications (the work queue hears of each), with metadata readable by
// the S3 API; a second run skips them (same size and checksum); a stale
// object is replaced.
func TestUploadToMinIO(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	e := awstest.Shared(t)
	ctx := context.Background()
	if err := e.Drain(ctx, e.WorkQueueURL); err != nil {
		t.Fatal(err)
	}
	st := e.NewStore(t)
	root := t.TempDir()
	rels := []string{"minio/one.mp4", "minio/Two + two é.MP4", "minio/sub/three.mp4"}
	for _, rel := range rels {
		clip(t, filepath.Join(root, filepath.FromSlash(rel)), mediatest.ClipOpts{Seconds: 2})
	}
	// Make each unique, and one of them stale in the bucket.
	for i, rel := range rels {
		f, _ := os.OpenFile(filepath.Join(root, filepath.FromSlash(rel)), os.O_APPEND|os.O_WRONLY, 0)
		fmt.Fprintf(f, "%d", i)
		f.Close()
		os.Chtimes(filepath.Join(root, filepath.FromSlash(rel)), old, old)
	}
	put(t, st, "TODO/minio/sub/three.mp4", []byte("stale"), nil)
	before := e.Relayed("/work")
	u := newUploader(t, st, root)
	sum, err := u.Run(ctx)
	if err != nil || sum.Uploaded != 3 {
		t.Fatalf("run: %v %s", err, sum)
	}
	for _, rel := range rels {
		key := "TODO/" + rel
		out, err := e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &e.Bucket, Key: &key})
		if err != nil {
			t.Fatalf("head %s: %v", key, err)
		}
		p := filepath.Join(root, filepath.FromSlash(rel))
		fi, _ := os.Stat(p)
		s := fileSHA(t, p)
		md := out.Metadata
		if md["sha256"] != s || md["source-sha256"] != s || md["source-size"] != strconv.FormatInt(fi.Size(), 10) || md["source-mtime"] == "" {
			t.Errorf("%s: metadata %v", key, md)
		}
	}
	sum, err = u.Run(ctx)
	if err != nil || sum.Uploaded != 0 || sum.Skipped[upload.SkipQueued] != 3 {
		t.Errorf("second run: %v %s", err, sum)
	}
	// Notifications: one per upload, relayed to the work queue.
	deadline := time.Now().Add(time.Minute)
	for e.Relayed("/work")-before < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := e.Relayed("/work") - before; n < 3 {
		t.Errorf("%d work notifications, want 3", n)
	}
	if err := e.Drain(ctx, e.WorkQueueURL); err != nil {
		t.Fatal(err)
	}
	// Scratch bucket: the same library without notifications, via a
	// fresh store; skip rules hold there too.
	scratch, err := s3store.New(ctx, e.StoreConfig(e.ScratchBucket(t)))
	if err != nil {
		t.Fatal(err)
	}
	u2 := newUploader(t, scratch, root)
	u2.Cfg.DryRun = true
	if sum, err := u2.Run(ctx); err != nil || sum.WouldUpload != 3 {
		t.Errorf("dry run on an empty bucket: %v %s", err, sum)
	}
}
