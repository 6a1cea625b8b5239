package syncer

import (
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// changedAgo is how long ago fi's inode last changed (ctime: every write,
// chmod and chtimes moves it; nobody can set it back).
func changedAgo(fi fs.FileInfo) (time.Duration, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return time.Since(time.Unix(st.Ctim.Sec, st.Ctim.Nsec)), true
}

// writeback starts the kernel writing a file's dirty pages while the
// download goes on (sync_file_range SYNC_FILE_RANGE_WRITE every step
// bytes), so that the fsync at the end finds little left to write: network
// and disk work overlap instead of running one after the other.
type writeback struct {
	f         *os.File
	done, off int64
	step      int64
}

func newWriteback(name string, step int64) *writeback {
	f, err := os.Open(name)
	if err != nil {
		return nil // only an optimisation
	}
	return &writeback{f: f, step: step}
}

func (w *writeback) wrote(n int) {
	if w == nil {
		return
	}
	w.off += int64(n)
	if w.off-w.done >= w.step {
		_ = unix.SyncFileRange(int(w.f.Fd()), w.done, w.off-w.done, unix.SYNC_FILE_RANGE_WRITE)
		w.done = w.off
	}
}

func (w *writeback) close() {
	if w != nil {
		w.f.Close()
	}
}
