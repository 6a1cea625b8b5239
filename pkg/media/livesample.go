package media

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// liveSample is the picture comparison EncodeAndDecode makes on its own
// frames: the encoder's ffmpeg, which decodes the original anyway, also
// writes a few of the original's frames (scaled down, luma only) to src,
// and the live decoder writes the same frames of the encoded video to
// dec. Comparing them costs no decode, seek or process of its own,
// where comparePictures after the encode costs SamplePoints ffmpeg runs
// that each read and decode both files again (most of the processor's
// time after the encode on a short clip).
//
// Frames are picked by their index in presentation order, which the
// original's decode and the output's share (fps_mode passthrough: one
// output frame per input frame). Both sides are in coded orientation
// (the encode does not rotate), so the sizes are the coded ones.
type liveSample struct {
	frames   []int64 // ascending, SampleFrames per point
	w, h     int
	fps      float64
	src, dec string
}

// newLiveSample picks SamplePoints runs of SampleFrames frames at the
// middles of equal slices of a video of n frames (estimated from the
// duration when the container does not say), or returns nil when there
// is nothing to pick from (the comparison is then comparePictures').
func newLiveSample(p Plan, output string) *liveSample {
	n := p.Frames
	if n <= 0 && p.FrameRate > 0 {
		n = int64(p.Duration * p.FrameRate)
	}
	if n <= 0 || p.Width <= 0 || p.Height <= 0 {
		return nil
	}
	s := &liveSample{fps: p.FrameRate, src: output + ".sample-src.gray", dec: output + ".sample-dec.gray"}
	s.w, s.h = compareDims(Stream{Width: p.Width, Height: p.Height})
	for i := int64(0); i < SamplePoints; i++ {
		first := (2*i + 1) * n / (2 * SamplePoints)
		first = max(0, min(first, n-SampleFrames))
		for f := first; f < first+SampleFrames && f < n; f++ {
			if len(s.frames) == 0 || f > s.frames[len(s.frames)-1] {
				s.frames = append(s.frames, f)
			}
		}
	}
	return s
}

// filter selects the picked frames and reduces them to 8-bit luma at
// w x h, the same reduction comparePictures makes.
func (s *liveSample) filter() string {
	var runs []string
	for i := 0; i < len(s.frames); {
		j := i
		for j+1 < len(s.frames) && s.frames[j+1] == s.frames[j]+1 {
			j++
		}
		runs = append(runs, fmt.Sprintf("between(n,%d,%d)", s.frames[i], s.frames[j]))
		i = j + 1
	}
	return fmt.Sprintf("select='%s',scale=%d:%d:flags=area,format=gray", strings.Join(runs, "+"), s.w, s.h)
}

// outputArgs is the extra ffmpeg output writing the picked frames of
// stream to file (raw, w x h bytes each).
func (s *liveSample) outputArgs(stream, file string) []string {
	return []string{"-map", stream, "-vf", s.filter(), "-fps_mode", "passthrough",
		"-f", "rawvideo", "-pix_fmt", "gray", ffURL(file)}
}

// verdict compares the two files: the luma SSIM of each point (the mean
// of its frames) must reach SSIMFloor, and both sides must hold every
// picked frame. It returns the worst point's SSIM.
func (s *liveSample) verdict(output string) (float64, error) {
	a, err := os.ReadFile(s.src)
	if err != nil {
		return 0, fmt.Errorf("verify %s: the original's sampled frames: %w", output, err)
	}
	b, err := os.ReadFile(s.dec)
	if err != nil {
		return 0, fmt.Errorf("verify %s: the output's sampled frames: %w", output, err)
	}
	size := s.w * s.h
	want := len(s.frames) * size
	// The original's count can fall short where the container's frame
	// count was an estimate; the output must match whatever it holds.
	if len(b) != len(a) || len(a) == 0 || len(a)%size != 0 || len(a) > want {
		return 0, fmt.Errorf("%w: %s: %d of the original's sampled frames, %d of the output's (%d picked)",
			ErrVerify, output, len(a)/size, len(b)/size, len(s.frames))
	}
	worst, worstAt := 2.0, 0.0
	got := len(a) / size
	for i := 0; i < got; {
		// A point: the frames that follow each other from i.
		j := i + 1
		for j < got && s.frames[j] == s.frames[j-1]+1 {
			j++
		}
		var sum float64
		for k := i; k < j; k++ {
			sum += lumaSSIM(a[k*size:(k+1)*size], b[k*size:(k+1)*size], s.w, s.h)
		}
		if m := sum / float64(j-i); m < worst {
			worst, worstAt = m, float64(s.frames[i])
		}
		i = j
	}
	if worst < SSIMFloor {
		at := "frame " + strconv.FormatInt(int64(worstAt), 10)
		if s.fps > 0 {
			at = fmt.Sprintf("%.2fs", worstAt/s.fps)
		}
		return worst, fmt.Errorf("%w: %s: the picture differs from the original's at %s: SSIM %.3f (luma, compared at %dx%d), at least %.2f needed",
			ErrVerify, output, at, worst, s.w, s.h, SSIMFloor)
	}
	return worst, nil
}

func (s *liveSample) remove() {
	_ = os.Remove(s.src)
	_ = os.Remove(s.dec)
}

// lumaSSIM is the structural similarity of two 8-bit planes of w x h, as
// ffmpeg's ssim filter computes it (8x8 windows on a 4-pixel grid, the
// x264 constants), so that SSIMFloor means the same for both.
func lumaSSIM(a, b []byte, w, h int) float64 {
	bw, bh := w/4, h/4
	if bw < 2 || bh < 2 || len(a) < w*h || len(b) < w*h {
		if bytesEqual(a, b) {
			return 1
		}
		return 0
	}
	type sums struct{ s1, s2, ss, s12 int64 }
	blocks := make([]sums, bw*bh)
	for by := 0; by < bh; by++ {
		for bx := 0; bx < bw; bx++ {
			var s sums
			for y := by * 4; y < by*4+4; y++ {
				for x := bx * 4; x < bx*4+4; x++ {
					p, q := int64(a[y*w+x]), int64(b[y*w+x])
					s.s1 += p
					s.s2 += q
					s.ss += p*p + q*q
					s.s12 += p * q
				}
			}
			blocks[by*bw+bx] = s
		}
	}
	// ffmpeg's (int)(.01*.01*255*255*64 + .5) and (int)(.03*.03*255*255*64*63 + .5).
	const c1, c2 = 416.0, 235963.0
	var total float64
	for y := 0; y < bh-1; y++ {
		for x := 0; x < bw-1; x++ {
			var s sums
			for _, k := range [4]int{y*bw + x, y*bw + x + 1, (y+1)*bw + x, (y+1)*bw + x + 1} {
				s.s1 += blocks[k].s1
				s.s2 += blocks[k].s2
				s.ss += blocks[k].ss
				s.s12 += blocks[k].s12
			}
			s1, s2 := float64(s.s1), float64(s.s2)
			vars := float64(s.ss*64) - s1*s1 - s2*s2
			covar := float64(s.s12*64) - s1*s2
			total += (2*s1*s2 + c1) * (2*covar + c2) / ((s1*s1 + s2*s2 + c1) * (vars + c2))
		}
	}
	return total / float64((bw-1)*(bh-1))
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }
