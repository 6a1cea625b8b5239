package processor

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
)

// Scratch space. A job writes into WORK_DIR its input (unless streamed),
// the output and, during the encode, the live decode's copy of the output's
// video (media.EncodeAndDecode): both are bounded by the input's size, past
// which the result is useless anyway (no gain). A disk too small for that
// is not transient: retrying the same file on the same task size fails the
// same way, so the job ends in FAILED/ with the numbers and the setting
// that raises the space.
const (
	// diskMargin is kept free on top of the estimate (the MP4's index,
	// ffmpeg's and the OS's own files).
	diskMargin = 128 << 20
	// diskAttempts is how many deliveries of one job may fail for want of
	// space before it ends in FAILED/ (the space may have been taken by
	// other jobs sharing WORK_DIR).
	diskAttempts = 3
	// storageVariable is the Terraform variable sizing the Fargate task's
	// ephemeral storage (terraform/variables.tf).
	storageVariable = "processor_ephemeral_storage_gib"
)

// spaceNeeded is the scratch space a job for an input of size bytes needs.
func spaceNeeded(size int64, streamed bool) int64 {
	need := 2*size + diskMargin // output + live-decode copy, each at most the input
	if !streamed {
		need += size // the downloaded input
	}
	return need
}

// needParts says what spaceNeeded counts.
func needParts(size int64, streamed bool) string {
	in := "the input " + gib(size) + " downloaded"
	if streamed {
		in = "the input " + gib(size) + " streamed, not stored"
	}
	return in + "; the output and the live decode's copy of its video, up to " + gib(size) + " each; " + gib(diskMargin) + " margin"
}

// diskSpace returns the free (for unprivileged users) and total bytes of
// the file system holding dir.
var diskSpace = func(dir string) (free, total int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}

// workDir is WORK_DIR, or the OS temp dir it defaults to.
func (p *Processor) workDir() string {
	if p.Cfg.WorkDir != "" {
		return p.Cfg.WorkDir
	}
	return os.TempDir()
}

// checkSpace fails the job when WORK_DIR cannot hold it: permanently when
// the file system is too small for it at all or after diskAttempts
// deliveries, else transiently (other jobs may free space).
func (p *Processor) checkSpace(rel string, size int64, streamed bool, job launch.Job) error {
	dir := p.workDir()
	free, total, err := diskSpace(dir)
	if err != nil {
		return fmt.Errorf("free space of WORK_DIR %s: %w", dir, err)
	}
	need := spaceNeeded(size, streamed)
	if need <= free {
		return nil
	}
	reason := fmt.Errorf("not enough scratch space to encode %s: %s needed in WORK_DIR %s (%s), %s free of %s; raise the task's ephemeral storage (Terraform variable %s) or free space there",
		rel, gib(need), dir, needParts(size, streamed), gib(free), gib(total), storageVariable)
	if need > total || lastDiskAttempt(job) {
		return permanent{reason}
	}
	return reason
}

// noSpace turns a failure caused by a full disk during the job into a
// permanent one (with the numbers) once diskAttempts deliveries have hit
// it; other errors and earlier attempts pass through unchanged.
func (p *Processor) noSpace(rel string, size int64, streamed bool, job launch.Job, err error) error {
	if err == nil || !isNoSpace(err) || !lastDiskAttempt(job) {
		return err
	}
	free, total, serr := diskSpace(p.workDir())
	if serr != nil {
		free, total = -1, -1
	}
	return permanent{fmt.Errorf("ran out of scratch space encoding %s (attempt %d): about %s needed in WORK_DIR %s, %s free of %s now; raise the task's ephemeral storage (Terraform variable %s) or free space there: %w",
		rel, max(job.ReceiveCount, 1), gib(spaceNeeded(size, streamed)), p.workDir(), gib(free), gib(total), storageVariable, err)}
}

// lastDiskAttempt reports whether a disk shortage must end the job now:
// after diskAttempts deliveries, or at once when the delivery count is
// unknown (no queue, or a dispatcher that does not pass it), so that a
// shortage is never retried without end.
func lastDiskAttempt(job launch.Job) bool {
	return job.ReceiveCount <= 0 || job.ReceiveCount >= diskAttempts
}

// isNoSpace reports whether err comes from a full disk (ENOSPC from Go,
// or ffmpeg's message for it).
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		strings.Contains(err.Error(), "No space left on device") || strings.Contains(err.Error(), "Disk quota exceeded")
}

// gib formats a byte count in GiB (MiB below 1 GiB); "?" when unknown.
func gib(n int64) string {
	switch {
	case n < 0:
		return "?"
	case n < 1<<20:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}
