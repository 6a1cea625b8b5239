package media

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

// grayFrames decodes a lavfi source to raw 8-bit luma frames of w x h.
func grayFrames(t *testing.T, src string, w, h, n int) []byte {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", src,
		"-frames:v", strconv.Itoa(n), "-vf", "scale="+strconv.Itoa(w)+":"+strconv.Itoa(h)+",format=gray",
		"-f", "rawvideo", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg %s: %v", src, err)
	}
	return out
}

// ffmpegSSIM is ffmpeg's ssim filter's Y value for two raw gray frames.
func ffmpegSSIM(t *testing.T, a, b []byte, w, h int) float64 {
	t.Helper()
	dir := t.TempDir()
	fa, fb := filepath.Join(dir, "a.gray"), filepath.Join(dir, "b.gray")
	if err := os.WriteFile(fa, a, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fb, b, 0o644); err != nil {
		t.Fatal(err)
	}
	size := strconv.Itoa(w) + "x" + strconv.Itoa(h)
	out, err := exec.Command("ffmpeg", "-v", "error",
		"-f", "rawvideo", "-pix_fmt", "gray", "-s", size, "-i", fa,
		"-f", "rawvideo", "-pix_fmt", "gray", "-s", size, "-i", fb,
		"-lavfi", "[0][1]ssim=stats_file=-", "-f", "null", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg ssim: %v", err)
	}
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "Y:"); ok {
			y, _ := strconv.ParseFloat(v, 64)
			return y
		}
	}
	t.Fatalf("no Y: in %q", out)
	return 0
}

// The in-process SSIM must mean what ffmpeg's does: SSIMFloor was
// measured with ffmpeg's filter.
func TestLumaSSIMMatchesFFmpeg(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	const w, h = 160, 90
	ref := grayFrames(t, "testsrc2=size=320x180:rate=30", w, h, 1)
	for name, other := range map[string][]byte{
		"same":    ref,
		"noisy":   grayFrames(t, "testsrc2=size=320x180:rate=30,noise=alls=40:allf=t", w, h, 1),
		"blurred": grayFrames(t, "testsrc2=size=320x180:rate=30,boxblur=4", w, h, 1),
		"other":   grayFrames(t, "mandelbrot=size=320x180:rate=30", w, h, 1),
		"flipped": grayFrames(t, "testsrc2=size=320x180:rate=30,vflip", w, h, 1),
	} {
		got, want := lumaSSIM(ref, other, w, h), ffmpegSSIM(t, ref, other, w, h)
		if math.Abs(got-want) > 0.001 {
			t.Errorf("%s: lumaSSIM %.5f, ffmpeg %.5f", name, got, want)
		}
	}
	if got := lumaSSIM(ref, ref, w, h); got != 1 {
		t.Errorf("identical frames: %v, want 1", got)
	}
}

func TestLiveSamplePicks(t *testing.T) {
	s := newLiveSample(Plan{Width: 1920, Height: 1080, Frames: 120, FrameRate: 30}, "o.mp4")
	want := []int64{12, 13, 14, 36, 37, 38, 60, 61, 62, 84, 85, 86, 108, 109, 110}
	if len(s.frames) != len(want) {
		t.Fatalf("frames %v, want %v", s.frames, want)
	}
	for i := range want {
		if s.frames[i] != want[i] {
			t.Fatalf("frames %v, want %v", s.frames, want)
		}
	}
	if s.w != 160 || s.h != 90 {
		t.Errorf("size %dx%d, want 160x90", s.w, s.h)
	}
	if f := s.filter(); !strings.Contains(f, "between(n,12,14)+between(n,36,38)") {
		t.Errorf("filter %s", f)
	}
	// Short clips: no frame twice, none past the end.
	s = newLiveSample(Plan{Width: 64, Height: 48, Frames: 4, FrameRate: 5}, "o.mp4")
	if len(s.frames) == 0 || s.frames[len(s.frames)-1] > 3 {
		t.Errorf("4 frames: picked %v", s.frames)
	}
	// No frame count: estimated from duration and rate.
	if s = newLiveSample(Plan{Width: 64, Height: 48, Duration: 2, FrameRate: 30}, "o.mp4"); s == nil || s.frames[len(s.frames)-1] >= 60 {
		t.Errorf("estimated: %+v", s)
	}
	if newLiveSample(Plan{Width: 64, Height: 48}, "o.mp4") != nil {
		t.Error("nothing known: want no sample")
	}
}

// The encode compares its own pictures: a real encode passes with a
// high score and leaves no sample files; an encode whose pictures are not
// the original's (turned upside down by an extra filter) is caught.
func TestEncodeComparesSampledPictures(t *testing.T) {
	dir := t.TempDir()
	in, info, plan := planFor(t, dir, mediatest.ClipOpts{Width: 320, Height: 240, Seconds: 2})
	ctx := context.Background()
	out := filepath.Join(dir, "out.mp4")
	d, err := EncodeAndDecode(ctx, in, out, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Sampled || d.PictureErr != nil || d.SSIM < 0.9 {
		t.Fatalf("good encode: sampled %v, SSIM %.3f, err %v", d.Sampled, d.SSIM, d.PictureErr)
	}
	if _, err := VerifyEncoded(ctx, info, in, out, d); err != nil {
		t.Fatalf("VerifyEncoded: %v", err)
	}
	// The original is untouched and the scratch files are gone.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".gray") || strings.Contains(e.Name(), ".hevc") {
			t.Errorf("left behind: %s", e.Name())
		}
	}

	flipped := plan
	flipped.Args = append([]string{"-vf", "vflip"}, plan.Args...)
	out2 := filepath.Join(dir, "flipped.mp4")
	d, err = EncodeAndDecode(ctx, in, out2, flipped, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(d.PictureErr, ErrVerify) || !strings.Contains(d.PictureErr.Error(), "SSIM") {
		t.Fatalf("upside-down encode: SSIM %.3f, err %v; want ErrVerify", d.SSIM, d.PictureErr)
	}
	if _, err := VerifyEncoded(ctx, info, in, out2, d); !errors.Is(err, ErrVerify) {
		t.Errorf("VerifyEncoded of the upside-down encode: %v, want ErrVerify", err)
	}
	// Both sides must hold the picked frames.
	s := newLiveSample(plan, filepath.Join(dir, "x.mp4"))
	frame := bytes.Repeat([]byte{128}, s.w*s.h)
	_ = os.WriteFile(s.src, bytes.Repeat(frame, len(s.frames)), 0o644)
	_ = os.WriteFile(s.dec, bytes.Repeat(frame, len(s.frames)-1), 0o644)
	if _, err := s.verdict("x.mp4"); !errors.Is(err, ErrVerify) {
		t.Errorf("a frame missing: %v, want ErrVerify", err)
	}
}
