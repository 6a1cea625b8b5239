package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage/fs"
	"github.com/hevc-encoder/hevc-encoder/pkg/upload"
	"github.com/hevc-encoder/hevc-encoder/services/hevc-processor/processor"
)

// clip is one library file of a test and what should become of it.
type clip struct {
	rel  string
	opts mediatest.ClipOpts
	make func(t *testing.T, path string) // instead of opts
	want string                          // converted | intact | failed
}

var meta = mediatest.ClipOpts{Width: 640, Height: 360, CreationTime: "2023-05-01T10:00:00Z", Location: "+48.8584+002.2945/"}

func with(f func(*mediatest.ClipOpts)) mediatest.ClipOpts { o := meta; f(&o); return o }

func fastSettings() processor.Config {
	s := media.DefaultSettings()
	s.Preset = "ultrafast" // the plan, not x265's speed, is under test
	return processor.Config{Settings: s}
}

func sha(t *testing.T, p string) string {
	t.Helper()
	s, _, err := library.FileSHA256(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func makeLibrary(t *testing.T, root string, clips []clip) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for _, c := range clips {
		p := filepath.Join(root, filepath.FromSlash(c.rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if c.make != nil {
			c.make(t, p)
		} else {
			mediatest.Clip(t, p, c.opts)
		}
		sums[c.rel] = sha(t, p)
	}
	return sums
}

func probe(t *testing.T, p string) media.Info {
	t.Helper()
	info, err := media.Probe(context.Background(), p)
	if err != nil {
		t.Fatalf("probe %s: %v", p, err)
	}
	return info
}

// checkConverted asserts the acceptance criteria of one converted file.
func checkConverted(t *testing.T, root, rel string, orig media.Info) {
	t.Helper()
	out := filepath.Join(root, filepath.FromSlash(library.HevcRel(rel)))
	if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel))); err == nil {
		t.Errorf("%s: original still present next to its result", rel)
	}
	info := probe(t, out)
	v, ok := info.MainVideo()
	if !ok || v.Codec != "hevc" || v.CodecTag != "hvc1" {
		t.Errorf("%s: video %+v, want hevc/hvc1", rel, v)
	}
	if info.Count("audio") != orig.Count("audio") {
		t.Errorf("%s: %d audio tracks, original had %d", rel, info.Count("audio"), orig.Count("audio"))
	}
	if d := math.Abs(info.Duration - orig.Duration); d > math.Max(0.5, orig.Duration/100) {
		t.Errorf("%s: duration %.2f vs %.2f", rel, info.Duration, orig.Duration)
	}
	if ct := info.Tags["creation_time"]; orig.Tags["creation_time"] != "" && !strings.HasPrefix(ct, "2023-05-01T10:00:00") {
		t.Errorf("%s: creation_time %q lost", rel, ct)
	}
	if orig.Tags["location"] != "" && info.Tags["location"] != orig.Tags["location"] {
		t.Errorf("%s: location %q, want %q (tags %v)", rel, info.Tags["location"], orig.Tags["location"], info.Tags)
	}
}

// checkNoTemps asserts that no in-progress file was left in the library.
func checkNoTemps(t *testing.T, root string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && library.IsTemp(d.Name()) {
			t.Errorf("temp file left behind: %s", p)
		}
		return nil
	})
}

func testLogger(t *testing.T) func(string) zerolog.Logger {
	return func(s string) zerolog.Logger {
		return zerolog.New(zerolog.NewTestWriter(t)).With().Str("service", s).Logger()
	}
}

func run(t *testing.T, root string) Summary {
	t.Helper()
	sum, err := Run(context.Background(), Options{Library: root, Processor: fastSettings(), Jobs: 2, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return sum
}

// acceptanceClips is the library of the acceptance tests: what phones
// make, odd names, and inputs that must be left alone.
func acceptanceClips() []clip {
	return []clip{
		{rel: "Smartphones/alice/VID_0001.mp4", opts: meta, want: "converted"},
		{rel: "Smartphones/alice/odd name #1 + 100% 'quoted' \"q\" é ü 日本.mp4", opts: meta, want: "converted"},
		{rel: "Smartphones/bob/two audio.mp4", opts: with(func(o *mediatest.ClipOpts) { o.AudioTracks = 2 }), want: "converted"},
		{rel: "Smartphones/bob/timecode.MP4", opts: with(func(o *mediatest.ClipOpts) { o.Timecode = true }), want: "converted"},
		{rel: "Smartphones/bob/already hevc.mp4", opts: with(func(o *mediatest.ClipOpts) { o.HEVC = true }), want: "intact"},
		{rel: "bad/zero.mp4", make: func(t *testing.T, p string) { mediatest.ZeroBytes(t, p) }, want: "failed"},
		{rel: "bad/truncated.mp4", make: func(t *testing.T, p string) {
			src := filepath.Join(t.TempDir(), "src.mp4")
			mediatest.Clip(t, src, meta)
			mediatest.Truncated(t, src, p)
		}, want: "failed"},
		{rel: "bad/notes.mp4", make: func(t *testing.T, p string) { mediatest.TextFile(t, p) }, want: "failed"},
		{rel: "taken/clip.mp4", opts: meta, want: "intact"},
		{rel: "taken/clip-hevc.mp4", make: func(t *testing.T, p string) { os.WriteFile(p, []byte("somebody else's file"), 0o644) }, want: "intact"},
	}
}

// acceptance runs the pipeline twice with runOnce on a fresh acceptance
// library and checks every criterion; store is where FAILED/ records are.
func acceptance(t *testing.T, root string, store storage.Store, runOnce func() Summary) {
	clips := acceptanceClips()
	sums := makeLibrary(t, root, clips)
	origInfo := map[string]media.Info{}
	mtimes := map[string]int64{}
	for _, c := range clips {
		if c.want == "converted" {
			p := filepath.Join(root, filepath.FromSlash(c.rel))
			origInfo[c.rel] = probe(t, p)
			st, _ := os.Stat(p)
			mtimes[c.rel] = st.ModTime().Unix()
		}
	}

	sum := runOnce()
	var b strings.Builder
	sum.Print(&b)
	t.Logf("summary:\n%s", b.String())

	ctx := context.Background()
	for _, c := range clips {
		p := filepath.Join(root, filepath.FromSlash(c.rel))
		switch c.want {
		case "converted":
			checkConverted(t, root, c.rel, origInfo[c.rel])
			st, err := os.Stat(filepath.Join(root, filepath.FromSlash(library.HevcRel(c.rel))))
			if err == nil && st.ModTime().Unix() != mtimes[c.rel] {
				t.Errorf("%s: mtime %v, want the original's", c.rel, st.ModTime())
			}
		case "intact", "failed":
			if got := sha(t, p); got != sums[c.rel] {
				t.Errorf("%s: original changed", c.rel)
			}
			fk, _ := library.FailedKey(c.rel)
			var b []byte
			r, _, err := store.Get(ctx, fk)
			if err == nil {
				b, err = io.ReadAll(r)
				r.Close()
			}
			if c.want == "failed" {
				var rec processor.Record
				if err != nil || json.Unmarshal(b, &rec) != nil || rec.Status != processor.Failed || len(rec.Reason) < 10 {
					t.Errorf("%s: want a FAILED/ record with a reason, got %q (%v)", c.rel, b, err)
				} else {
					t.Logf("%s: %s", c.rel, rec.Reason)
				}
			} else if err == nil {
				t.Errorf("%s: unexpected FAILED/ record %s", c.rel, b)
			}
		}
	}
	if sum.Converted != 4 || len(sum.Failed) != 3 || sum.Skipped[upload.SkipSibling] != 1 || sum.Skipped[upload.SkipHevc] != 1 {
		t.Errorf("summary: converted %d, failed %v, skipped %v", sum.Converted, sum.Failed, sum.Skipped)
	}
	if sum.BytesAfter >= sum.BytesBefore || sum.BytesAfter == 0 {
		t.Errorf("bytes %d → %d", sum.BytesBefore, sum.BytesAfter)
	}
	for _, p := range []string{library.TodoPrefix, library.DonePrefix} {
		if page, err := store.List(ctx, p, "", 10); err != nil || len(page.Objects) > 0 {
			t.Errorf("%s not drained: %+v %v", p, page.Objects, err)
		}
	}
	checkNoTemps(t, root)

	// A second run changes nothing: bad files are not retried forever.
	after := map[string]string{}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.Contains(p, ".hevc-encoder") {
			after[p] = sha(t, p)
		}
		return nil
	})
	sum2 := runOnce()
	if sum2.Converted != 0 || len(sum2.Failed) != 0 || sum2.Skipped[upload.SkipFailed] != 3 {
		t.Errorf("second run: converted %d, failed %v, skipped %v", sum2.Converted, sum2.Failed, sum2.Skipped)
	}
	for p, s := range after {
		if sha(t, p) != s {
			t.Errorf("second run changed %s", p)
		}
	}
}

func TestPipelineAcceptance(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	root := t.TempDir()
	state := filepath.Join(t.TempDir(), "bucket")
	store, err := fs.New(state, "local")
	if err != nil {
		t.Fatal(err)
	}
	acceptance(t, root, store, func() Summary {
		sum, err := Run(context.Background(), Options{Library: root, State: state, Processor: fastSettings(), Jobs: 2, Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		return sum
	})
}

// TestKilledMidWayConverges kills the real binary (SIGKILL, no chance to
// clean up) at several points and checks that a re-run converges with
// nothing lost and nothing duplicated.
func TestKilledMidWayConverges(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	bin := filepath.Join(t.TempDir(), "hevc-encoder-local")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, killAt := range []string{"encoding", "uploading result", "installed"} {
		t.Run(strings.ReplaceAll(killAt, " ", "_"), func(t *testing.T) {
			root := t.TempDir()
			var clips []clip
			for _, n := range []string{"a/one.mp4", "a/two.mp4", "b/three.mp4"} {
				clips = append(clips, clip{rel: n, opts: with(func(o *mediatest.ClipOpts) { o.Seconds = 3 })})
			}
			sums := makeLibrary(t, root, clips)
			info := map[string]media.Info{}
			for _, c := range clips {
				info[c.rel] = probe(t, filepath.Join(root, c.rel))
			}
			cmd := exec.Command(bin, "--input", root, "--x265-preset", "ultrafast", "--jobs", "1")
			cmd.Env = append(os.Environ(), "LOG_FORMAT=json")
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			killed := false
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				if msg := regexp.MustCompile(`"message":"([^"]*)"`).FindStringSubmatch(sc.Text()); msg != nil && strings.Contains(msg[1], killAt) {
					cmd.Process.Signal(syscall.SIGKILL)
					killed = true
					break
				}
			}
			cmd.Wait()
			if !killed {
				t.Fatalf("never saw %q; finished before the kill", killAt)
			}
			// At the kill point: every original is present, or its result
			// is in place and verified.
			for _, c := range clips {
				p := filepath.Join(root, c.rel)
				if _, err := os.Stat(p); err == nil {
					if sha(t, p) != sums[c.rel] {
						t.Errorf("%s changed", c.rel)
					}
					continue
				}
				checkConverted(t, root, c.rel, info[c.rel])
			}
			run(t, root)
			for _, c := range clips {
				checkConverted(t, root, c.rel, info[c.rel])
			}
			checkNoTemps(t, root)
		})
	}
}
