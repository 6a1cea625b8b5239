package downloader_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/events"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	queuelocal "github.com/hevc-encoder/hevc-encoder/pkg/queue/local"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage/fs"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/downloader"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/internal/testutil"
)

func TestMain(m *testing.M) {
	leaveTempIfAsked()
	code := awstest.Run(m)
	testutil.Cleanup()
	os.Exit(code)
}

var clip2s = mediatest.ClipOpts{Seconds: 2}

// fixture is a library, a store and a downloader on them.
type fixture struct {
	t    *testing.T
	base string // parent of root: nothing may appear here but root
	root string
	st   storage.Store
	// tamper replaces an object's bytes, keeping its recorded SHA-256.
	tamper func(key string, b []byte)
	d      *downloader.Downloader

	mu      sync.Mutex
	results []downloader.Result
}

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).With().Str("service", "result-downloader").Logger()
}

func newFixture(t *testing.T, kind string) *fixture {
	t.Helper()
	f := &fixture{t: t, base: t.TempDir()}
	f.root = filepath.Join(f.base, "library")
	if err := os.MkdirAll(f.root, 0o755); err != nil {
		t.Fatal(err)
	}
	switch kind {
	case "fs":
		bucket := t.TempDir()
		st, err := fs.New(bucket, "local")
		if err != nil {
			t.Fatal(err)
		}
		f.st = st
		f.tamper = func(key string, b []byte) {
			if err := os.WriteFile(filepath.Join(bucket, filepath.FromSlash(key)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	case "s3", "s3-ranged":
		e := awstest.Shared(t)
		bucket := e.ScratchBucket(t)
		st, err := s3store.New(context.Background(), e.StoreConfig(bucket))
		if err != nil {
			t.Fatal(err)
		}
		f.st = st
		f.tamper = func(key string, b []byte) {
			h, err := st.Head(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.S3.PutObject(context.Background(), &s3.PutObjectInput{
				Bucket: &bucket, Key: aws.String(key), Body: bytes.NewReader(b), Metadata: h.Metadata,
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	dst := f.st
	if kind == "s3-ranged" {
		// The downloader reads through a store with tiny ranges: every
		// clip comes as several ranges, written in parallel at their
		// offsets (WriteToAt, O_DIRECT where the file system has it).
		s3st := f.st.(*s3store.Store)
		cfg := awstest.Shared(t).StoreConfig(s3st.Bucket())
		cfg.PartSize, cfg.Concurrency = 64<<10, 2
		st, err := s3store.New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		dst = st
	}
	f.d = &downloader.Downloader{Store: dst, Log: testLogger(t),
		Cfg: downloader.Config{Root: f.root, DirMode: 0o755, Concurrency: 2, Wait: 200 * time.Millisecond, RetryDelay: time.Second},
		OnResult: func(r downloader.Result) {
			f.mu.Lock()
			f.results = append(f.results, r)
			f.mu.Unlock()
		}}
	return f
}

func (f *fixture) path(rel string) string { return filepath.Join(f.root, filepath.FromSlash(rel)) }

func (f *fixture) install(key string) downloader.Result {
	f.t.Helper()
	res, err := f.d.Install(context.Background(), key)
	if err != nil {
		f.t.Fatalf("install %s: %v", key, err)
	}
	return res
}

// checkInstalled asserts the end state of a converted file.
func (f *fixture) checkInstalled(rel, key, resultSHA string, mode os.FileMode, mtime time.Time) {
	t := f.t
	t.Helper()
	target := f.path(library.HevcRel(rel))
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatalf("%s not installed: %v", target, err)
	}
	if got := testutil.SHA(t, target); got != resultSHA {
		t.Errorf("%s: sha256 %s, want the result's %s", target, got, resultSHA)
	}
	if mode != 0 && fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", target, fi.Mode().Perm(), mode)
	}
	if !mtime.IsZero() && !fi.ModTime().Equal(mtime) {
		t.Errorf("%s: mtime %v, want the original's %v", target, fi.ModTime(), mtime)
	}
	if _, err := os.Stat(f.path(rel)); !os.IsNotExist(err) {
		t.Errorf("%s: original still present (%v)", rel, err)
	}
	if ok, _ := storage.Exists(context.Background(), f.st, key); ok {
		t.Errorf("%s still in the bucket", key)
	}
	f.checkNoTemps()
}

// checkKept asserts that nothing happened to a file whose result was not
// installed.
func (f *fixture) checkKept(rel, key, origSHA string) {
	t := f.t
	t.Helper()
	if got := testutil.SHA(t, f.path(rel)); got != origSHA {
		t.Errorf("%s: original changed", rel)
	}
	if ok, _ := storage.Exists(context.Background(), f.st, key); !ok {
		t.Errorf("%s was deleted although it was not installed", key)
	}
	f.checkNoTemps()
}

func (f *fixture) checkNoTemps() {
	f.t.Helper()
	for _, p := range testutil.Files(f.t, f.root) {
		if library.IsTemp(filepath.Base(p)) {
			f.t.Errorf("temp file left behind: %s", p)
		}
	}
}

func stores(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, kind := range []string{"fs", "s3", "s3-ranged"} {
		t.Run(kind, func(t *testing.T) { fn(t, newFixture(t, kind)) })
	}
}

func TestInstall(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	stores(t, func(t *testing.T, f *fixture) {
		rel := "alice/Holiday 2023/VID 1 + é.mp4"
		testutil.Clip(t, f.path(rel), clip2s)
		if err := os.Chmod(f.path(rel), 0o640); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(f.path(rel))
		key, sha := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{})
		res := f.install(key)
		if res.Outcome != downloader.Installed || res.Before != fi.Size() || res.After == 0 {
			t.Fatalf("result %+v", res)
		}
		f.checkInstalled(rel, key, sha, 0o640, fi.ModTime())

		// Again: the object is gone, nothing changes.
		if res := f.install(key); res.Outcome != downloader.Missing {
			t.Errorf("second install: %+v", res)
		}
		f.checkInstalled(rel, key, sha, 0o640, fi.ModTime())
	})
}

func TestInstallCameraExtension(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	rel := "bob/VID_0001.MP4"
	testutil.Clip(t, f.path(rel), clip2s)
	key, sha := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{})
	if key != "DONE/bob/VID_0001-hevc-MP4.mp4" {
		t.Fatalf("key %s", key)
	}
	if res := f.install(key); res.Outcome != downloader.Installed {
		t.Fatalf("result %+v", res)
	}
	f.checkInstalled(rel, key, sha, 0o644, time.Time{})
}

func TestFileModeOverride(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	f.d.Cfg.FileMode = 0o600
	rel := "new/dir/clip.mp4"
	testutil.Clip(t, f.path(rel), clip2s)
	key, sha := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{})
	if res := f.install(key); res.Outcome != downloader.Installed {
		t.Fatalf("result %+v", res)
	}
	f.checkInstalled(rel, key, sha, 0o600, time.Time{})
}

func TestTamperedResultIsNotInstalled(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	stores(t, func(t *testing.T, f *fixture) {
		for _, c := range []struct {
			name   string
			change func([]byte) []byte
		}{
			{"same size", func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b }},
			{"shorter", func(b []byte) []byte { return b[:len(b)-100] }},
		} {
			t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
				rel := "tampered/" + strings.ReplaceAll(c.name, " ", "_") + ".mp4"
				testutil.Clip(t, f.path(rel), clip2s)
				origSHA := testutil.SHA(t, f.path(rel))
				key, _ := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{})
				f.tamper(key, c.change(testutil.ReadAll(t, f.st, key)))
				res := f.install(key)
				if res.Outcome != downloader.Rejected || res.Reason == "" {
					t.Fatalf("result %+v, want rejected with a reason", res)
				}
				t.Logf("reported: %s", res.Reason)
				f.checkKept(rel, key, origSHA)
				if _, err := os.Stat(f.path(library.HevcRel(rel))); !os.IsNotExist(err) {
					t.Errorf("tampered result installed")
				}
				// Reported again on the next attempt, still not installed.
				if res := f.install(key); res.Outcome != downloader.Rejected {
					t.Errorf("second attempt: %+v", res)
				}
				f.checkKept(rel, key, origSHA)
			})
		}
	})
}

func TestShorterResultIsNotInstalled(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	stores(t, func(t *testing.T, f *fixture) {
		rel := "short/clip.mp4"
		testutil.Clip(t, f.path(rel), mediatest.ClipOpts{Seconds: 3})
		origSHA := testutil.SHA(t, f.path(rel))
		key, _ := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{Seconds: 1})
		res := f.install(key)
		if res.Outcome != downloader.Rejected || !strings.Contains(res.Reason, "duration") {
			t.Fatalf("result %+v, want rejected for its duration", res)
		}
		t.Logf("reported: %s", res.Reason)
		f.checkKept(rel, key, origSHA)
		if _, err := os.Stat(f.path(library.HevcRel(rel))); !os.IsNotExist(err) {
			t.Errorf("short result installed")
		}
	})
}

// TestForeignResultIsDecoded: an object in DONE/ without hevc-processor's
// record of having decoded it (its duration metadata) gets the full decode,
// also with VERIFY_DECODE=auto, and is not installed when it does not
// decode cleanly, although it probes with the right streams and duration.
func TestForeignResultIsDecoded(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	stores(t, func(t *testing.T, f *fixture) {
		f.d.Cfg.VerifyDecode = downloader.VerifyAuto
		rel := "foreign/clip.mp4"
		testutil.Clip(t, f.path(rel), clip2s)
		origSHA := testutil.SHA(t, f.path(rel))
		key, _ := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{NoDuration: true, Corrupt: true})
		res := f.install(key)
		if res.Outcome != downloader.Rejected || !strings.Contains(res.Reason, "decode") {
			t.Fatalf("result %+v, want rejected because it does not decode", res)
		}
		t.Logf("reported: %s", res.Reason)
		f.checkKept(rel, key, origSHA)
	})
}

// TestVerifyDecodeModes: a result carrying the processor's records is
// decoded again only with VERIFY_DECODE=always. The damaged clip shows
// which check ran; with auto its streams and duration are still compared.
func TestVerifyDecodeModes(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	rel := "modes/always.mp4"
	testutil.Clip(t, f.path(rel), clip2s)
	origSHA := testutil.SHA(t, f.path(rel))
	key, _ := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{Corrupt: true})
	f.d.Cfg.VerifyDecode = downloader.VerifyAlways
	if res := f.install(key); res.Outcome != downloader.Rejected || !strings.Contains(res.Reason, "decode") {
		t.Fatalf("always: result %+v, want rejected because it does not decode", res)
	}
	f.checkKept(rel, key, origSHA)

	// auto: the processor decoded these very bytes before storing them
	// (their SHA-256 matches), so the downloader does not decode them again.
	rel = "modes/auto.mp4"
	testutil.Clip(t, f.path(rel), clip2s)
	key, sha := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{Corrupt: true})
	f.d.Cfg.VerifyDecode = downloader.VerifyAuto
	if res := f.install(key); res.Outcome != downloader.Installed {
		t.Fatalf("auto: result %+v, want installed without a second decode", res)
	}
	f.checkInstalled(rel, key, sha, 0, time.Time{})

	// auto still compares streams and duration.
	rel = "modes/short.mp4"
	testutil.Clip(t, f.path(rel), mediatest.ClipOpts{Seconds: 3})
	origSHA = testutil.SHA(t, f.path(rel))
	key, _ = testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{Seconds: 1})
	if res := f.install(key); res.Outcome != downloader.Rejected || !strings.Contains(res.Reason, "duration") {
		t.Fatalf("auto, short result: %+v, want rejected for its duration", res)
	}
	f.checkKept(rel, key, origSHA)
	rel = "modes/no-audio.mp4"
	testutil.Clip(t, f.path(rel), mediatest.ClipOpts{AudioTracks: 2})
	origSHA = testutil.SHA(t, f.path(rel))
	key = putResultWithAudio(t, f, rel, 1)
	if res := f.install(key); res.Outcome != downloader.Rejected || !strings.Contains(res.Reason, "audio") {
		t.Fatalf("auto, result missing an audio track: %+v, want rejected", res)
	}
	f.checkKept(rel, key, origSHA)
}

// putResultWithAudio stores a processor-shaped result for rel whose HEVC
// clip has the given number of audio tracks.
func putResultWithAudio(t *testing.T, f *fixture, rel string, tracks int) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "r.mp4")
	testutil.Clip(t, src, mediatest.ClipOpts{HEVC: true, AudioTracks: tracks})
	return putResultFile(t, f, rel, src)
}

// putResultFile stores the file src as the result of rel, with the
// metadata the processor records for a 2 s original rel.
func putResultFile(t *testing.T, f *fixture, rel, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(f.path(rel))
	key, _ := library.DoneKey(rel)
	md := map[string]string{
		storage.MetaDuration:   "2.000",
		storage.MetaSourceSize: strconv.FormatInt(fi.Size(), 10),
		storage.MetaSourceSHA:  testutil.SHA(t, f.path(rel)),
	}
	if _, err := f.st.Put(context.Background(), key, bytes.NewReader(b), storage.PutOptions{Size: int64(len(b)), Metadata: md}); err != nil {
		t.Fatal(err)
	}
	return key
}

func TestResultOfAnotherVersionIsNotInstalled(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	rel := "edited/clip.mp4"
	testutil.Clip(t, f.path(rel), clip2s)
	origSHA := testutil.SHA(t, f.path(rel))
	key, _ := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{SourceSHA: strings.Repeat("ab", 32)})
	res := f.install(key)
	if res.Outcome != downloader.Rejected || !strings.Contains(res.Reason, "different version") {
		t.Fatalf("result %+v", res)
	}
	f.checkKept(rel, key, origSHA)
}

func TestCollisionKeepsBoth(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	rel := "taken/clip.mp4"
	testutil.Clip(t, f.path(rel), clip2s)
	origSHA := testutil.SHA(t, f.path(rel))
	key, _ := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{})
	stranger := []byte("somebody else's file")
	testutil.WriteFile(t, f.path(library.HevcRel(rel)), stranger)
	res := f.install(key)
	if res.Outcome != downloader.Collision || !strings.Contains(res.Reason, f.path(library.HevcRel(rel))) {
		t.Fatalf("result %+v", res)
	}
	f.checkKept(rel, key, origSHA)
	if b, _ := os.ReadFile(f.path(library.HevcRel(rel))); !bytes.Equal(b, stranger) {
		t.Errorf("existing file overwritten")
	}
}

func TestOriginalGone(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	rel := "gone/clip.mp4"
	testutil.Clip(t, f.path(rel), clip2s)
	fi, _ := os.Stat(f.path(rel))
	key, sha := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{})
	short := "gone/short.mp4"
	testutil.Clip(t, f.path(short), mediatest.ClipOpts{Seconds: 3})
	shortKey, _ := testutil.PutResult(t, f.st, f.root, short, testutil.ResultOpts{Seconds: 1})
	os.Remove(f.path(rel))
	os.Remove(f.path(short))

	// Installed from the object's metadata (mtime), checked as HEVC of the
	// recorded duration.
	if res := f.install(key); res.Outcome != downloader.Installed {
		t.Fatalf("result %+v", res)
	}
	f.checkInstalled(rel, key, sha, 0o644, fi.ModTime())
	if res := f.install(shortKey); res.Outcome != downloader.Rejected {
		t.Errorf("short result without its original: %+v", res)
	}
}

// TestEscapingKeysRefused sends results messages naming keys outside the
// library rules, and a key through a directory symlinked out of the
// library: each is refused and reported, nothing is written outside the
// library, and the messages are consumed.
func TestEscapingKeysRefused(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	bad := []string{
		"DONE/../../etc/x-hevc.mp4",
		"DONE/../x-hevc.mp4",
		"DONE//etc/x-hevc.mp4",
		"DONE/a\x00b-hevc.mp4",
		"DONE/..\\..\\x-hevc.mp4",
		"DONE/a\\b-hevc.mp4",
		"DONE/a/./b-hevc.mp4",
		"DONE/a//b-hevc.mp4",
		"DONE/-hevc.mp4",
	}
	check := func(t *testing.T, f *fixture, q queue.Queue) {
		outside := filepath.Join(f.base, "outside")
		if err := os.Mkdir(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, f.path("link")); err != nil {
			t.Fatal(err)
		}
		// A real result behind the symlinked directory.
		testutil.Clip(t, filepath.Join(f.base, "src", "x.mp4"), clip2s)
		k, _ := testutil.PutResult(t, f.st, filepath.Join(f.base, "src"), "x.mp4", testutil.ResultOpts{})
		linkKey := "DONE/link/x-hevc.mp4"
		copyObject(t, f.st, k, linkKey)
		keys := append(append([]string{}, bad...), linkKey)

		var bodies []string
		for _, k := range keys {
			bodies = append(bodies, events.Created("bucket", k, 10, ""))
		}
		if err := q.Send(context.Background(), bodies...); err != nil {
			t.Fatal(err)
		}
		f.d.Queue = q
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); f.d.Run(ctx) }()
		waitFor(t, "every key refused", func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			n := 0
			for _, r := range f.results {
				if r.Outcome == downloader.Refused {
					n++
				}
			}
			return n >= len(keys)
		})
		waitFor(t, "messages consumed", func() bool {
			d, err := q.Depth(context.Background())
			return err == nil && d.Visible+d.InFlight == 0
		})
		cancel()
		<-done
		f.mu.Lock()
		for _, r := range f.results {
			if r.Outcome != downloader.Refused || r.Reason == "" {
				t.Errorf("key %q: %+v, want refused with a reason", r.Key, r)
			}
		}
		f.mu.Unlock()
		if ents, _ := os.ReadDir(outside); len(ents) > 0 {
			t.Errorf("written outside the library: %v", ents)
		}
		var names []string
		ents, _ := os.ReadDir(f.base)
		for _, e := range ents {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		if strings.Join(names, ",") != "library,outside,src" {
			t.Errorf("beside the library: %v", names)
		}
		for _, p := range []string{"/etc/x-hevc.mp4", filepath.Join(f.base, "x-hevc.mp4")} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s written", p)
			}
		}
		if ok, _ := storage.Exists(context.Background(), f.st, linkKey); !ok {
			t.Errorf("refused result deleted")
		}
	}
	t.Run("fs+local", func(t *testing.T) {
		check(t, newFixture(t, "fs"), queuelocal.New("results", time.Minute, 0, nil))
	})
	t.Run("s3+sqs", func(t *testing.T) {
		check(t, newFixture(t, "s3"), awstest.Shared(t).NewScratchQueue(t, 30*time.Second, 5))
	})
}

func copyObject(t *testing.T, st storage.Store, from, to string) {
	t.Helper()
	r, obj, err := st.Get(context.Background(), from)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := st.Put(context.Background(), to, r, storage.PutOptions{Size: obj.Size, Metadata: obj.Metadata}); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(context.Background(), from); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// firstReceive signals when the downloader first receives, i.e. after its
// start-up reconcile: what arrives afterwards comes through the queue.
type firstReceive struct {
	queue.Queue
	once sync.Once
	ch   chan struct{}
}

func (q *firstReceive) Receive(ctx context.Context, max int, wait time.Duration) ([]queue.Message, error) {
	q.once.Do(func() { close(q.ch) })
	return q.Queue.Receive(ctx, max, wait)
}

// TestResultsFromQueue runs the downloader on the results queue: on the
// fs store with its notification rule and a local queue, and on MinIO
// whose notifications reach the SQS server through the relay.
func TestResultsFromQueue(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	run := func(t *testing.T, f *fixture, q queue.Queue) {
		rels := []string{"q/one.mp4", "q/two words.mp4", "q/deeper/three.MP4"}
		for _, rel := range rels {
			testutil.Clip(t, f.path(rel), clip2s)
		}
		fq := &firstReceive{Queue: q, ch: make(chan struct{})}
		f.d.Queue = fq
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); f.d.Run(ctx) }()
		<-fq.ch
		shas := map[string]string{}
		keys := map[string]string{}
		for _, rel := range rels {
			keys[rel], shas[rel] = testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{})
		}
		waitFor(t, "results installed", func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			n := 0
			for _, r := range f.results {
				if r.Outcome == downloader.Installed {
					n++
				}
			}
			return n == len(rels)
		})
		waitFor(t, "messages deleted", func() bool {
			d, err := q.Depth(context.Background())
			return err == nil && d.Visible+d.InFlight == 0
		})
		cancel()
		<-done
		for _, rel := range rels {
			f.checkInstalled(rel, keys[rel], shas[rel], 0o644, time.Time{})
		}
	}
	t.Run("fs+local", func(t *testing.T) {
		f := newFixture(t, "fs")
		q := queuelocal.New("results", time.Minute, 0, nil)
		f.st.(*fs.Store).Notify(fs.Rule{Prefix: library.DonePrefix, Queue: q})
		run(t, f, q)
	})
	t.Run("s3+sqs", func(t *testing.T) {
		e := awstest.Shared(t)
		if err := e.Drain(context.Background(), e.ResultsQueueURL); err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, "s3")
		f.st = e.NewStore(t) // the bucket with notifications
		f.d.Store = f.st
		before := e.Relayed("/results")
		run(t, f, e.NewResultsQueue(t))
		waitFor(t, "relay counts", func() bool { return e.Relayed("/results")-before >= 3 })
		if n := e.Relayed("/results") - before; n < 3 {
			t.Errorf("%d notifications relayed, want 3", n)
		}
	})
}

// TestTwoDownloadersOneResult installs the same result from two
// downloaders at once (a service and a `process` run): one installs, the
// other finds it installed or gone; neither reports a collision.
func TestTwoDownloadersOneResult(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	rel := "race/clip.mp4"
	testutil.Clip(t, f.path(rel), clip2s)
	key, sha := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{})
	other := &downloader.Downloader{Store: f.st, Log: testLogger(t), Cfg: f.d.Cfg}
	var wg sync.WaitGroup
	var res [2]downloader.Result
	var errs [2]error
	for i, d := range []*downloader.Downloader{f.d, other} {
		wg.Add(1)
		go func() { defer wg.Done(); res[i], errs[i] = d.Install(context.Background(), key) }()
	}
	wg.Wait()
	for i := range res {
		// A transient error (the other removed the object mid-download) is
		// retried; a collision or rejection would be wrong.
		if errs[i] == nil && res[i].Outcome != downloader.Installed && res[i].Outcome != downloader.Missing {
			t.Errorf("downloader %d: %+v", i, res[i])
		}
	}
	if res[0].Outcome != downloader.Installed && res[1].Outcome != downloader.Installed {
		t.Errorf("neither installed: %+v / %+v (%v, %v)", res[0], res[1], errs[0], errs[1])
	}
	f.checkInstalled(rel, key, sha, 0o644, time.Time{})
}

func TestReconcileInstallsEverything(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	var rels []string
	shas := map[string]string{}
	keys := map[string]string{}
	for _, n := range []string{"a/1.mp4", "a/2.mp4", "b/3.mp4", "c/d/4.mp4", "e/5.mp4"} {
		testutil.Clip(t, f.path(n), clip2s)
		keys[n], shas[n] = testutil.PutResult(t, f.st, f.root, n, testutil.ResultOpts{})
		rels = append(rels, n)
	}
	if err := f.d.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, rel := range rels {
		f.checkInstalled(rel, keys[rel], shas[rel], 0o644, time.Time{})
	}
	if left := testutil.Keys(t, f.st, library.DonePrefix); len(left) > 0 {
		t.Errorf("DONE/ not empty: %v", left)
	}
}

// TestFinishingOverlapsNextDownload: with one download slot, the second
// result downloads while the first is being finished (verified, fsynced,
// linked, cleaned up), and a failure in that finishing phase (here the
// target name taken meanwhile) leaves the first's original and DONE/
// object in place while the second installs.
func TestFinishingOverlapsNextDownload(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	stores(t, func(t *testing.T, f *fixture) {
		f.d.Cfg.Concurrency = 1
		rels := []string{"a/one.mp4", "b/two.mp4"}
		var keys, shas, origs []string
		for _, rel := range rels {
			testutil.Clip(t, f.path(rel), clip2s)
			k, sha := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{})
			keys, shas, origs = append(keys, k), append(shas, sha), append(origs, testutil.SHA(t, f.path(rel)))
		}
		size := int64(len(testutil.ReadAll(t, f.st, keys[1])))
		entered, proceed := make(chan struct{}), make(chan struct{})
		var calls sync.Mutex
		n := 0
		f.d.Crash = func(point string) {
			if point != downloader.CrashDownloaded {
				return
			}
			calls.Lock()
			n++
			first := n == 1
			calls.Unlock()
			if first {
				close(entered)
				<-proceed
			}
		}
		ctx := context.Background()
		type out struct {
			res downloader.Result
			err error
		}
		done := [2]chan out{make(chan out, 1), make(chan out, 1)}
		go func() { r, err := f.d.Install(ctx, keys[0]); done[0] <- out{r, err} }()
		<-entered // the first is verified, in its finishing phase
		go func() { r, err := f.d.Install(ctx, keys[1]); done[1] <- out{r, err} }()
		// The second downloads completely meanwhile.
		dir := filepath.Dir(f.path(rels[1]))
		waitFor(t, "the second download", func() bool {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if library.IsTemp(e.Name()) {
					if fi, err := e.Info(); err == nil && fi.Size() == size {
						return true
					}
				}
			}
			return false
		})
		for i, rel := range rels {
			if testutil.SHA(t, f.path(rel)) != origs[i] || exists(f.path(library.HevcRel(rel))) {
				t.Errorf("%s: changed before the first result finished", rel)
			}
			if ok, _ := storage.Exists(ctx, f.st, keys[i]); !ok {
				t.Errorf("%s gone before the first result finished", keys[i])
			}
		}
		// The first one's target name is taken while it finishes.
		testutil.WriteFile(t, f.path(library.HevcRel(rels[0])), []byte("someone else's file"))
		close(proceed)
		first, second := <-done[0], <-done[1]
		if first.err != nil || first.res.Outcome != downloader.Collision {
			t.Errorf("first: %+v, %v; want a collision", first.res, first.err)
		}
		if second.err != nil || second.res.Outcome != downloader.Installed {
			t.Errorf("second: %+v, %v", second.res, second.err)
		}
		if got := testutil.SHA(t, f.path(rels[0])); got != origs[0] {
			t.Errorf("%s: original changed", rels[0])
		}
		if ok, _ := storage.Exists(ctx, f.st, keys[0]); !ok {
			t.Errorf("%s deleted although not installed", keys[0])
		}
		f.checkInstalled(rels[1], keys[1], shas[1], 0o644, time.Time{})
	})
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestBucketGoneIsNotMissing: a GET in a bucket that is not there (our
// configuration, or a bucket deleted under a running service) says
// NoSuchBucket; the result is not taken for one already installed by
// another downloader ("missing"), whose message would be deleted, and the
// original stays where it is.
func TestBucketGoneIsNotMissing(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "s3")
	rel := "gone-bucket/clip.mp4"
	testutil.Clip(t, f.path(rel), clip2s)
	key, _ := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{})
	st, err := s3store.New(context.Background(), awstest.Shared(t).StoreConfig("no-such-bucket-here"))
	if err != nil {
		t.Fatal(err)
	}
	f.d.Store = st
	res, err := f.d.Install(context.Background(), key)
	if err == nil || res.Outcome == downloader.Missing {
		t.Fatalf("install from a missing bucket: %+v, %v; want an error, not %q", res, err, downloader.Missing)
	}
	if _, err := os.Stat(f.path(rel)); err != nil {
		t.Errorf("original: %v", err)
	}
}
