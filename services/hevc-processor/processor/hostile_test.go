package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage/fs"
)

func TestMain(m *testing.M) { awstest.Main(m) }

func testConfig(t *testing.T) Config {
	return Config{Settings: media.Settings{CRF: 30, Preset: "ultrafast", Threads: 1}, WorkDir: t.TempDir(), StreamInput: true}
}

func putFile(t *testing.T, st storage.Store, key, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := st.Put(context.Background(), key, f, storage.PutOptions{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func failedRecord(t *testing.T, st storage.Store, key string) Record {
	t.Helper()
	r, _, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer r.Close()
	var rec Record
	if err := json.NewDecoder(r).Decode(&rec); err != nil {
		t.Fatalf("decode %s: %v", key, err)
	}
	return rec
}

// childArgs collects the command lines of this test process's children
// while it runs (ffmpeg and ffprobe), to check what `ps` would show.
func childArgs(t *testing.T) (stop func() []string) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]bool{}
	done := make(chan struct{})
	finished := make(chan struct{})
	me := strconv.Itoa(os.Getpid())
	go func() {
		defer close(finished)
		for {
			procs, _ := filepath.Glob("/proc/[0-9]*/stat")
			for _, p := range procs {
				stat, err := os.ReadFile(p)
				if err != nil {
					continue
				}
				// pid (comm) state ppid ...
				f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
				if len(f) < 2 || f[1] != me {
					continue
				}
				cmd, err := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
				if err == nil && len(cmd) > 0 {
					mu.Lock()
					seen[strings.ReplaceAll(string(cmd), "\x00", " ")] = true
					mu.Unlock()
				}
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() []string {
		close(done)
		<-finished
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for c := range seen {
			out = append(out, c)
		}
		return out
	}
}

// Issue 15 point 4: with STREAM_INPUT the processor streams the TODO
// object through its loopback proxy: no ffmpeg or ffprobe it starts has a
// presigned URL (X-Amz-Signature) in its arguments, and the job still
// encodes, verifies (pictures sampled from the stream) and commits.
func TestStreamedInputKeepsPresignedURLsOutOfArguments(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	mediatest.Clip(t, clip, mediatest.ClipOpts{Seconds: 2})
	putFile(t, st, "TODO/a/clip.mp4", clip)

	p := &Processor{Store: st, Cfg: testConfig(t), Log: zerolog.Nop()}
	stop := childArgs(t)
	res, err := p.Process(context.Background(), launch.Job{Key: "TODO/a/clip.mp4"})
	args := stop()
	if err != nil || res.Outcome != Done {
		t.Fatalf("Process = %+v, %v", res, err)
	}
	proxied := false
	for _, a := range args {
		if strings.Contains(a, "X-Amz-") {
			t.Errorf("a child process has a presigned URL in its arguments: %s", a)
		}
		if strings.Contains(a, "http://127.0.0.1:") && strings.Contains(a, "-protocol_whitelist http,tcp -f mov") {
			proxied = true
		}
	}
	if !proxied {
		t.Errorf("no child read the input through the loopback proxy with the whitelist; children: %q", args)
	}
	if ok, _ := storage.Exists(context.Background(), st, "DONE/a/clip-hevc.mp4"); !ok {
		t.Errorf("no result in DONE/")
	}
}

// The proxy pins every read after the first to the first response's ETag:
// an object replaced while the job reads it answers 412, and a size other
// than the HEAD's is refused outright.
func TestInputProxyPinsTheObject(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	ctx := context.Background()
	if _, err := st.Put(ctx, "TODO/x.mp4", strings.NewReader("first version"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	px, err := startInputProxy(st, "TODO/x.mp4", int64(len("first version")))
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	get := func(rng string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, px.URL, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("bytes=0-"); code != http.StatusPartialContent || body != "first version" {
		t.Fatalf("first read: %d %q", code, body)
	}
	if code, body := get("bytes=6-"); code != http.StatusPartialContent || body != "version" {
		t.Fatalf("range read: %d %q", code, body)
	}
	if code, _ := get(""); code != http.StatusOK {
		t.Fatalf("plain read: %d", code)
	}
	if resp, err := http.Get(strings.TrimSuffix(px.URL, "input.mp4") + "other.mp4"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("another path: %v %v", resp, err)
	}
	// Replaced with the same size: the ETag pin answers 412.
	if _, err := st.Put(ctx, "TODO/x.mp4", strings.NewReader("other version"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, body := get("bytes=0-"); code != http.StatusPreconditionFailed {
		t.Fatalf("read after the object changed: %d %q, want 412", code, body)
	}
	// A proxy for an object whose size differs from the HEAD's serves nothing.
	px2, err := startInputProxy(st, "TODO/x.mp4", 5)
	if err != nil {
		t.Fatal(err)
	}
	defer px2.Close()
	if resp, err := http.Get(px2.URL); err != nil || resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("size mismatch: %v %v", resp, err)
	}
}

// Issue 15 point 4, end to end: a TODO object that is an HLS playlist
// listing an internal URL ends in FAILED/ as not a readable video, and the
// listed URL is never fetched (with STREAM_INPUT and without).
func TestPlaylistInputFailsWithoutFetching(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	env := awstest.Shared(t)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	pl := fmt.Sprintf("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n%s/internal/secret.ts\n#EXTINF:1.0,\nfile:/etc/hostname\n#EXT-X-ENDLIST\n", srv.URL)
	for _, stream := range []bool{true, false} {
		t.Run("STREAM_INPUT="+strconv.FormatBool(stream), func(t *testing.T) {
			st := env.NewScratchStore(t)
			ctx := context.Background()
			if _, err := st.Put(ctx, "TODO/a/evil.mp4", strings.NewReader(pl), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(t)
			cfg.StreamInput = stream
			p := &Processor{Store: st, Cfg: cfg, Log: zerolog.Nop()}
			res, err := p.Process(ctx, launch.Job{Key: "TODO/a/evil.mp4"})
			if err != nil || res.Outcome != Failed || !strings.Contains(res.Reason, "not a readable video") {
				t.Fatalf("Process = %+v, %v; want Failed, not a readable video", res, err)
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("the playlist's URL was fetched %d times", n)
			}
			rec := failedRecord(t, st, "FAILED/a/evil.mp4.json")
			t.Logf("FAILED/ reason: %s", rec.Reason)
		})
	}
}

// Issue 15 point 6: a WORK_DIR too small for the job ends in FAILED/ with
// how much was needed and free and the Terraform variable to raise; a
// shortage the file system could hold is retried, diskAttempts times.
func TestDiskSpaceCheck(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	mediatest.Clip(t, clip, mediatest.ClipOpts{Seconds: 1, Width: 160, Height: 96})
	defer func(f func(string) (int64, int64, error)) { diskSpace = f }(diskSpace)
	const mib = 1 << 20
	cases := []struct {
		name        string
		free, total int64
		receives    int
		wantFailed  bool
	}{
		{"file system too small", 10 * mib, 20 * mib, 1, true},
		{"others hold the space, first attempt", 10 * mib, 100 << 30, 1, false},
		{"others hold the space, last attempt", 10 * mib, 100 << 30, diskAttempts, true},
		{"enough space", 100 << 30, 200 << 30, 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			diskSpace = func(string) (int64, int64, error) { return c.free, c.total, nil }
			st, err := fs.New(t.TempDir(), "b")
			if err != nil {
				t.Fatal(err)
			}
			putFile(t, st, "TODO/a/clip.mp4", clip)
			p := &Processor{Store: st, Cfg: testConfig(t), Log: zerolog.Nop()}
			res, err := p.Process(context.Background(), launch.Job{Key: "TODO/a/clip.mp4", Receipt: "r", ReceiveCount: c.receives})
			switch {
			case c.wantFailed:
				if err != nil || res.Outcome != Failed {
					t.Fatalf("Process = %+v, %v; want Failed", res, err)
				}
				for _, w := range []string{"not enough scratch space", "needed in WORK_DIR", "MiB free of", storageVariable} {
					if !strings.Contains(res.Reason, w) {
						t.Errorf("reason %q does not say %q", res.Reason, w)
					}
				}
				t.Logf("reason: %s", failedRecord(t, st, "FAILED/a/clip.mp4.json").Reason)
			case c.free < 1<<30:
				if err == nil || res.Outcome == Failed {
					t.Fatalf("Process = %+v, %v; want a transient error", res, err)
				}
				if ok, _ := storage.Exists(context.Background(), st, "TODO/a/clip.mp4"); !ok {
					t.Errorf("TODO/ object deleted on a transient shortage")
				}
			default:
				if err != nil || res.Outcome != Done {
					t.Fatalf("Process = %+v, %v; want Done", res, err)
				}
			}
		})
	}
}

// Issue 15 point 6: ENOSPC during the encode (WORK_DIR on a tmpfs with
// room for the input and 256 KiB, the space check fooled) is transient until the last attempt, then ends
// in FAILED/ with the numbers. Needs root to mount the tmpfs; without it
// the classification is checked on ffmpeg's message.
func TestNoSpaceDuringEncode(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	// Noisy: a large output, that cannot fit 256 KiB.
	if b, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
		"-i", "testsrc2=size=320x240:rate=30:duration=2,noise=alls=60:allf=t+u", "-c:v", "libx264", "-preset", "ultrafast",
		"-pix_fmt", "yuv420p", "file:"+clip).CombinedOutput(); err != nil {
		t.Fatalf("clip: %v %s", err, b)
	}
	defer func(f func(string) (int64, int64, error)) { diskSpace = f }(diskSpace)
	diskSpace = func(string) (int64, int64, error) { return 100 << 30, 200 << 30, nil }
	work := t.TempDir()
	st, err := os.Stat(clip)
	if err != nil {
		t.Fatal(err)
	}
	// Room for the downloaded input and 256 KiB: not for the output.
	size := fmt.Sprintf("size=%dk", st.Size()/1024+256)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", size, "tmpfs", work).CombinedOutput(); err != nil {
		t.Logf("cannot mount a tmpfs (%v: %s); checking the classification only", err, bytes.TrimSpace(out))
		p := &Processor{Cfg: testConfig(t)}
		enc := errors.New("encode TODO/a/clip.mp4: ffmpeg: exit status 1: av_interleaved_write_frame(): No space left on device")
		if err := p.noSpace("a/clip.mp4", 1<<20, true, launch.Job{ReceiveCount: 1}, enc); err != enc {
			t.Errorf("first attempt: %v, want the error unchanged", err)
		}
		var perm permanent
		if err := p.noSpace("a/clip.mp4", 1<<20, true, launch.Job{ReceiveCount: diskAttempts}, enc); !errors.As(err, &perm) {
			t.Errorf("last attempt: %v, want permanent", err)
		}
		return
	}
	t.Cleanup(func() { _ = exec.Command("umount", work).Run() })
	for _, receives := range []int{1, diskAttempts} {
		st, err := fs.New(t.TempDir(), "b")
		if err != nil {
			t.Fatal(err)
		}
		putFile(t, st, "TODO/a/clip.mp4", clip)
		cfg := testConfig(t)
		cfg.WorkDir = work
		p := &Processor{Store: st, Cfg: cfg, Log: zerolog.Nop()}
		res, err := p.Process(context.Background(), launch.Job{Key: "TODO/a/clip.mp4", Receipt: "r", ReceiveCount: receives})
		if receives < diskAttempts {
			if err == nil || res.Outcome == Failed {
				t.Fatalf("attempt %d: Process = %+v, %v; want a transient error", receives, res, err)
			}
			t.Logf("attempt %d: %v", receives, err)
			continue
		}
		if err != nil || res.Outcome != Failed || !strings.Contains(res.Reason, "ran out of scratch space") || !strings.Contains(res.Reason, storageVariable) {
			t.Fatalf("attempt %d: Process = %+v, %v; want Failed, out of scratch space", receives, res, err)
		}
		t.Logf("attempt %d: reason: %s", receives, res.Reason)
	}
}
