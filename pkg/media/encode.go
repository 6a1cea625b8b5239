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
	"sync"
	"time"
)

// Progress is one ffmpeg -progress report.
type Progress struct {
	Percent float64 // 0..100 of the input duration; 100 at the end
	FPS     float64 // frames encoded per second
	Speed   float64 // media seconds per wall-clock second (ffmpeg's "1.5x")
	OutTime time.Duration
	ETA     time.Duration // remaining time at the current speed; 0 when unknown
}

// runtimeFlags lead every ffmpeg command Encode runs.
var runtimeFlags = []string{"-hide_banner", "-nostdin", "-nostats", "-v", "error", "-progress", "pipe:1", "-y"}

// httpInputFlags make ffmpeg ride out a dropped connection or a stalled
// server when it streams its input from a (presigned) HTTP URL: reconnect
// and resume with a range request, give up after 60 s without data.
var httpInputFlags = []string{"-reconnect", "1", "-reconnect_on_network_error", "1", "-reconnect_delay_max", "30", "-rw_timeout", "60000000"}

// Command returns the full ffmpeg argv (without the program name) that
// Encode runs for plan.
func Command(input, output string, plan Plan) []string {
	return command(input, ffURL(output), plan)
}

// command is Command with output passed to ffmpeg as it is.
func command(input, output string, plan Plan) []string {
	args := append([]string{}, runtimeFlags...)
	args = append(args, plan.InputArgs...)
	if isURL(input) {
		args = append(args, httpInputFlags...)
	}
	args = append(args, trustArgs(input)...)
	args = append(args, "-i", ffURL(input))
	args = append(args, plan.Args...)
	return append(args, output)
}

// Encode runs ffmpeg for plan, writing output (overwritten if it exists;
// removed again if the encode fails). onProgress (may be nil) is called
// from Encode's goroutine for each -progress report. Cancelling ctx kills
// ffmpeg and returns an error wrapping ctx.Err(). A failure caused by the
// input (unreadable, undecodable, truncated) wraps ErrBadInput; other
// failures carry the tail of ffmpeg's stderr.
func Encode(ctx context.Context, input, output string, plan Plan, onProgress func(Progress)) (err error) {
	if len(plan.Args) == 0 {
		return fmt.Errorf("encode %s: empty plan", input)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(output)
		}
	}()
	return runEncoder(ctx, input, Command(input, output, plan), plan.Duration, onProgress)
}

// runEncoder runs ffmpeg with args, reports its progress and classifies
// its failure (see Encode).
func runEncoder(ctx context.Context, input string, args []string, duration float64, onProgress func(Progress)) error {
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	cmd.WaitDelay = 10 * time.Second
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("encode %s: %w", input, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("encode %s: start ffmpeg: %w", input, err)
	}
	readProgress(stdout, duration, onProgress)
	werr := cmd.Wait()
	msg := oneLine(stderr.String())
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("encode %s: ffmpeg stopped: %w", input, ctx.Err())
	case werr != nil && badInputMessage(msg):
		return fmt.Errorf("%w: %s cannot be decoded: %s", ErrBadInput, input, msg)
	case werr != nil:
		return fmt.Errorf("encode %s: ffmpeg: %w: %s", input, werr, msg)
	case strings.Contains(msg, "partial file"):
		// ffmpeg exits 0 on a truncated file whose index survived, with a
		// short output; say so instead of leaving it to Verify's duration check.
		return fmt.Errorf("%w: %s is truncated: %s", ErrBadInput, input, msg)
	}
	return nil
}

// badInputMessage reports whether ffmpeg's stderr blames the input.
func badInputMessage(msg string) bool {
	if environmental(msg) {
		return false
	}
	for _, s := range []string{
		"Invalid data found when processing input", "moov atom not found", "matches no streams",
		"Error while decoding", "partial file", "could not find codec parameters",
		"Could not find codec parameters", "Error splitting the input", "Invalid NAL unit",
		"does not contain any stream", "Decoding error", "Error reading header",
		"Unknown decoder", "Decoder (codec", "error reading header",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// readProgress parses ffmpeg's -progress key=value blocks until EOF.
func readProgress(r io.Reader, duration float64, onProgress func(Progress)) {
	sc := bufio.NewScanner(r)
	start := time.Now()
	var p Progress
	var frames float64
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch k {
		case "frame":
			frames = parseFloat(v)
		case "fps":
			// ffmpeg 5.1 reports fps=0.00 during the first second.
			p.FPS = parseFloat(v)
			if el := time.Since(start).Seconds(); p.FPS <= 0 && el > 0 {
				p.FPS = frames / el
			}
		case "speed":
			p.Speed = parseFloat(strings.TrimSuffix(strings.TrimSpace(v), "x"))
		case "out_time_us":
			if us, err := strconv.ParseInt(v, 10, 64); err == nil && us >= 0 {
				p.OutTime = time.Duration(us) * time.Microsecond
			}
		case "progress":
			if duration > 0 {
				p.Percent = min(100, 100*p.OutTime.Seconds()/duration)
				p.ETA = 0
				if rest := duration - p.OutTime.Seconds(); rest > 0 && p.Speed > 0 {
					p.ETA = time.Duration(rest / p.Speed * float64(time.Second))
				}
			}
			if v == "end" {
				p.Percent, p.ETA = 100, 0
			}
			if onProgress != nil {
				onProgress(p)
			}
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
