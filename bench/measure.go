package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/procstat"
)

// Quality is an encode compared with its source.
type Quality struct {
	SSIM   float64 // ffmpeg ssim filter, "All" (0..1)
	SSIMdB float64 // the same in dB: -10·log10(1-SSIM)
	PSNR   float64 // ffmpeg psnr filter, "average" (dB)
}

var (
	ssimRe = regexp.MustCompile(`SSIM Y:.* All:([0-9.]+) \(([0-9.]+|inf)\)`)
	psnrRe = regexp.MustCompile(`PSNR y:.* average:([0-9.]+|inf)`)
)

// compare runs ffmpeg's ssim and psnr filters on dist against ref, both
// converted to ref's pixel format (so a 10-bit source is compared in
// 10 bits) and with timestamps reset so that frame n meets frame n.
func compare(ctx context.Context, dist, ref, pixFmt string) (Quality, error) {
	if pixFmt == "" {
		pixFmt = "yuv420p"
	}
	graph := fmt.Sprintf("[0:v]format=%[1]s,setpts=PTS-STARTPTS[d];[1:v]format=%[1]s,setpts=PTS-STARTPTS[r];"+
		"[d]split[d1][d2];[r]split[r1][r2];[d1][r1]ssim;[d2][r2]psnr", pixFmt)
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-v", "info",
		"-noautorotate", "-i", "file:"+dist, "-noautorotate", "-i", "file:"+ref,
		"-filter_complex", graph, "-f", "null", "-")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Quality{}, fmt.Errorf("ssim/psnr of %s: %w: %s", dist, err, clip(string(out), 600))
	}
	var q Quality
	if m := ssimRe.FindSubmatch(out); m != nil {
		q.SSIM, _ = strconv.ParseFloat(string(m[1]), 64)
		q.SSIMdB, _ = strconv.ParseFloat(string(m[2]), 64)
	}
	if m := psnrRe.FindSubmatch(out); m != nil {
		q.PSNR, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if q.SSIM == 0 || q.PSNR == 0 {
		return q, fmt.Errorf("ssim/psnr of %s: no result in ffmpeg output: %s", dist, clip(string(out), 600))
	}
	return q, nil
}

// timed runs cmd and returns its wall time and the CPU time of it and its
// children (user+system).
func timed(cmd *exec.Cmd) (wall, cpu time.Duration, err error) {
	start := time.Now()
	err = cmd.Run()
	wall = time.Since(start)
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return wall, cpu, err
}

// hwmWatcher samples a process's peak resident set size (VmHWM in
// /proc/<pid>/status) until it exits. VmHWM only grows, so the last sample
// is the peak up to a few milliseconds before exit. It measures that one
// process: children (ffmpeg) have their own.
type hwmWatcher struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	kib  int64
}

func watchHWM(pid int) *hwmWatcher {
	w := &hwmWatcher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if v := procstat.PeakRSSKiB(pid); v > 0 {
				w.mu.Lock()
				w.kib = max(w.kib, v)
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// peakMiB stops sampling and returns the peak in MiB.
func (w *hwmWatcher) peakMiB() float64 {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return float64(w.kib) / 1024
}

// killGroup ends a command started with Setpgid and everything it started.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}
