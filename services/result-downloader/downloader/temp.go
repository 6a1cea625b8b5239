package downloader

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
)

// tempPrefix names the downloader's in-progress files. They start with
// library.TempPrefix, so every walker skips them, and carry "dl-" so that
// the downloader removes only its own leftovers: a temp file that no live
// process holds locked (flock) was left by a killed run.
const tempPrefix = library.TempPrefix + "dl-"

// temp is a download in progress beside its target, exclusively flocked
// for as long as it exists under its temp name. It does not hash what it
// is given: the store's reader verifies the SHA-256 of every byte it
// returns (storage.Store.Get) and fails at EOF on a mismatch.
type temp struct {
	f       *os.File
	n       int64
	flushed int64         // bytes handed to writeback
	wb      chan [2]int64 // ranges for the writeback goroutine
	wbDone  chan struct{} // closed when it has stopped
	done    bool
}

// writebackChunk is how much written data may wait in the page cache
// before its writeback is started: the disk then writes while the network
// delivers, and the final fsync has only the tail left to wait for,
// instead of the whole file.
const writebackChunk = 8 << 20

// tempMu orders this process's sweeps against its own temp files being
// created and locked (a sweep must not see one before it is locked).
var tempMu sync.Mutex

func newTemp(target string, dirMode fs.FileMode) (*temp, error) {
	if dirMode == 0 {
		dirMode = 0o755
	}
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("create directory for %s: %w", target, err)
	}
	tempMu.Lock()
	defer tempMu.Unlock()
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("create temp file for %s: %w", target, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("lock temp file %s: %w", f.Name(), err)
	}
	return &temp{f: f}, nil
}

func (t *temp) name() string { return t.f.Name() }

func (t *temp) Write(p []byte) (int, error) {
	n, err := t.f.Write(p)
	t.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", t.f.Name(), err)
	}
	if t.n-t.flushed >= writebackChunk {
		t.writeback(t.flushed, t.n-t.flushed)
		t.flushed = t.n
	}
	return n, nil
}

// writeback hands a range to a goroutine that starts its writeback: the
// block allocation and I/O submission that costs then run beside the next
// writes instead of before them. When it falls behind, ranges are dropped;
// the fsync writes them.
func (t *temp) writeback(off, n int64) {
	if t.wb == nil {
		t.wb, t.wbDone = make(chan [2]int64, 16), make(chan struct{})
		go func(f *os.File, wb <-chan [2]int64, done chan<- struct{}) {
			defer close(done)
			for r := range wb {
				startWriteback(f, r[0], r[1])
			}
		}(t.f, t.wb, t.wbDone)
	}
	select {
	case t.wb <- [2]int64{off, n}:
	default:
	}
}

// stopWriteback waits for the writeback goroutine (before fsync or close).
func (t *temp) stopWriteback() {
	if t.wb != nil {
		close(t.wb)
		<-t.wbDone
		t.wb = nil
	}
}

func (t *temp) sync() error {
	t.stopWriteback()
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", t.f.Name(), err)
	}
	return nil
}

// commit sets mode, owner (best effort: only root may give files away) and
// mtime, fsyncs, and links the temp file to target without replacing an
// existing file (library.ErrExists), then fsyncs the directory and drops
// the temp name. The lock is held until the temp name is gone.
func (t *temp) commit(target string, mode fs.FileMode, mtime time.Time, uid, gid int) error {
	if err := t.f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", t.f.Name(), err)
	}
	if uid >= 0 && (uid != os.Getuid() || gid != os.Getgid()) {
		_ = t.f.Chown(uid, gid) // EPERM unless root; the mode still applies
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(t.f.Name(), mtime, mtime); err != nil {
			return fmt.Errorf("set mtime of %s: %w", t.f.Name(), err)
		}
	}
	if err := t.sync(); err != nil {
		return err
	}
	if err := library.LinkNoReplace(t.f.Name(), target); err != nil {
		return err
	}
	if err := library.SyncDir(filepath.Dir(target)); err != nil {
		return err
	}
	t.abort() // the data lives on under target
	return nil
}

// abort removes the temp name and closes the file; safe to call twice.
func (t *temp) abort() {
	if t.done {
		return
	}
	t.done = true
	t.stopWriteback()
	os.Remove(t.f.Name())
	t.f.Close()
}

// sweepTemps removes downloader temp files in dir that no process holds:
// leftovers of a killed run.
func sweepTemps(dir string, log zerolog.Logger) {
	tempMu.Lock()
	defer tempMu.Unlock()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), tempPrefix) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			if rerr := os.Remove(p); rerr == nil {
				log.Info().Str("temp", p).Msg("removed a partial download left by an interrupted run")
			}
		} else if !errors.Is(err, syscall.EWOULDBLOCK) {
			log.Debug().Err(err).Str("temp", p).Msg("cannot lock temp file")
		}
		f.Close()
	}
}
