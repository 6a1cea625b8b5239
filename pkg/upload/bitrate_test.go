package upload_test

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/upload"
)

func TestParseMinBitrate(t *testing.T) {
	for in, want := range map[string]upload.MinBitrate{
		"auto": {Auto: true}, "AUTO": {Auto: true},
		"0": {}, "off": {}, "": {},
		"3Mbit": {Rate: 3_000_000}, "3M": {Rate: 3_000_000}, "3mbps": {Rate: 3_000_000},
		"2500k": {Rate: 2_500_000}, "2500kbit/s": {Rate: 2_500_000}, "1.5 Mbit/s": {Rate: 1_500_000},
		"3000000": {Rate: 3_000_000}, "3000000bit": {Rate: 3_000_000}, "1G": {Rate: 1_000_000_000},
	} {
		got, err := upload.ParseMinBitrate(in)
		if err != nil || got != want {
			t.Errorf("ParseMinBitrate(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"3MB", "fast", "-1M", "3Mbyte", "1e15", "NaN", "k"} {
		if got, err := upload.ParseMinBitrate(bad); err == nil {
			t.Errorf("ParseMinBitrate(%q) = %+v, want an error", bad, got)
		}
	}
}

// VideoBitrate takes the stream's own rate; without one, the file's rate
// less the audio it knows of (unknown audio is not subtracted: the
// estimate errs towards uploading).
func TestVideoBitrateFallback(t *testing.T) {
	v := media.Stream{Kind: "video", Codec: "h264", Width: 1280, Height: 720}
	a := media.Stream{Kind: "audio", Codec: "aac", BitRate: 128_000}
	withRate := v
	withRate.BitRate = 2_000_000
	for name, c := range map[string]struct {
		info media.Info
		want int64
	}{
		"stream rate":           {media.Info{BitRate: 9_000_000, Streams: []media.Stream{withRate, a}}, 2_000_000},
		"file rate less audio":  {media.Info{BitRate: 2_128_000, Streams: []media.Stream{v, a}}, 2_000_000},
		"size over duration":    {media.Info{Size: 1_000_000, Duration: 4, Streams: []media.Stream{v}}, 2_000_000},
		"audio rate unknown":    {media.Info{BitRate: 2_128_000, Streams: []media.Stream{v, {Kind: "audio"}}}, 2_128_000},
		"nothing known":         {media.Info{Streams: []media.Stream{v}}, 0},
		"no video":              {media.Info{BitRate: 128_000, Streams: []media.Stream{a}}, 0},
		"audio above the total": {media.Info{BitRate: 100_000, Streams: []media.Stream{v, a}}, 0},
	} {
		if got := upload.VideoBitrate(c.info); got != c.want {
			t.Errorf("%s: %d, want %d", name, got, c.want)
		}
	}
	if got := (upload.MinBitrate{Auto: true}).For(media.Info{Streams: []media.Stream{v}}); got != int64(upload.AutoBitsPerPixel*1280*720) {
		t.Errorf("auto at 720p: %d", got)
	}
}

// rateClip makes a 320x240 H.264 clip whose video is held to about
// kbits kbit/s, an hour old.
func rateClip(t *testing.T, dst string, kbits int) {
	t.Helper()
	mediatest.RequireFFmpeg(t)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	k := strconv.Itoa(kbits) + "k"
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=2,noise=alls=8:allf=t",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2",
		"-c:v", "libx264", "-preset", "veryfast", "-b:v", k, "-maxrate", k, "-bufsize", k,
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-shortest", dst).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	if err := os.Chtimes(dst, old, old); err != nil {
		t.Fatal(err)
	}
}

// TestMinBitrate: files whose video bit rate is below MIN_BITRATE are not
// uploaded, are counted as such in the summary, and stay as they were;
// auto scales with the picture, 0 uploads everything. The bit rate is the
// one the uploader's own probe (the MP4's boxes) reads, checked against
// ffprobe's.
func TestMinBitrate(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	lib := t.TempDir()
	low, high := filepath.Join(lib, "low", "chat video.mp4"), filepath.Join(lib, "cam", "VID_1.mp4")
	rateClip(t, low, 40)   // under auto's 1.2 bit/s × 320 × 240 = 92 kbit/s
	rateClip(t, high, 600) // over it
	before := map[string]string{low: fileSHA(t, low), high: fileSHA(t, high)}

	// The box reader's video bit rate is ffprobe's stream bit_rate.
	for _, p := range []string{low, high} {
		fast, err := media.ProbeFast(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		full, err := media.Probe(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		got, want := upload.VideoBitrate(fast), upload.VideoBitrate(full)
		if want <= 0 || math.Abs(float64(got-want)) > 0.01*float64(want) {
			t.Errorf("%s: video bit rate %d from the boxes, ffprobe %d", p, got, want)
		}
	}

	for _, c := range []struct {
		setting      string
		uploaded     int
		skipped      int
		wantUploaded []string
	}{
		{"auto", 1, 1, []string{"TODO/cam/VID_1.mp4"}},
		{"2Mbit", 0, 2, nil},
		{"0", 2, 0, []string{"TODO/cam/VID_1.mp4", "TODO/low/chat video.mp4"}},
	} {
		t.Run(c.setting, func(t *testing.T) {
			st := fsStore(t, "")
			u := newUploader(t, st, lib)
			var err error
			if u.Cfg.MinBitrate, err = upload.ParseMinBitrate(c.setting); err != nil {
				t.Fatal(err)
			}
			sum, err := u.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if sum.Uploaded != c.uploaded || sum.Skipped[upload.SkipBitrate] != c.skipped {
				t.Errorf("uploaded %d, skipped for bitrate %d; want %d and %d (%s)", sum.Uploaded, sum.Skipped[upload.SkipBitrate], c.uploaded, c.skipped, sum)
			}
			if got := keys(t, st, "TODO/"); strings.Join(got, ",") != strings.Join(c.wantUploaded, ",") {
				t.Errorf("TODO/ holds %v, want %v", got, c.wantUploaded)
			}
			var b strings.Builder
			sum.Print(&b, false)
			if c.skipped > 0 && !strings.Contains(b.String(), upload.SkipBitrate) {
				t.Errorf("the summary does not name the bitrate rule:\n%s", b.String())
			}
		})
	}
	for p, sha := range before {
		if fileSHA(t, p) != sha {
			t.Errorf("%s changed", p)
		}
	}
}
