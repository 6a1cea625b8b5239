package media

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mp4box"
)

// Picture comparison (VerifyResult). A result must show the original's
// pictures at the original's times, not merely have the right streams:
// both files are sampled at SamplePoints points spread through them,
// SampleFrames frames at each, both scaled (area averaging) to the same
// small size, and the luma SSIM of every point must reach SSIMFloor.
const (
	// SSIMFloor is the lowest luma SSIM a sample point may have. Measured
	// at the comparison size (ffmpeg 5.1, 320x240 lavfi clips, libx265
	// CRF 26 preset fast): testsrc2 0.99 (rotated, VFR, 10-bit HLG alike),
	// mandelbrot 0.97, testsrc2 under temporal noise=alls=20 0.93, under
	// alls=40-60 (far noisier than a phone at night) 0.83-0.85, testsrc2 at
	// CRF 51 0.85; 1080p (scaled down further, so noise averages out more)
	// 0.998. Wrong pictures score far lower: the picture turned upside
	// down 0.17, black frames 0.20, another lavfi source 0.29, testsrc2
	// greyed out 0.47-0.50. 0.70 is well below every real encode and well
	// above a wrong picture.
	SSIMFloor = 0.70
	// SamplePoints and SampleFrames: where and how much is compared.
	SamplePoints = 5
	SampleFrames = 3
	// sampleReach bounds, as a fraction of the duration, how far past the
	// result's keyframe before it a sample point may lie. Reaching a frame
	// means decoding the result from that keyframe (x265 puts one every
	// 250 frames, 8 s at 30 fps), so sampling the exact middles of five
	// slices of a 10 s clip decoded 1.7 times its frames: 15 % of the
	// encode's CPU. Bounded, the five points decode at most a quarter of
	// the result, about 2 % of the encode: on long videos they still fall
	// at the middles of their slices, on short ones they move to the
	// keyframes (and closer together).
	sampleReach = 0.05
	// CompareSize is the longer side, in pixels, of the pictures compared.
	// At full size per-pixel sensor noise, which any encoder smooths away,
	// pulls SSIM down to 0.6-0.8 on noisy content (measured at 320x240,
	// noise=alls=20..40); averaging pixels down to 160 keeps what matters
	// here (is it the same picture, at the same time?) and is cheaper.
	CompareSize = 160
)

// VerifyResult checks a result (the HEVC encode of originalPath) before
// the original is deleted. It returns nil when the result is acceptable,
// else an error naming what differs ("display size 64x48, original
// 320x240"), wrapping ErrVerify when the result does not match; any other
// error (a missing file, ffmpeg missing, a cancelled ctx, an unreadable
// original) does not wrap ErrVerify and must not be taken as a verdict
// either way.
//
// Checked: what Verify's probe checks (one HEVC video tagged hvc1, the
// original's audio stream count, rotation, bit depth, HDR transfer and a
// duration within max(0.5 s, 1 %)); the display size (after rotation); the
// frame rate (within 2 %); the frame count (within max(2, 1 %), for
// variable frame rates); and a sampled picture comparison (SSIMFloor).
// It does not decode the whole result: the processor decoded it while it
// encoded it (EncodeAndDecode) and Verify decodes it.
//
// originalPath and resultPath are local paths or http(s) URLs; they are
// read as MP4/QuickTime only, and only through their own protocol.
func VerifyResult(ctx context.Context, originalPath, resultPath string) error {
	// Both probes at once: each is mostly one ffprobe's start-up.
	var out Info
	var perr error
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		out, perr = Probe(ctx, resultPath)
	}()
	in, err := Probe(ctx, originalPath)
	<-probed
	if err != nil {
		return fmt.Errorf("verify %s: probe the original: %w", resultPath, err)
	}
	if perr != nil {
		return probeFailure(resultPath, perr)
	}
	out, err = checkProbed(in, out, resultPath)
	if err != nil {
		return err
	}
	if problems := compareShape(in, out); len(problems) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrVerify, resultPath, strings.Join(problems, "; "))
	}
	return comparePictures(ctx, in, originalPath, resultPath)
}

// VerifyEncoded is what the processor runs on its own encode before
// committing it: VerifyDecoded (the probe checks and a read of every packet,
// counted against the frames the live decode saw) and VerifyResult's
// shape and picture checks, without VerifyResult's two probes (in is the
// original's Info, probed before the encode; the output's comes from
// VerifyDecoded's probe) and with the picture comparison made during
// the encode when EncodeAndDecode could (d.Sampled), else running
// alongside the read instead of after it. Each step is mostly one short
// process's start-up and I/O wait: on a 4 s clip this made the
// verification 2-4 times shorter. It returns the output's Info; errors are
// VerifyDecoded's and VerifyResult's (the read's first when both fail).
func VerifyEncoded(ctx context.Context, in Info, originalPath, output string, d Decoded) (Info, error) {
	return verifyEncoded(ctx, in, originalPath, output, d, nil)
}

// VerifyReadBack is VerifyEncoded with VerifyDecoded's readers started
// before the encode (rb, of the output EncodeAndDecodeFor wrote).
func VerifyReadBack(ctx context.Context, in Info, originalPath string, rb *Readback, d Decoded) (Info, error) {
	return verifyEncoded(ctx, in, originalPath, rb.output, d, rb)
}

func verifyEncoded(ctx context.Context, in Info, originalPath, output string, d Decoded, rb *Readback) (Info, error) {
	pctx, cancelPictures := context.WithCancel(ctx)
	defer cancelPictures()
	pics := make(chan error, 1)
	if d.Sampled {
		// Compared during the encode (livesample.go).
		pics <- d.PictureErr
	} else {
		go func() { pics <- comparePictures(pctx, in, originalPath, output) }()
	}
	var out Info
	var err error
	if rb != nil {
		out, err = rb.Verify(ctx, in, d)
	} else {
		out, err = VerifyDecoded(ctx, in, output, d)
	}
	if err == nil {
		if problems := compareShape(in, out); len(problems) > 0 {
			err = fmt.Errorf("%w: %s: %s", ErrVerify, output, strings.Join(problems, "; "))
		}
	}
	if err != nil {
		cancelPictures() // the verdict is known
		<-pics
		return out, err
	}
	return out, <-pics
}

// displaySize is a video stream's picture size as shown: rotated by its
// display matrix.
func displaySize(v Stream) (int, int) {
	if r := ((v.Rotation % 360) + 360) % 360; r == 90 || r == 270 {
		return v.Height, v.Width
	}
	return v.Width, v.Height
}

// compareShape lists how out's main video differs from in's in display
// size, frame rate and frame count.
func compareShape(in, out Info) []string {
	iv, _ := in.MainVideo()
	ov, ok := out.MainVideo()
	if !ok {
		return []string{"no video stream"}
	}
	var problems []string
	iw, ih := displaySize(iv)
	if ow, oh := displaySize(ov); ow != iw || oh != ih {
		problems = append(problems, fmt.Sprintf("display size %dx%d, original %dx%d", ow, oh, iw, ih))
	}
	if a, b := iv.FrameRate, ov.FrameRate; a > 0 && math.Abs(b-a) > 0.02*a {
		problems = append(problems, fmt.Sprintf("frame rate %.3f fps, original %.3f fps", b, a))
	}
	if a, b := iv.Frames, ov.Frames; a > 0 {
		tol := max(2, int64(math.Ceil(0.01*float64(a))))
		if d := b - a; d > tol || -d > tol {
			problems = append(problems, fmt.Sprintf("%d frames, original %d (allowed ±%d)", b, a, tol))
		}
	}
	return problems
}

// sampleTimes are the seek positions, in seconds, for a video of duration
// seconds at fps whose keyframes (of the result, ascending) are at keys:
// the middles of SamplePoints equal slices, each moved back to at most
// sampleReach·duration after the keyframe before it, kept far enough from
// the end that SampleFrames frames follow; duplicates removed.
//
// origKeys, when known (the original's keyframes), lets each slice take
// instead the point that is cheapest to reach in both files: reaching t
// decodes each file from its keyframe before t, and a phone's H.264 has
// one every 1-2 s at other times than x265's, so the result's keyframes
// alone left up to a GOP of the original to decode per point (measured on
// the bench's 30 s 1080p clip: 5.7 CPU s of verification, 6.2 % of the
// encode's CPU). The candidates are the slice's keyframes of either file
// and the point chosen without origKeys, which bounds the cost.
func sampleTimes(duration, fps float64, keys, origKeys []float64) []float64 {
	if fps <= 0 {
		fps = 30
	}
	last := max(0, duration-float64(SampleFrames+1)/fps)
	var ts []float64
	for i := range SamplePoints {
		t := duration * (float64(i) + 0.5) / SamplePoints
		t = min(t, prevKey(keys, t)+sampleReach*duration, last)
		if len(origKeys) > 0 {
			from, to := duration*float64(i)/SamplePoints, duration*float64(i+1)/SamplePoints
			best, bestCost := t, reachCost(t, keys, origKeys)
			for _, set := range [][]float64{keys, origKeys} {
				for _, c := range set {
					if c < from || c >= to || c > last {
						continue
					}
					if cost := reachCost(c, keys, origKeys); cost < bestCost || cost == bestCost && math.Abs(c-t) < math.Abs(best-t) {
						best, bestCost = c, cost
					}
				}
			}
			t = best
		}
		ts = append(ts, math.Round(t*1000)/1000)
	}
	sort.Float64s(ts)
	return slices.Compact(ts)
}

// prevKey is the last of keys (ascending) at or before t, else 0.
func prevKey(keys []float64, t float64) float64 {
	k := 0.0
	for _, kt := range keys {
		if kt <= t {
			k = kt
		}
	}
	return k
}

// reachCost is the seconds of video decoded to reach t in both files.
func reachCost(t float64, keys, origKeys []float64) float64 {
	return (t - prevKey(keys, t)) + (t - prevKey(origKeys, t))
}

// keyframeTimes returns the presentation times, in seconds, of the main
// video's keyframes (from the packet index: nothing is decoded). A local
// MP4's come from its sample tables (mp4box.KeyframeTimes, in-process: an
// ffprobe is a process start, about 0.15 s on 2 busy CPUs, on the
// verification's critical path); anything else from ffprobe.
func keyframeTimes(ctx context.Context, input string) ([]float64, error) {
	if !isURL(input) {
		if keys, err := boxKeyframes(strings.TrimPrefix(input, "file:")); err == nil {
			return keys, nil
		}
	}
	return probeKeyframes(ctx, input)
}

// boxKeyframes is mp4box.KeyframeTimes of the file at path.
func boxKeyframes(path string) ([]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return mp4box.KeyframeTimes(f, st.Size())
}

// probeKeyframes is keyframeTimes by ffprobe's packet list.
func probeKeyframes(ctx context.Context, input string) ([]float64, error) {
	args := append([]string{"-v", "error"}, trustArgs(input)...)
	args = append(args, "-select_streams", "V:0", "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", "-i", ffURL(input))
	cmd := exec.CommandContext(ctx, "ffprobe", args...)
	stderr := &tailBuffer{max: 4 << 10}
	cmd.Stderr = stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, checkVerdict(ctx, input, "list keyframes", err, oneLine(stderr.String()))
	}
	var keys []float64
	for _, l := range strings.Split(string(out), "\n") {
		pts, flags, ok := strings.Cut(strings.TrimSpace(l), ",")
		if ok && strings.HasPrefix(flags, "K") {
			if t, err := strconv.ParseFloat(pts, 64); err == nil {
				keys = append(keys, t)
			}
		}
	}
	sort.Float64s(keys)
	return keys, nil
}

// compareDims is the size both pictures are scaled to: the original's
// display size, reduced so that its longer side is at most CompareSize,
// in even pixels.
func compareDims(v Stream) (int, int) {
	w, h := displaySize(v)
	if long := max(w, h); long > CompareSize {
		w = int(math.Round(float64(w) * CompareSize / float64(long)))
		h = int(math.Round(float64(h) * CompareSize / float64(long)))
	}
	return max(2, w&^1), max(2, h&^1)
}

// comparePictures runs the sampled SSIM comparison of result against the
// original (probed as in).
func comparePictures(ctx context.Context, in Info, original, result string) error {
	v, _ := in.MainVideo()
	w, h := compareDims(v)
	keys, err := keyframeTimes(ctx, result)
	if err != nil {
		return err
	}
	// The original's keyframes from its index, read in-process (a streamed
	// original's by ranged reads: ffprobe would read its every packet).
	// Without them the points are placed by the result's alone.
	var origKeys []float64
	if isURL(original) {
		origKeys, _ = urlKeyframes(ctx, original)
	} else {
		origKeys, _ = boxKeyframes(strings.TrimPrefix(original, "file:"))
	}
	times := sampleTimes(in.Duration, v.FrameRate, keys, origKeys)
	scores, err := pictureScores(ctx, original, result, times, w, h, pictureProcs(v, times, keys, origKeys))
	if err != nil {
		return err
	}
	worst, worstAt := 2.0, 0.0
	for i, s := range scores {
		if s < worst {
			worst, worstAt = s, times[i]
		}
	}
	if worst < SSIMFloor {
		return fmt.Errorf("%w: %s: the picture differs from the original's at %.2fs: SSIM %.3f (luma, compared at %dx%d), at least %.2f needed",
			ErrVerify, result, worstAt, worst, w, h, SSIMFloor)
	}
	return nil
}

// splitFrames is the decode work, in 1080p frames, above which the
// picture comparison is shared among one ffmpeg per CPU. Below it one
// ffmpeg compares every point: a second one's start-up (some 200 shared
// libraries, 0.12-0.18 CPU s) costs about what decoding 15-30 such
// frames does, and the result-downloader, which compares several results
// at once, has no idle CPU for it to use.
const splitFrames = 60

// pictureProcs is how many ffmpeg compare the points at times of a video
// v whose result's keyframes are keys and original's origKeys: the work is
// the frames decoded from each file's keyframe to each point, and the
// points' own, in 1080p equivalents.
func pictureProcs(v Stream, times, keys, origKeys []float64) int {
	fps := v.FrameRate
	if fps <= 0 {
		fps = 30
	}
	frames := 0.0
	for _, t := range times {
		frames += reachCost(t, keys, origKeys)*fps + 2*SampleFrames
	}
	if frames*float64(v.Width*v.Height)/(1920*1080) < splitFrames {
		return 1
	}
	return max(1, min(len(times), CPUs()))
}

// pictureScores returns the luma SSIM of result against original at each
// of times, compared at w x h. The points are shared out among procs
// ffmpeg (round robin; pictureProcs), each comparing its points one after
// another: every ffmpeg start-up loads some 200 libraries (0.15 s here,
// as much as a point's decode), so five processes, as before, spent more
// on starting than on comparing. The first failure stops the others; it
// is returned (a verdict before a cancellation it caused).
func pictureScores(ctx context.Context, original, result string, times []float64, w, h, procs int) ([]float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	scores := make([]float64, len(times))
	procs = max(1, min(procs, len(times)))
	errs := make([]error, procs)
	var wg sync.WaitGroup
	for p := 0; p < procs; p++ {
		var idx []int
		for i := p; i < len(times); i += procs {
			idx = append(idx, i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ts []float64
			for _, i := range idx {
				ts = append(ts, times[i])
			}
			got, err := sampleSSIMs(ctx, original, result, ts, w, h)
			if errs[p] = err; err != nil {
				cancel()
				return
			}
			for k, i := range idx {
				scores[i] = got[k]
			}
		}()
	}
	wg.Wait()
	var first error
	for _, err := range errs {
		if err != nil && (first == nil || errors.Is(first, context.Canceled) && !errors.Is(err, context.Canceled)) {
			first = err
		}
	}
	return scores, first
}

// sampleArgs is the ffmpeg command comparing SampleFrames frames of result
// with original from each of times on, both scaled to w x h grey, point i
// writing one "n:… Y:…" line per frame pair to the file s<i>.log (in the
// command's working directory). One decoder thread each: the few frames
// from the keyframe to a point gain little from frame threads, whose
// set-up cost 16 % more CPU (1.95 against 2.32 CPU s per VerifyResult
// of a 10 s 1080p clip, no slower).
func sampleArgs(original, result string, times []float64, w, h int) []string {
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-v", "error"}
	var graph []string
	for i, t := range times {
		ss := strconv.FormatFloat(t, 'f', 3, 64)
		for _, in := range []string{original, result} {
			if isURL(in) {
				args = append(args, httpInputFlags...)
			}
			args = append(args, trustArgs(in)...)
			args = append(args, "-threads", "1", "-ss", ss, "-i", ffURL(in))
		}
		scale := fmt.Sprintf("scale=%d:%d:flags=area,format=gray,setsar=1,setpts=PTS-STARTPTS", w, h)
		graph = append(graph, fmt.Sprintf("[%d:V:0]%s[a%d];[%d:V:0]%s[b%d];[a%d][b%d]ssim=stats_file=s%d.log[c%d]",
			2*i, scale, i, 2*i+1, scale, i, i, i, i, i))
	}
	args = append(args, "-filter_complex", strings.Join(graph, ";"))
	for i := range times {
		args = append(args, "-map", fmt.Sprintf("[c%d]", i), "-frames:v", strconv.Itoa(SampleFrames), "-f", "null", "-")
	}
	return args
}

// sampleSSIMs returns the mean luma SSIM of the frames compared at each of
// times, with one ffmpeg.
func sampleSSIMs(ctx context.Context, original, result string, times []float64, w, h int) ([]float64, error) {
	var at []string
	for _, t := range times {
		at = append(at, fmt.Sprintf("%.2fs", t))
	}
	what := fmt.Sprintf("the pictures of %s at %s", result, strings.Join(at, ", "))
	dir, err := os.MkdirTemp("", "hevc-ssim-")
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", what, err)
	}
	defer os.RemoveAll(dir)
	// Relative stats files in a directory of their own (no path to escape
	// inside the filter graph), so the inputs' paths are made absolute.
	abs := func(in string) (string, error) {
		if isURL(in) {
			return in, nil
		}
		return filepath.Abs(strings.TrimPrefix(in, "file:"))
	}
	if original, err = abs(original); err == nil {
		result, err = abs(result)
	}
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", what, err)
	}
	cmd := exec.CommandContext(ctx, "ffmpeg", sampleArgs(original, result, times, w, h)...)
	cmd.Dir = dir
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stderr = stderr
	werr := cmd.Run()
	msg := oneLine(stderr.String())
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("verify %s: %w", what, ctx.Err())
	case errors.Is(werr, exec.ErrNotFound):
		return nil, fmt.Errorf("verify %s: %w", what, werr)
	case werr != nil && environmental(msg):
		return nil, fmt.Errorf("verify %s: compare: %w: %s", what, werr, msg)
	case werr != nil:
		return nil, fmt.Errorf("%w: %s cannot be compared with the original's: %v: %s", ErrVerify, what, werr, msg)
	}
	scores := make([]float64, len(times))
	for i, t := range times {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("s%d.log", i)))
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", what, err)
		}
		mean, n := meanSSIM(string(b))
		if n == 0 {
			return nil, fmt.Errorf("%w: the pictures of %s at %.2fs: no frames to compare with the original's %s", ErrVerify, result, t, msg)
		}
		scores[i] = mean
	}
	return scores, nil
}

// meanSSIM averages the Y of the first SampleFrames lines of an ssim stats
// file ("n:1 Y:0.99 All:0.99 (20.1)") and says how many it found. Only
// those count: when the output stops, ffmpeg flushes one more pair whose
// frames no longer match (0.82-0.92 where the others are 0.99).
func meanSSIM(stats string) (float64, int) {
	var sum float64
	n := 0
	for _, line := range strings.Split(stats, "\n") {
		var frame int
		var y float64
		found := false
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "n:"); ok {
				frame, _ = strconv.Atoi(v)
			}
			if v, ok := strings.CutPrefix(f, "Y:"); ok {
				if x, err := strconv.ParseFloat(v, 64); err == nil {
					y, found = x, true
				}
			}
		}
		if found && frame >= 1 && frame <= SampleFrames {
			sum += y
			n++
		}
	}
	if n == 0 {
		return 0, 0
	}
	return sum / float64(n), n
}
