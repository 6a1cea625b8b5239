package media

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
)

// CheckStreams is the part of Verify that the container answers: the
// output has exactly one (non-attached) video stream, HEVC tagged hvc1, as
// many audio streams as the input, and a duration within max(0.5 s, 1 %)
// of the input's. in and out may come from ProbeFast. Mismatches wrap
// ErrVerify and name output.
func CheckStreams(in, out Info, output string) error {
	var problems []string
	if n := out.videoCount(); n != 1 {
		problems = append(problems, fmt.Sprintf("%d video streams, want 1", n))
	}
	if v, ok := out.MainVideo(); ok && (v.Codec != "hevc" || v.CodecTag != "hvc1") {
		problems = append(problems, fmt.Sprintf("video %s tagged %s, want hevc tagged hvc1", v.Codec, v.CodecTag))
	}
	if a, b := in.Count("audio"), out.Count("audio"); a != b {
		problems = append(problems, fmt.Sprintf("%d audio streams, input has %d", b, a))
	}
	tol := math.Max(0.5, 0.01*in.Duration)
	if d := math.Abs(out.Duration - in.Duration); d > tol {
		problems = append(problems, fmt.Sprintf("duration %.3fs, input %.3fs (off by %.3fs, allowed %.3fs)", out.Duration, in.Duration, d, tol))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrVerify, output, strings.Join(problems, "; "))
	}
	return nil
}

// VerifyStreams probes output with ProbeFast and runs CheckStreams against
// in: Verify without the decode and without the checks that need the
// bitstream (rotation, bit depth, HDR transfer). It is for outputs whose
// full verification already ran on the same bytes elsewhere.
func VerifyStreams(ctx context.Context, in Info, output string) (Info, error) {
	out, err := ProbeFast(ctx, output)
	if err != nil {
		if errors.Is(err, ErrBadInput) {
			return out, fmt.Errorf("%w: %s: output unreadable: %v", ErrVerify, output, err)
		}
		return out, fmt.Errorf("verify %s: %w", output, err)
	}
	return out, CheckStreams(in, out, output)
}
