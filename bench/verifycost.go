package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/procstat"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// verifyCost is media.VerifyResult timed on one result: the check the
// result-downloader and hevc-processor run before an original may go.
type verifyCost struct {
	Wall float64 `json:"seconds"`
	CPU  float64 `json:"cpu_seconds"` // the ffprobe and ffmpeg it runs
}

// measureVerify runs media.VerifyResult(original, result) and times it;
// its CPU time is that of the tools it waits for (RUSAGE_CHILDREN).
func measureVerify(ctx context.Context, original, result string) (verifyCost, error) {
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &before)
	start := time.Now()
	err := media.VerifyResult(ctx, original, result)
	wall := time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &after)
	if err != nil {
		return verifyCost{}, fmt.Errorf("verify %s against %s: %w", result, original, err)
	}
	return verifyCost{Wall: round(wall.Seconds(), 3), CPU: round(rusageSeconds(after)-rusageSeconds(before), 3)}, nil
}

func rusageSeconds(r syscall.Rusage) float64 {
	return float64(r.Utime.Sec) + float64(r.Utime.Usec)/1e6 + float64(r.Stime.Sec) + float64(r.Stime.Usec)/1e6
}

// verifyRow is the issue-15 row: the verification's wall time against the
// encode's (the seed command on the same clip, median of the runs), with
// the CPU times in the notes (a shared machine moves wall times, hardly
// CPU times).
func verifyRow(c Clip, v verifyCost, encodeWall, encodeCPU float64) Result {
	ratio := 0.0
	if encodeWall > 0 {
		ratio = v.Wall / encodeWall
	}
	cpuRatio := 0.0
	if encodeCPU > 0 {
		cpuRatio = v.CPU / encodeCPU
	}
	return Result{
		Issue: 15,
		Case:  fmt.Sprintf("result verification before an original is deleted (media.VerifyResult) vs the encode: %s %gs", c.Title, c.Secs),
		Ours:  round(v.Wall, 2), Anchor: round(encodeWall, 2), Unit: "s", AnchorName: "ffmpeg encode (seed command), median",
		Ratio: ratio, Target: "<=0.05", Pass: ratio > 0 && ratio <= 0.05,
		Notes: fmt.Sprintf("probes of original and result, display size, frame rate and count, keyframe index, then luma SSIM at up to %d points "+
			"(%d frames each, scaled to at most %d px, floor %.2f) on the processor's output; CPU %.2f s vs the encode's %.1f s (%.1f %%); load %.1f",
			media.SamplePoints, media.SampleFrames, media.CompareSize, media.SSIMFloor, v.CPU, encodeCPU, 100*cpuRatio, procstat.LoadAvg()),
		Detail: map[string]any{"verify": v, "encode_seconds": encodeWall, "encode_cpu_seconds": encodeCPU, "cpu_ratio": cpuRatio},
	}
}

// download copies key from store to path (checksum-verified by the store).
func download(ctx context.Context, store storage.Store, key, path string) error {
	r, _, err := store.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	defer r.Close()
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("download %s to %s: %w", key, path, err)
	}
	return f.Close()
}
