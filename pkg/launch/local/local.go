// Package local runs processors in-process, at most Capacity at a time.
package local

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
)

// ErrAtCapacity is returned by Launch when Capacity processors are running.
var ErrAtCapacity = errors.New("launcher at capacity")

// RunFunc processes one job (hevc-processor's entry point).
type RunFunc func(ctx context.Context, job launch.Job) error

// Launcher runs jobs as goroutines.
type Launcher struct {
	base     context.Context
	run      RunFunc
	capacity int
	onDone   func(launch.Job, error)

	mu      sync.Mutex
	running map[string]bool
	wg      sync.WaitGroup
}

var _ launch.Launcher = (*Launcher)(nil)

// DefaultCapacity is cores / x265 threads per job, at least 1.
func DefaultCapacity(threadsPerJob int) int {
	if threadsPerJob <= 0 {
		return 1 // x265 uses every core by itself
	}
	return max(1, runtime.NumCPU()/threadsPerJob)
}

// New makes a launcher whose jobs run under base (cancel base to stop them).
// onDone, if set, is called after each job with its result.
func New(base context.Context, run RunFunc, capacity int, onDone func(launch.Job, error)) *Launcher {
	if capacity <= 0 {
		capacity = 1
	}
	return &Launcher{base: base, run: run, capacity: capacity, onDone: onDone, running: map[string]bool{}}
}

// Launch implements launch.Launcher.
func (l *Launcher) Launch(_ context.Context, job launch.Job) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running[job.Key] {
		return fmt.Errorf("launch %s: already running", job.Key)
	}
	if len(l.running) >= l.capacity {
		return fmt.Errorf("launch %s: %w (%d)", job.Key, ErrAtCapacity, l.capacity)
	}
	l.running[job.Key] = true
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		err := l.run(l.base, job)
		l.mu.Lock()
		delete(l.running, job.Key)
		l.mu.Unlock()
		if l.onDone != nil {
			l.onDone(job, err)
		}
	}()
	return nil
}

// InFlight implements launch.Launcher.
func (l *Launcher) InFlight(context.Context) (map[string]bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]bool, len(l.running))
	for k := range l.running {
		out[k] = true
	}
	return out, nil
}

// Capacity implements launch.Launcher.
func (l *Launcher) Capacity() int { return l.capacity }

// Wait blocks until every launched job has returned.
func (l *Launcher) Wait() { l.wg.Wait() }
