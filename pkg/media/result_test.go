package media

import (
	"context"
	"errors"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

// scores returns the SSIM of every sample point of result against orig,
// as VerifyResult computes them (for the log: the margin to SSIMFloor).
func scores(t *testing.T, orig, result string) []float64 {
	t.Helper()
	p := pointsOf(t, orig, result)
	s, err := pictureScores(context.Background(), orig, result, p.times, p.w, p.h, CPUs())
	if err != nil {
		t.Fatalf("picture scores: %v", err)
	}
	return s
}

// points is where VerifyResult compares result with orig (placed by the
// result's keyframes alone), and at what size.
type points struct {
	v           Stream // the original's main video
	w, h        int
	keys, times []float64
}

func pointsOf(t *testing.T, orig, result string) points {
	t.Helper()
	in := probe(t, orig)
	v, _ := in.MainVideo()
	w, h := compareDims(v)
	keys, err := keyframeTimes(context.Background(), result)
	if err != nil {
		t.Fatal(err)
	}
	return points{v: v, w: w, h: h, keys: keys, times: sampleTimes(in.Duration, v.FrameRate, keys, nil)}
}

// crf26Plan probes in and plans it with the default settings (CRF 26,
// preset fast, the production encode) on two threads.
func crf26Plan(t *testing.T, in string) (Info, Plan) {
	t.Helper()
	info := probe(t, in)
	s := DefaultSettings()
	s.Threads = 2
	plan, err := NewPlan(info, s)
	if err != nil {
		t.Fatal(err)
	}
	return info, plan
}

// encodeCRF26 encodes in with the default settings and returns the
// output's path.
func encodeCRF26(t *testing.T, in string) string {
	t.Helper()
	_, plan := crf26Plan(t, in)
	out := filepath.Join(t.TempDir(), "out.mp4")
	if err := Encode(context.Background(), in, out, plan, nil); err != nil {
		t.Fatalf("encode: %v", err)
	}
	return out
}

// Issue 15 point 2: every real encode passes VerifyResult, whatever the
// clip (rotation, variable frame rate, 10-bit HLG, LPCM audio, heavy
// sensor noise), and the SSIM of its sample points is logged against the
// floor.
func TestVerifyResultAcceptsRealEncodes(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	cases := map[string]mediatest.ClipOpts{
		"plain":               {},
		"rotated 90":          {Rotate: 90},
		"variable frame rate": {VFR: true},
		"10-bit HLG":          {TenBitHLG: true},
		"LPCM audio":          {PCMAudio: true},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			in := filepath.Join(t.TempDir(), "in.mp4")
			mediatest.Clip(t, in, o)
			out := encodeCRF26(t, in)
			if err := VerifyResult(context.Background(), in, out); err != nil {
				t.Fatalf("VerifyResult of a real encode: %v", err)
			}
			s := scores(t, in, out)
			t.Logf("SSIM per sample point: %.3f (floor %.2f)", s, SSIMFloor)
			// A clean picture at CRF 26 scores 0.99: anything much lower
			// means frames are paired wrongly (an off-by-one in time).
			if slices.Min(s) < 0.98 {
				t.Errorf("SSIM %.3f of a clean encode, want >= 0.98 (frames misaligned?)", s)
			}
		})
	}
	// Noise: per-pixel noise that the encoder smooths away is what pulls
	// SSIM down on real footage (low light, high ISO).
	for _, noise := range []int{20, 60} {
		t.Run("noise "+strconv.Itoa(noise), func(t *testing.T) {
			in := filepath.Join(t.TempDir(), "in.mp4")
			lavfi(t, in, "testsrc2=size=320x240:rate=30:duration=2,noise=alls="+strconv.Itoa(noise)+":allf=t+u", "libx264")
			out := encodeCRF26(t, in)
			if err := VerifyResult(context.Background(), in, out); err != nil {
				t.Fatalf("VerifyResult of a real encode: %v", err)
			}
			t.Logf("SSIM per sample point: %.3f (floor %.2f)", scores(t, in, out), SSIMFloor)
		})
	}
}

// Issue 15 point 2: results that probe fine (HEVC, hvc1, same streams,
// same duration, decode cleanly) but are not the original's picture are
// refused, each with a message naming what differs.
func TestVerifyResultRejectsWrongPictures(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	ctx := context.Background()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.mp4")
	mediatest.Clip(t, in, mediatest.ClipOpts{})
	long := filepath.Join(dir, "long.mp4")
	mediatest.Clip(t, long, mediatest.ClipOpts{Seconds: 6})
	rotated := filepath.Join(dir, "rotated.mp4")
	mediatest.Clip(t, rotated, mediatest.ClipOpts{Rotate: 90})

	cases := []struct {
		name, orig string
		args       []string // ffmpeg output options making the bad result from orig
		want       []string // substrings of the error
	}{
		{"64x48 at 5 fps", in, []string{"-vf", "scale=64:48,fps=5"},
			[]string{"display size 64x48, original 320x240", "frame rate 5.000 fps, original 30.000 fps", "10 frames, original 60"}},
		{"half the frame rate", in, []string{"-vf", "fps=15"},
			[]string{"frame rate 15.000 fps, original 30.000 fps", "30 frames, original 60"}},
		{"another picture", in, []string{"-vf", "hflip,vflip"},
			[]string{"the picture differs from the original's", "SSIM"}},
		// Keyframes every 2 s (x265's keyint, as in a long video), and the
		// picture grey from 3 s of 6 on.
		{"grey from 3 s on", long, []string{"-vf", "drawbox=enable='gte(t,3)':x=0:y=0:w=iw:h=ih:color=gray:t=fill", "-g", "60"},
			[]string{"the picture differs from the original's at 4."}},
		{"rotation lost", rotated, []string{"-vf", "transpose=1", "-metadata:s:v:0", "rotate=0"},
			[]string{"rotation 0, input has"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.mp4")
			args := []string{"-hide_banner", "-nostdin", "-v", "error", "-y", "-i", "file:" + c.orig,
				"-map", "0:v", "-map", "0:a", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
				"-tag:v", "hvc1", "-c:a", "copy", "-fps_mode", "passthrough"}
			args = append(append(args, c.args...), "-f", "mp4", "file:"+bad)
			if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
				t.Fatalf("make bad result: %v %s", err, b)
			}
			// The bad result is a clean, complete file: only the new checks
			// can refuse it.
			if _, err := Verify(ctx, probe(t, c.orig), bad); err != nil && c.name != "rotation lost" {
				t.Fatalf("Verify already refuses the bad result (test does not test the new checks): %v", err)
			}
			err := VerifyResult(ctx, c.orig, bad)
			if !errors.Is(err, ErrVerify) {
				t.Fatalf("VerifyResult = %v, want ErrVerify", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			t.Logf("%v", err)
		})
	}
}

// An unreadable original or a missing result is no verdict: the error
// must not wrap ErrVerify (a caller could treat a mismatch differently
// from trouble that a retry fixes), and it must not be nil.
func TestVerifyResultMissingFiles(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.mp4")
	mediatest.Clip(t, in, mediatest.ClipOpts{Seconds: 1})
	if err := VerifyResult(context.Background(), filepath.Join(dir, "gone.mp4"), in); err == nil || errors.Is(err, ErrVerify) {
		t.Errorf("missing original: err = %v", err)
	}
	if err := VerifyResult(context.Background(), in, filepath.Join(dir, "gone.mp4")); err == nil {
		t.Errorf("missing result: err = nil")
	}
}

func TestSampleTimesAndDims(t *testing.T) {
	for _, c := range []struct {
		dur  float64
		keys []float64
		want []float64
	}{
		// A long video: keyframes every 8 s, the middles of the slices.
		{300, []float64{0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 136, 144, 152, 160, 168, 176, 184, 192, 200, 208, 216, 224, 232, 240, 248, 256, 264, 272, 280, 288, 296},
			[]float64{30, 90, 150, 210, 270}},
		// 10 s with keyframes at 0 and 8.33: at most 0.5 s past a keyframe.
		{10, []float64{0, 8.333}, []float64{0.5, 8.833}},
		// Keyframes every 2 s of 6 s.
		{6, []float64{0, 2, 4}, []float64{0.3, 2.3, 4.2, 4.3}},
		// Shorter than the frames compared: from the start.
		{0.1, []float64{0}, []float64{0}},
	} {
		if got := sampleTimes(c.dur, 30, c.keys, nil); !slices.Equal(got, c.want) {
			t.Errorf("sampleTimes(%g, 30, %v) = %v, want %v", c.dur, c.keys, got, c.want)
		}
	}
	// With the original's keyframes: each slice takes the point cheapest to
	// reach in both files (keyframes both have at 0 and 12, the original's
	// alone elsewhere), never a costlier one than without them.
	res := []float64{0, 12, 25}
	orig := []float64{0, 1.5, 3.2, 6.1, 7.4, 12, 13.9, 19.1, 21.5, 25.2, 27.3}
	if got, want := sampleTimes(30, 30, res, orig), []float64{0, 1.5, 12, 13.5, 25.2}; !slices.Equal(got, want) {
		t.Errorf("sampleTimes with the original's keyframes = %v, want %v", got, want)
	}
	for _, d := range []float64{10, 30, 300} {
		with, without := sampleTimes(d, 30, res, orig), sampleTimes(d, 30, res, nil)
		var cw, co float64
		for _, t := range with {
			cw += reachCost(t, res, orig)
		}
		for _, t := range without {
			co += reachCost(t, res, orig)
		}
		if cw/float64(len(with)) > co/float64(len(without)) {
			t.Errorf("duration %g: points %v cost %.2f s to reach, more per point than %v (%.2f s)", d, with, cw, without, co)
		}
	}
	for _, c := range []struct {
		v    Stream
		w, h int
	}{
		{Stream{Width: 1920, Height: 1080}, 160, 90},
		{Stream{Width: 1920, Height: 1080, Rotation: -90}, 90, 160},
		{Stream{Width: 64, Height: 48}, 64, 48},
		{Stream{Width: 3840, Height: 2160, Rotation: 180}, 160, 90},
	} {
		if w, h := compareDims(c.v); w != c.w || h != c.h {
			t.Errorf("compareDims(%+v) = %dx%d, want %dx%d", c.v, w, h, c.w, c.h)
		}
	}
}

// lavfi encodes a lavfi video graph with codec into path (no audio).
func lavfi(t *testing.T, path, graph, codec string) {
	t.Helper()
	if b, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", graph,
		"-c:v", codec, "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mp4", "file:"+path).CombinedOutput(); err != nil {
		t.Fatalf("lavfi %s: %v %s", graph, err, b)
	}
}

// Issue 18 point 6: VerifyEncoded, the processor's one-pass form (no
// second probe of either file, the picture comparison alongside the read
// of the packets), accepts a live-decoded encode and refuses, as
// VerifyResult does, one that does not show the original's picture or
// whose packets are not the frames the live decode saw.
func TestVerifyEncoded(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	ctx := context.Background()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.mp4")
	mediatest.Clip(t, in, mediatest.ClipOpts{})
	info, plan := crf26Plan(t, in)
	out := filepath.Join(dir, "out.mp4")
	d, err := EncodeAndDecode(ctx, in, out, plan, nil)
	if err != nil {
		t.Fatalf("encode and decode: %v", err)
	}
	if _, err := VerifyEncoded(ctx, info, in, out, d); err != nil {
		t.Fatalf("VerifyEncoded of a real encode: %v", err)
	}
	// The same streams, sizes and durations, another picture.
	other := filepath.Join(dir, "other.mp4")
	if b, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", "file:"+in,
		"-map", "0:v", "-map", "0:a", "-vf", "hflip,vflip", "-c:v", "libx264", "-c:a", "copy", "-f", "mp4", "file:"+other).CombinedOutput(); err != nil {
		t.Fatalf("make the other original: %v %s", err, b)
	}
	// The encode compared its pictures already (d.Sampled; an encode of
	// other pictures is TestEncodeComparesSampledPictures'): without that
	// comparison, VerifyEncoded compares with the file it is given.
	unsampled := d
	unsampled.Sampled, unsampled.PictureErr = false, nil
	err = func() error { _, err := VerifyEncoded(ctx, info, other, out, unsampled); return err }()
	if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "the picture differs from the original's") {
		t.Errorf("against another picture: %v, want the picture comparison's ErrVerify", err)
	}
	if !d.Sampled {
		t.Error("EncodeAndDecode did not compare pictures")
	}
	d.Frames++
	err = func() error { _, err := VerifyEncoded(ctx, info, in, out, d); return err }()
	if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "video packets") {
		t.Errorf("packet count off by one: %v, want the read's ErrVerify", err)
	}
}

// Issue 18 point 6: the keyframe times read from a local MP4's sample
// tables are ffprobe's, on real encodes (x265 with B-frames and an edit
// list, keyframes every 2 s, variable frame rate, rotation, 10-bit HLG)
// and on the H.264 originals (moov at the end).
func TestKeyframeTimesFromBoxes(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	ctx := context.Background()
	cases := map[string]mediatest.ClipOpts{
		"plain":               {Seconds: 6},
		"variable frame rate": {VFR: true},
		"rotated 90":          {Rotate: 90},
		"10-bit HLG":          {TenBitHLG: true},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.mp4")
			mediatest.Clip(t, in, o)
			short := filepath.Join(dir, "keyint.mp4")
			if b, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", "file:"+in,
				"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:keyint=20:bframes=3", "-tag:v", "hvc1",
				"-c:a", "copy", "-f", "mp4", "file:"+short).CombinedOutput(); err != nil {
				t.Fatalf("encode with keyframes every 20 frames: %v %s", err, b)
			}
			for _, f := range []string{in, encodeCRF26(t, in), short} {
				boxes, err := boxKeyframes(f)
				if err != nil {
					t.Fatalf("%s: boxes: %v", filepath.Base(f), err)
				}
				probed, err := probeKeyframes(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				if len(boxes) != len(probed) {
					t.Fatalf("%s: %d keyframes from the boxes %v, ffprobe %d %v", filepath.Base(f), len(boxes), boxes, len(probed), probed)
				}
				for i := range boxes {
					if d := boxes[i] - probed[i]; d > 1e-5 || d < -1e-5 {
						t.Fatalf("%s: keyframe %d at %.6f s from the boxes, %.6f s by ffprobe", filepath.Base(f), i, boxes[i], probed[i])
					}
				}
				t.Logf("%s: %d keyframes agree (%v)", filepath.Base(f), len(boxes), boxes[:min(len(boxes), 4)])
			}
		})
	}
}

// Only the first SampleFrames pairs of a stats file count: ffmpeg flushes
// one more pair, of frames that no longer match, when the output stops.
func TestMeanSSIMCountsTheSampledFrames(t *testing.T) {
	stats := "n:1 Y:0.990000 U:0.99 V:0.99 All:0.99 (20.0)\n" +
		"n:2 Y:0.980000 All:0.98 (17.0)\n" +
		"n:3 Y:0.970000 All:0.97 (15.2)\n" +
		"n:4 Y:0.820000 All:0.82 (7.4)\n"
	if m, n := meanSSIM(stats); n != 3 || math.Abs(m-0.98) > 1e-9 {
		t.Errorf("meanSSIM = %v over %d frames, want 0.98 over 3", m, n)
	}
	if _, n := meanSSIM(""); n != 0 {
		t.Errorf("empty stats: %d frames", n)
	}
}

// One ffmpeg comparing every point scores each as one per CPU does (the
// points are independent), and pictureProcs keeps one for a short clip
// whose points are cheap to reach, one per CPU for long HD ones.
func TestPictureScoresInOneProcess(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	in := filepath.Join(t.TempDir(), "in.mp4")
	mediatest.Clip(t, in, mediatest.ClipOpts{})
	out := encodeCRF26(t, in)
	p := pointsOf(t, in, out)
	one, err := pictureScores(context.Background(), in, out, p.times, p.w, p.h, 1)
	if err != nil {
		t.Fatal(err)
	}
	if many := scores(t, in, out); !slices.Equal(one, many) {
		t.Errorf("one process scored %v, one per CPU %v", one, many)
	}
	if n := pictureProcs(p.v, p.times, p.keys, nil); n != 1 {
		t.Errorf("pictureProcs = %d for a %dx%d clip sampled at %v, want 1", n, p.v.Width, p.v.Height, p.times)
	}

	hd := Stream{Width: 1920, Height: 1080, FrameRate: 30}
	long := sampleTimes(30, 30, []float64{0, 8.3, 16.7, 25}, []float64{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28})
	if want := min(len(long), CPUs()); pictureProcs(hd, long, []float64{0, 8.3, 16.7, 25}, nil) != want {
		t.Errorf("pictureProcs for 30 s of 1080p = %d, want %d", pictureProcs(hd, long, []float64{0, 8.3, 16.7, 25}, nil), want)
	}
}
