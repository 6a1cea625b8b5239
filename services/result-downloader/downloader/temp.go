package downloader

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
)

// temp is a download in progress beside its target: a file created and
// recorded by library.Temps (so that only this service's cleanup of its
// own killed runs ever removes it, and nothing else of that name). It does
// not hash what it is given: the store's reader verifies the SHA-256 of every byte it
// returns (storage.Store.Get) and fails at EOF on a mismatch.
type temp struct {
	f  *os.File
	tf *library.TempFile
	// direct, when not nil, is a second descriptor of f opened with
	// O_DIRECT: whole aligned blocks handed to Write go to the disk from
	// the caller's buffer (see writeDirect).
	direct       *os.File
	directFailed atomic.Bool // an O_DIRECT write failed: no more of them
	flush        *flusher    // early fdatasyncs of the direct writes
	n            int64
	parallelN    atomic.Int64  // bytes written by WriteAt
	flushed      int64         // bytes handed to writeback (or written direct)
	wb           chan [2]int64 // ranges for the writeback goroutine
	wbDone       chan struct{} // closed when it has stopped
	done         bool
}

// directAlign is the alignment of O_DIRECT writes: buffer address, file
// offset and length (a multiple of every logical block size in use).
const directAlign = 4096

// writebackChunk is how much written data may wait in the page cache
// before its writeback is started: the disk then writes while the network
// delivers, and the final fsync has only the tail left to wait for,
// instead of the whole file.
const writebackChunk = 8 << 20

// newTemp creates a recorded temp file in dirRel (relative to root,
// created with dirMode if missing; neither may resolve outside root). With
// direct, aligned writes bypass the page cache where the file system
// allows it.
func newTemp(root *os.Root, temps *library.Temps, dirRel string, dirMode fs.FileMode, direct bool) (*temp, error) {
	if dirMode == 0 {
		dirMode = 0o755
	}
	if err := root.MkdirAll(dirRel, dirMode); err != nil {
		return nil, fmt.Errorf("create directory %s in %s: %w", dirRel, root.Name(), err)
	}
	tf, err := temps.Create(root, dirRel)
	if err != nil {
		return nil, err
	}
	t := &temp{f: tf.File, tf: tf}
	if direct {
		if t.direct = openDirect(root, tf.Rel); t.direct != nil {
			t.flush = newFlusher(t.direct)
		}
	}
	return t, nil
}

func (t *temp) name() string { return t.f.Name() }

// Write appends p. Whole aligned blocks go through the O_DIRECT
// descriptor when there is one; the rest (the tail, or everything when
// the caller's buffers are not aligned) through the page cache.
func (t *temp) Write(p []byte) (int, error) {
	done := t.writeDirect(p)
	n, err := t.f.WriteAt(p[done:], t.n)
	t.n += int64(n)
	if err != nil {
		return done + n, fmt.Errorf("write %s: %w", t.f.Name(), err)
	}
	if t.n-t.flushed >= writebackChunk {
		t.writeback(t.flushed, t.n-t.flushed)
		t.flushed = t.n
	}
	return done + n, nil
}

// writeDirect writes the longest aligned prefix of p at t.n with O_DIRECT
// (after handing what went through the page cache before to writeback)
// and returns its length.
func (t *temp) writeDirect(p []byte) int {
	if !t.canDirect(p, t.n) {
		return 0
	}
	if t.flushed < t.n {
		t.writeback(t.flushed, t.n-t.flushed)
	}
	n := t.directAt(p, t.n)
	t.n += int64(n)
	t.flushed = t.n
	return n
}

func (t *temp) canDirect(p []byte, off int64) bool {
	return t.direct != nil && !t.directFailed.Load() && len(p) >= directAlign &&
		off%directAlign == 0 && uintptr(unsafe.Pointer(&p[0]))%directAlign == 0
}

// directAt writes the longest aligned prefix of p at off with O_DIRECT
// and returns how much of it is written (the caller writes the rest
// through the page cache). The download's part buffers are large heap
// objects, page-aligned, of a multiple of directAlign bytes, at offsets
// that are multiples of it: all but the last part go this way. The data
// skips the page cache: no copy into it (on small machines that copy
// costs as much CPU as the network and the checksum together) and
// nothing left for the fsync to write but metadata. The fsync is still
// what makes the file durable. After an error no more direct writes are
// tried, and the bytes are written again through the page cache, which
// reports real disk errors itself.
func (t *temp) directAt(p []byte, off int64) int {
	n, err := t.direct.WriteAt(p[:len(p)&^(directAlign-1)], off)
	if err != nil {
		t.directFailed.Store(true)
		n &^= directAlign - 1
	}
	t.flush.wrote(n)
	return n
}

// flushEvery is how many bytes written with O_DIRECT start an early
// fdatasync. O_DIRECT data has left the page cache but may still sit in
// a volatile cache below (the disk's, or a VM host's page cache behind a
// virtual disk), and a flush of a whole large file at the end waits for
// all of it: measured here, about 1.7 s for 1 GiB that took about 3 s to
// download. Flushing as the download goes leaves the final fsync a tail.
const flushEvery = 64 << 20

// flusher fdatasyncs its own descriptor in its own goroutine every
// flushEvery bytes written, at most one at a time (wake-ups that find one
// running are dropped: it flushes those bytes too, or the next does).
// Errors are ignored: the final fsync, on the temp file's main
// descriptor, reports a write error to every descriptor open before it,
// so a flush here cannot hide one from it.
type flusher struct {
	f       *os.File
	written atomic.Int64
	kicked  atomic.Int64
	kick    chan struct{}
	done    chan struct{}
}

func newFlusher(f *os.File) *flusher {
	fl := &flusher{f: f, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(fl.done)
		for range fl.kick {
			_ = fdatasync(fl.f)
		}
	}()
	return fl
}

// wrote counts n bytes written; safe for concurrent writers.
func (fl *flusher) wrote(n int) {
	if fl == nil {
		return
	}
	total := fl.written.Add(int64(n))
	if k := fl.kicked.Load(); total-k >= flushEvery && fl.kicked.CompareAndSwap(k, total) {
		select {
		case fl.kick <- struct{}{}:
		default:
		}
	}
}

// stop waits for a flush in progress to end (before the descriptor is
// closed); no more wrote after it.
func (fl *flusher) stop() {
	if fl != nil {
		close(fl.kick)
		<-fl.done
	}
}

// WriteAt writes p at off, for writers that deliver ranges in any order
// from several goroutines at once (safe for concurrent use with itself,
// not with Write): whole aligned blocks with O_DIRECT, the rest through
// the page cache (without early writeback: with O_DIRECT that is only
// the tail).
func (t *temp) WriteAt(p []byte, off int64) (int, error) {
	done := 0
	if t.canDirect(p, off) {
		done = t.directAt(p, off)
	}
	n, err := t.f.WriteAt(p[done:], off+int64(done))
	t.parallelN.Add(int64(done + n))
	if err != nil {
		return done + n, fmt.Errorf("write %s: %w", t.f.Name(), err)
	}
	return done + n, nil
}

// parallel reports whether WriteAt is worth using: with O_DIRECT the
// ranges' writes run beside each other and beside the checksum.
func (t *temp) parallel() bool { return t.direct != nil && !t.directFailed.Load() }

// endParallel counts what WriteAt wrote (once every writer has returned).
func (t *temp) endParallel() { t.n = t.parallelN.Load() }

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

// closeDirect drops the O_DIRECT descriptor (no more writes).
func (t *temp) closeDirect() {
	t.flush.stop()
	t.flush = nil
	if t.direct != nil {
		t.direct.Close()
		t.direct = nil
	}
}

func (t *temp) sync() error {
	t.stopWriteback()
	t.closeDirect()
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", t.f.Name(), err)
	}
	return nil
}

// commit sets mode, owner (best effort: only root may give files away) and
// mtime, fsyncs, and links the temp file to targetRel (relative to root,
// checked again at the link) without replacing an existing file
// (library.ErrExists), then fsyncs the directory and drops the temp name.
func (t *temp) commit(root *os.Root, targetRel string, mode fs.FileMode, mtime time.Time, uid, gid int) error {
	if err := t.f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", t.f.Name(), err)
	}
	if uid >= 0 && (uid != os.Getuid() || gid != os.Getgid()) {
		_ = t.f.Chown(uid, gid) // EPERM unless root; the mode still applies
	}
	if !mtime.IsZero() {
		if err := root.Chtimes(t.tf.Rel, mtime, mtime); err != nil {
			return fmt.Errorf("set mtime of %s: %w", t.f.Name(), err)
		}
	}
	if err := t.sync(); err != nil {
		return err
	}
	if err := library.LinkNoReplaceIn(root, t.tf.Rel, targetRel); err != nil {
		return err
	}
	if err := syncDirIn(root, filepath.Dir(targetRel)); err != nil {
		return err
	}
	t.abort() // the data lives on under target
	return nil
}

// abort removes the temp name and its record and closes the file; safe
// to call twice.
func (t *temp) abort() {
	if t.done {
		return
	}
	t.done = true
	t.stopWriteback()
	t.closeDirect()
	t.tf.Release()
}

// syncDirIn fsyncs directory rel of root (a link or removal in it is then
// durable).
func syncDirIn(root *os.Root, rel string) error {
	d, err := root.Open(rel)
	if err != nil {
		return fmt.Errorf("open directory %s in %s: %w", rel, root.Name(), err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("fsync directory %s in %s: %w", rel, root.Name(), err)
	}
	return nil
}
