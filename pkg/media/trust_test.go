package media

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

// playlist is an HLS playlist listing one segment: what a hostile ".mp4"
// can be.
func playlist(segment string) string {
	return "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n" + segment + "\n#EXT-X-ENDLIST\n"
}

// segment writes a 1 s MPEG-TS clip: a file an attacker would like read.
func segment(t *testing.T, path string) {
	t.Helper()
	if b, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
		"-i", "testsrc2=size=64x48:rate=10:duration=1", "-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts", "file:"+path).CombinedOutput(); err != nil {
		t.Fatalf("segment: %v %s", err, b)
	}
}

// everyReader runs every function of this package that reads media on
// input (as input, original or result) and returns their errors by name.
func everyReader(t *testing.T, input string) map[string]error {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.mp4")
	mediatest.Clip(t, good, mediatest.ClipOpts{Seconds: 1, Width: 160, Height: 96})
	gi := probe(t, good)
	plan, err := NewPlan(gi, Settings{CRF: 30, Preset: "ultrafast", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	errs := map[string]error{}
	_, errs["Probe"] = Probe(ctx, input)
	_, errs["ProbeFast"] = ProbeFast(ctx, input)
	errs["Encode"] = Encode(ctx, input, filepath.Join(dir, "a.mp4"), plan, nil)
	_, errs["EncodeAndDecode"] = EncodeAndDecode(ctx, input, filepath.Join(dir, "b.mp4"), plan, nil)
	errs["VerifyResult(original)"] = VerifyResult(ctx, input, good)
	if !isURL(input) { // results are local files
		errs["Decode"] = Decode(ctx, input)
		_, errs["Verify"] = Verify(ctx, gi, input)
		_, errs["VerifyDecoded"] = VerifyDecoded(ctx, gi, input, Decoded{Frames: 10})
		errs["VerifyResult(result)"] = VerifyResult(ctx, good, input)
		_, errs["keyframeTimes"] = keyframeTimes(ctx, input)
	}
	return errs
}

// Issue 15 point 4: a ".mp4" that is an HLS playlist listing a file on
// the host must not make ffmpeg read that file. Without our options it
// does (checked first, so the test proves something); with them, every
// reader fails and the file's access time does not move.
func TestPlaylistCannotReadLocalFiles(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.ts")
	segment(t, secret)
	evil := filepath.Join(dir, "evil.mp4")
	if err := os.WriteFile(evil, []byte(playlist("file:"+secret)), 0o644); err != nil {
		t.Fatal(err)
	}
	// relatime updates the access time of a file read whose atime is older
	// than its mtime: set it so, and any read shows.
	old := time.Now().Add(-time.Hour)
	reset := func() {
		if err := os.Chtimes(secret, old, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	atime := func() time.Time {
		t.Helper()
		return accessTime(t, secret)
	}

	reset()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", "file:"+evil).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "h264") {
		t.Fatalf("plain ffprobe did not follow the playlist (the test proves nothing): %v %s", err, out)
	}
	atimeWorks := atime().After(old.Add(time.Minute))
	if !atimeWorks {
		t.Logf("this file system does not update access times; only the errors are checked")
	}

	reset()
	for name, err := range everyReader(t, evil) {
		if err == nil {
			t.Errorf("%s accepted an HLS playlist named .mp4", name)
		} else if name == "Probe" && !errors.Is(err, ErrBadInput) {
			t.Errorf("Probe: %v, want ErrBadInput", err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if atimeWorks && atime().After(old.Add(time.Minute)) {
		t.Errorf("%s was read through the playlist", secret)
	}
}

// Issue 15 point 4, streamed input: a playlist served as the (presigned)
// input URL must not make ffmpeg fetch the URLs it lists (SSRF). Plain
// ffprobe does fetch them (checked first); ours never do.
func TestPlaylistCannotFetchURLs(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.ts")
	segment(t, secret)
	var hits atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/internal/secret.ts":
			hits.Add(1)
			http.ServeFile(w, r, secret)
		case "/TODO/evil.mp4":
			fmt.Fprint(w, playlist(srv.URL+"/internal/secret.ts"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	input := srv.URL + "/TODO/evil.mp4?X-Amz-Signature=x"

	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", input).CombinedOutput()
	if err != nil || hits.Load() == 0 {
		t.Fatalf("plain ffprobe did not fetch the listed URL (the test proves nothing): %v %s", err, out)
	}
	hits.Store(0)
	for name, err := range everyReader(t, input) {
		if err == nil {
			t.Errorf("%s accepted an HLS playlist as its input URL", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the URL listed in the playlist was fetched %d times", n)
	}
}

// Every media command line puts the forced demuxer and the whitelist
// right before each of its inputs.
func TestTrustArgsBeforeEveryInput(t *testing.T) {
	plan := Plan{Args: []string{"-c:v", "libx265", "-f", "mp4"}}
	for _, args := range [][]string{
		Command("/in.mp4", "/out.mp4", plan),
		Command("https://bucket.s3.amazonaws.com/TODO/a.mp4?X-Amz-Signature=x", "/out.mp4", plan),
		Command("http://127.0.0.1:4567/abc/input.mp4", "/out.mp4", plan),
		sampleArgs("/in.mp4", "/out.mp4", []float64{1, 2}, 160, 90),
		sampleArgs("http://127.0.0.1:4567/abc/input.mp4", "/out.mp4", []float64{1}, 160, 90),
	} {
		for i, a := range args {
			if a != "-i" {
				continue
			}
			in := args[i+1]
			wl := "file"
			switch {
			case strings.HasPrefix(in, "https:"):
				wl = "https,tls,tcp"
			case strings.HasPrefix(in, "http:"):
				wl = "http,tcp"
			}
			j := slices.Index(args[:i], "-protocol_whitelist")
			for k := j + 1; k < i; k++ { // the last one before this -i
				if args[k] == "-protocol_whitelist" {
					j = k
				}
			}
			if j < 0 || slices.Contains(args[j:i], "-i") ||
				strings.Join(args[j:j+6], " ") != "-protocol_whitelist "+wl+" -f mov -enable_drefs 0" {
				t.Errorf("input %s: want -protocol_whitelist %s -f mov -enable_drefs 0 before it in %q", in, wl, args)
			}
		}
	}
	if a := liveDecodeArgs("pipe:0"); !strings.Contains(strings.Join(a, " "), "-protocol_whitelist pipe -f hevc -i pipe:0") {
		t.Errorf("live decode: %q", a)
	}
}
