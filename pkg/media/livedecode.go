package media

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Decoded is what EncodeAndDecode's decoder saw of the encoder's video.
type Decoded struct {
	Frames int64 // video frames decoded without an error
	// Tail is how long the decode ran on after the encode had finished:
	// the part of it that found no idle CPU during the encode.
	Tail time.Duration
	// Sampled: the encode compared sampled pictures of the original and
	// of its output (livesample.go); SSIM is the worst point's luma SSIM
	// and PictureErr the verdict (wrapping ErrVerify when they differ).
	// Without it, VerifyEncoded compares pictures after the encode.
	Sampled    bool
	SSIM       float64
	PictureErr error
}

// EncodeAndDecode encodes like Encode and, while x265 works, decodes the
// video bitstream it produces: the encoder also writes its video packets
// as Annex B to a spool file beside output (ffmpeg's tee muxer; the MP4
// gets the very same packets), and a second ffmpeg decodes that file as it
// grows, at the SCHED_IDLE CPU priority. x265 leaves part of the CPUs idle
// (frame and row dependencies), so the decode that Verify would run after
// the encode costs almost no wall time here. VerifyDecoded then checks the
// MP4 itself against what was decoded.
//
// Errors are Encode's; a decode failure wraps ErrVerify.
func EncodeAndDecode(ctx context.Context, input, output string, plan Plan, onProgress func(Progress)) (d Decoded, err error) {
	return EncodeAndDecodeFor(ctx, input, output, plan, onProgress, nil)
}

// EncodeAndDecodeFor is EncodeAndDecode releasing rb (StartReadback of
// output; may be nil) the moment the encoder has finished output, so that
// the verification's readers run alongside the rest of the live decode.
func EncodeAndDecodeFor(ctx context.Context, input, output string, plan Plan, onProgress func(Progress), rb *Readback) (d Decoded, err error) {
	if len(plan.Args) == 0 {
		return d, fmt.Errorf("encode %s: empty plan", input)
	}
	spool := output + ".decode.hevc"
	defer os.Remove(spool)
	defer func() {
		if err != nil {
			_ = os.Remove(output)
		}
	}()
	// Created before ffmpeg opens it (O_TRUNC keeps the inode), so the
	// decoder can start reading at once.
	sp, err := os.Create(spool)
	if err != nil {
		return d, fmt.Errorf("encode %s: spool for the live decode: %w", input, err)
	}
	defer sp.Close()

	dctx, cancelDecode := context.WithCancel(ctx)
	defer cancelDecode()
	encoded := make(chan struct{})
	// The pictures compared: picked by frame index on both sides.
	sample := newLiveSample(plan, output)
	decArgs := liveDecodeArgs("pipe:0")
	if sample != nil {
		defer sample.remove()
		decArgs = append(decArgs, sample.outputArgs("0:v:0", sample.dec)...)
	}
	dec := exec.CommandContext(dctx, "ffmpeg", decArgs...)
	dec.WaitDelay = 10 * time.Second
	dec.Stdin = &follower{f: sp, done: encoded, ctx: dctx}
	decErr := &tailBuffer{max: 8 << 10}
	dec.Stderr = decErr
	decOut, err := dec.StdoutPipe()
	if err != nil {
		return d, fmt.Errorf("encode %s: %w", input, err)
	}
	if err := startIdle(dec); err != nil {
		return d, fmt.Errorf("encode %s: start the live decode: %w", input, err)
	}
	frames := make(chan int64, 1)
	go func() { frames <- lastFrame(decOut) }()

	args, err := teeCommand(input, output, spool, plan)
	if err != nil {
		close(encoded)
		cancelDecode()
		<-frames
		_ = dec.Wait()
		return d, err
	}
	if sample != nil {
		args = append(args, sample.outputArgs("0:V:0", sample.src)...)
	}
	encErr := runEncoder(ctx, input, args, plan.Duration, onProgress)
	close(encoded) // the spool is complete (or abandoned): the decoder drains it
	if encErr == nil && rb != nil {
		rb.Release()
	}
	if encErr != nil {
		cancelDecode()
	}
	encodedAt := time.Now()
	d.Frames = <-frames
	werr := dec.Wait()
	d.Tail = time.Since(encodedAt)
	if encErr != nil {
		return d, encErr
	}
	if err := checkVerdict(ctx, "the video of "+output, "decode", werr, oneLine(decErr.String())); err != nil {
		return d, err
	}
	if d.Frames <= 0 {
		return d, fmt.Errorf("%w: the video of %s decodes to no frames", ErrVerify, output)
	}
	if sample != nil {
		d.Sampled = true
		d.SSIM, d.PictureErr = sample.verdict(output)
	}
	return d, nil
}

// liveDecodeArgs is the live decoder's command line, reading an Annex B
// HEVC stream from input and printing -progress to stdout.
//
// ffmpeg's own decoder threading: one thread spends about 10 % less
// CPU (3.1 vs 3.5 CPU s on 10 s of 1080p) but falls behind whenever
// x265 leaves no CPU idle, and the backlog it then decodes alone after
// the encode cost more wall time (tails of 0.8-1.0 s, against
// 0.1-0.3 s) than the CPU it saved.
//
// -probesize: by default ffmpeg reads 5 MB of the stream before it
// decodes a frame, which at 1080p is the first ~9 s of the encode: the
// CPU x265 leaves idle meanwhile was lost, and the decoder ended 0.7-1 s
// behind. 64 KiB holds the parameter sets and the start of the first
// frame, all the demuxer needs.
//
// The loop filters (deblocking, SAO) stay on, although skipping them
// would save 13 % of the decode's CPU: the decoded pictures are compared
// with the original's (livesample.go), and without the filters they are
// not the pictures a player shows (the error also carries into every
// frame predicted from them: -0.02 to -0.03 SSIM on the bench clips).
//
// -protocol_whitelist: only the pipe it reads (a file in tests), like
// every other reader (trust.go); -f hevc is forced already.
func liveDecodeArgs(input string) []string {
	wl := protocols(input)
	if strings.HasPrefix(input, "pipe:") {
		wl = "pipe"
	}
	return []string{"-hide_banner", "-nostats", "-v", "error", "-progress", "pipe:1",
		"-probesize", "65536",
		"-protocol_whitelist", wl, "-f", "hevc", "-i", input, "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "null", "-"}
}

// VerifyDecoded verifies output like Verify, with the video's decode taken
// from EncodeAndDecode: the probe checks and, at the same time (each is
// mostly one process's start-up and I/O wait), one pass over the MP4 that
// reads every packet (the video stream-copied, the audio decoded) and
// counts the video packets, which must be the frames the live decode saw.
// Mismatches wrap ErrVerify; the probe's findings come first.
func VerifyDecoded(ctx context.Context, in Info, output string, d Decoded) (Info, error) {
	rctx, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	cmd := exec.CommandContext(rctx, "ffmpeg", readBackArgs(output)...)
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Info{}, fmt.Errorf("verify %s: %w", output, err)
	}
	if err := cmd.Start(); err != nil {
		return Info{}, fmt.Errorf("verify %s: %w", output, err)
	}
	packets := make(chan int64, 1)
	go func() { packets <- lastFrame(stdout) }()

	out, perr := verifyProbed(ctx, in, output)
	if perr != nil {
		cancelRead()
	}
	n := <-packets
	werr := cmd.Wait()
	if perr != nil {
		return out, perr
	}
	if err := checkVerdict(ctx, output, "read back", werr, oneLine(stderr.String())); err != nil {
		return out, err
	}
	if n != d.Frames {
		return out, fmt.Errorf("%w: %s holds %d video packets, the encoder's stream decoded to %d frames", ErrVerify, output, n, d.Frames)
	}
	return out, nil
}

// readBackArgs is the command line of the read of every packet of output
// (the video stream-copied, the audio decoded), printing -progress (the
// video packets counted as frames) to stdout.
func readBackArgs(output string) []string {
	args := append([]string{"-hide_banner", "-nostdin", "-nostats", "-v", "error", "-progress", "pipe:1"}, trustArgs(output)...)
	return append(args, "-i", ffURL(output), "-map", "0:V:0", "-map", "0:a?", "-c:v", "copy", "-f", "null", "-")
}

// teeCommand is Command for EncodeAndDecode: one encode, two muxers. The
// MP4 muxer's options move into its tee slave; global headers are forced
// on (what the MP4 muxer alone asks of x265, so the video is the same bit
// for bit) and dump_extra puts them back in front of every keyframe of the
// Annex B copy, which the decoder needs.
func teeCommand(input, output, spool string, plan Plan) ([]string, error) {
	var mp4 []string
	var rest []string
	a := plan.Args
	for i := 0; i < len(a); i++ {
		switch a[i] {
		case "-f", "-movflags", "-strict":
			if i+1 >= len(a) {
				return nil, fmt.Errorf("encode %s: plan ends in %s", input, a[i])
			}
			if a[i] != "-f" {
				mp4 = append(mp4, strings.TrimPrefix(a[i], "-")+"="+a[i+1])
			} else if a[i+1] != "mp4" {
				return nil, fmt.Errorf("encode %s: live decode needs an MP4 output, plan has %s", input, a[i+1])
			}
			i++
		default:
			rest = append(rest, a[i])
		}
	}
	spec := "[" + strings.Join(append([]string{"f=mp4"}, mp4...), ":") + "]" + teeEscape(ffURL(output)) +
		"|[f=hevc:select=v:bsfs/v=dump_extra]" + teeEscape(ffURL(spool))
	p := plan
	p.Args = append(rest, "-flags:v", "+global_header", "-f", "tee")
	return command(input, spec, p), nil
}

// teeEscape protects a slave's file name from the tee muxer's parser,
// which splits on | and unquotes '…' and backslashes.
func teeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, `|`, `\|`, `[`, `\[`)
	return r.Replace(s)
}

// lastFrame reads ffmpeg -progress output to EOF and returns the last
// frame= value (-1 when there was none).
func lastFrame(r io.Reader) int64 {
	n := int64(-1)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "frame="); ok {
			if f, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				n = f
			}
		}
	}
	_, _ = io.Copy(io.Discard, r)
	return n
}

// follower reads a file another process is still writing: at its end it
// waits for more until done is closed, then returns what is left and EOF.
type follower struct {
	f    *os.File
	done <-chan struct{}
	ctx  context.Context
}

func (r *follower) Read(p []byte) (int, error) {
	for {
		finished := false
		select {
		case <-r.done:
			finished = true
		default:
		}
		n, err := r.f.Read(p)
		if n > 0 || err != io.EOF || finished {
			return n, err
		}
		select {
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		case <-r.done:
		case <-time.After(20 * time.Millisecond):
		}
	}
}
