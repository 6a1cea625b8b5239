package syncer

import (
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// writeback has the kernel write a file's dirty pages while the download
// goes on, so that the fsync at the end finds little left to write:
// network and disk work overlap instead of running one after the other.
// Every step bytes written (by any number of writers, at any offsets) it
// wakes its own goroutine, which calls sync_file_range(SYNC_FILE_RANGE_WRITE)
// over the whole file: that submits every dirty page not yet under
// writeback. It runs beside the writers because submitting blocks whenever
// the disk's request queue is full, and a download stalled there would
// leave the network idle.
type writeback struct {
	f       *os.File
	step    int64
	written atomic.Int64 // bytes written so far
	kicked  atomic.Int64 // written at the last wake-up
	kick    chan struct{}
}

func newWriteback(name string, step int64) *writeback {
	// A descriptor of its own: the writers may close theirs at any time.
	f, err := os.Open(name)
	if err != nil {
		return nil // only an optimisation
	}
	w := &writeback{f: f, step: step, kick: make(chan struct{}, 1)}
	go w.loop()
	return w
}

func (w *writeback) loop() {
	defer w.f.Close()
	for range w.kick {
		// Offset 0, length 0: the whole file. Pages already under
		// writeback are skipped, so repeating it is cheap.
		_ = unix.SyncFileRange(int(w.f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
}

// wrote counts n more bytes written; safe for concurrent writers.
func (w *writeback) wrote(n int) {
	if w == nil {
		return
	}
	total := w.written.Add(int64(n))
	if k := w.kicked.Load(); total-k >= w.step && w.kicked.CompareAndSwap(k, total) {
		select {
		case w.kick <- struct{}{}:
		default: // a wake-up is pending; it will see these pages too
		}
	}
}

// close lets the goroutine end (after a submission in progress, which the
// caller need not wait for) and close its descriptor. The caller's fsync
// writes the rest. Call it once, after the last wrote.
func (w *writeback) close() {
	if w != nil {
		close(w.kick)
	}
}
