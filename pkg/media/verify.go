package media

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strings"
)

// Verify checks an encoded output against its input's Info and returns the
// output's Info. The output must probe; have exactly one (non-attached)
// video stream, HEVC tagged hvc1, with the input's display rotation, 10-bit
// when the input needed it and the input's HDR transfer; as many audio
// streams as the input; a duration within max(0.5 s, 1 %) of the input's;
// and it must decode completely without errors
// (ffmpeg -v error -i out -map 0:V:0 -map 0:a? -f null -). Data tracks are
// not compared. Mismatches wrap ErrVerify; a missing ffmpeg or a cancelled
// ctx do not.
func Verify(ctx context.Context, in Info, output string) (Info, error) {
	out, err := verifyProbed(ctx, in, output)
	if err != nil {
		return out, err
	}
	if err := Decode(ctx, output); err != nil {
		return out, err
	}
	return out, nil
}

// verifyProbed is Verify without the decode: the checks ffprobe answers.
func verifyProbed(ctx context.Context, in Info, output string) (Info, error) {
	out, err := Probe(ctx, output)
	if err != nil {
		return out, probeFailure(output, err)
	}
	return checkProbed(in, out, output)
}

// probeFailure is a failed probe of output as a verdict: unreadable output
// wraps ErrVerify, anything else (ffprobe missing, a cancelled ctx) not.
func probeFailure(output string, err error) error {
	if errors.Is(err, ErrBadInput) {
		return fmt.Errorf("%w: %s: output unreadable: %v", ErrVerify, output, err)
	}
	return fmt.Errorf("verify %s: %w", output, err)
}

// checkProbed is verifyProbed's verdict on out, the probe of output.
func checkProbed(in, out Info, output string) (Info, error) {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	if n := out.videoCount(); n != 1 {
		bad("%d video streams, want 1", n)
	}
	if a, b := in.Count("audio"), out.Count("audio"); a != b {
		bad("%d audio streams, input has %d", b, a)
	}
	iv, _ := in.MainVideo()
	if ov, ok := out.MainVideo(); ok {
		if ov.Codec != "hevc" {
			bad("video codec %s, want hevc", ov.Codec)
		}
		if ov.CodecTag != "hvc1" {
			bad("video tag %s, want hvc1", ov.CodecTag)
		}
		if ov.Rotation != iv.Rotation {
			bad("rotation %d, input has %d", ov.Rotation, iv.Rotation)
		}
		if isTenBit(iv) && !highBitDepth.MatchString(ov.PixFmt) {
			bad("pixel format %s, want 10-bit like the input's %s", ov.PixFmt, iv.PixFmt)
		}
		if t := iv.ColorTransfer; (t == "arib-std-b67" || t == "smpte2084") && ov.ColorTransfer != t {
			bad("colour transfer %q, input has %q", ov.ColorTransfer, t)
		}
	}
	tol := math.Max(0.5, 0.01*in.Duration)
	if d := math.Abs(out.Duration - in.Duration); d > tol {
		bad("duration %.3fs, input %.3fs (off by %.3fs, allowed %.3fs)", out.Duration, in.Duration, d, tol)
	}
	if len(problems) > 0 {
		return out, fmt.Errorf("%w: %s: %s", ErrVerify, output, strings.Join(problems, "; "))
	}
	return out, nil
}

// Decode decodes everything Verify maps (the main video and every audio
// stream) and fails, wrapping ErrVerify, on any error message ffmpeg
// prints; a missing ffmpeg or a cancelled ctx do not wrap ErrVerify.
func Decode(ctx context.Context, output string) error {
	stderr := &tailBuffer{max: 8 << 10}
	args := append([]string{"-hide_banner", "-nostdin", "-nostats", "-v", "error"}, trustArgs(output)...)
	cmd := exec.CommandContext(ctx, "ffmpeg", append(args,
		"-i", ffURL(output), "-map", "0:V:0", "-map", "0:a?", "-f", "null", "-")...)
	cmd.Stderr = stderr
	err := cmd.Run()
	return checkVerdict(ctx, output, "decode", err, oneLine(stderr.String()))
}

// checkVerdict classifies how an ffmpeg that checked what (a file name, or
// e.g. "the video of X") ended, doing verb ("decode", "read back"): a
// cancelled ctx, a missing ffmpeg and trouble with the surroundings are
// errors of their own; a failure or any error message counts against the
// file and wraps ErrVerify.
func checkVerdict(ctx context.Context, what, verb string, err error, msg string) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("verify %s: %w", what, ctx.Err())
	case errors.Is(err, exec.ErrNotFound):
		return fmt.Errorf("verify %s: %w", what, err)
	case err != nil && environmental(msg):
		return fmt.Errorf("verify %s: %s: %w: %s", what, verb, err, msg)
	case err != nil:
		return fmt.Errorf("%w: %s does not %s: %v: %s", ErrVerify, what, verb, err, msg)
	case msg != "":
		return fmt.Errorf("%w: %s: %s with errors: %s", ErrVerify, what, verb, msg)
	}
	return nil
}
