package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/procstat"
)

type sample struct {
	secs   float64
	rssMiB float64 // peak RSS of the process itself (VmHWM), children excluded
	cpu    float64 // user + system seconds of the process and its children
	load   float64 // 1-minute load average before the run
}

// measure runs cmd and samples its own peak RSS (VmHWM every 5 ms: the
// rusage of a waited child would include ffprobe's and ffmpeg's). Its
// stdout and stderr are kept for error messages (the last 4 KiB).
func measure(cmd *exec.Cmd) (sample, string, error) {
	var out tail
	cmd.Stdout, cmd.Stderr = &out, &out
	s := sample{load: procstat.LoadAvg()}
	syscall.Sync() // the previous run's writes must not be flushed during this one
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return s, "", err
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if v := procstat.PeakRSSKiB(cmd.Process.Pid); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	s.secs = time.Since(start).Seconds()
	close(stop)
	<-done
	s.rssMiB = float64(peak.Load()) / 1024
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.cpu = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)).Seconds()
		if s.rssMiB == 0 { // exited before the first sample
			s.rssMiB = float64(ru.Maxrss) / 1024
		}
	}
	if err != nil {
		return s, out.String(), fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out.String())
	}
	return s, out.String(), nil
}

// tail keeps the last 4 KiB written to it.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = append([]byte(nil), t.b[len(t.b)-4096:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return string(bytes.TrimSpace(t.b)) }
