//go:build unix

package library

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// StateDirName is the library's private directory (`<library>/.hevc-encoder`):
// walkers skip it (hidden), users have no reason to put files there.
const StateDirName = ".hevc-encoder"

// StateDir is root's private state directory.
func StateDir(root string) string { return filepath.Join(root, StateDirName) }

// Temps creates the temp files of one service (owner) beside their
// targets and removes, later, only the ones it recorded.
//
// A temp file must live in its target's directory (the final link or
// rename is atomic only within one file system), so a name pattern alone
// cannot tell ours from a user's file that happens to share it (a
// Nextcloud upload called ".hevc-tmp-x" moved into the library). Before a
// temp file exists, its full path is written and fsynced to a record in
// <library>/.hevc-encoder/temps/<owner>-<token>, where <token> is 128
// random bits that also end the temp file's name. The temp file is then
// created with O_EXCL (so it is new, made by us), and the record stays
// flocked by its creator for as long as the temp name exists. Sweep
// removes a temp file only when its record names it and no live process
// holds the record's lock: nothing else is ever deleted, whatever its
// name, and another service's temp files (a different owner) are never
// even looked at. A record left by a crash before its temp file was
// created names a path nobody else can know, so removing "it" removes
// nothing.
type Temps struct {
	dir   string // records
	owner string
	mu    sync.Mutex // orders this process's sweeps against its creations
}

// OpenTemps prepares the record directory under stateDir (created with
// dirMode if missing). owner is a short name of the service ("dl", "sync").
func OpenTemps(stateDir, owner string, dirMode fs.FileMode) (*Temps, error) {
	if dirMode == 0 {
		dirMode = 0o755
	}
	dir := filepath.Join(stateDir, "temps")
	if err := os.MkdirAll(dir, dirMode|0o700); err != nil {
		return nil, fmt.Errorf("create temp-file records directory %s: %w", dir, err)
	}
	return &Temps{dir: dir, owner: owner}, nil
}

// TempFile is a temp file created by Temps; Release it once its name is
// gone or to drop it.
type TempFile struct {
	*os.File
	// Rel is the temp file's name relative to the os.Root it was created
	// in (or its path, without one).
	Rel    string
	path   string
	dir    *os.File // the directory it was created in (Release unlinks there)
	record *os.File
	t      *Temps
}

// Create makes a new temp file in dir, relative to root (every component
// checked not to leave root as it is opened), or, when root is nil, in
// the directory path dir. The directory must exist. The file is opened
// read-write with mode 0600.
func (t *Temps) Create(root *os.Root, dir string) (*TempFile, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for attempt := 0; ; attempt++ {
		tf, err := t.create(root, dir)
		if err == nil || !errors.Is(err, errRetry) || attempt >= 3 {
			return tf, err
		}
	}
}

var errRetry = errors.New("record removed while being created")

func (t *Temps) create(root *os.Root, dir string) (*TempFile, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("random temp name: %w", err)
	}
	id := t.owner + "-" + hex.EncodeToString(b[:])
	name := TempPrefix + id
	rel := filepath.Join(dir, name)
	abs := rel
	if root != nil {
		abs = filepath.Join(root.Name(), rel)
	}
	if a, err := filepath.Abs(abs); err == nil {
		abs = a
	}
	recPath := filepath.Join(t.dir, id)
	rec, err := os.OpenFile(recPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("record temp file %s: %w", abs, err)
	}
	fail := func(err error) (*TempFile, error) {
		os.Remove(recPath)
		rec.Close()
		return nil, err
	}
	if err := syscall.Flock(int(rec.Fd()), syscall.LOCK_EX); err != nil {
		return fail(fmt.Errorf("lock record %s: %w", recPath, err))
	}
	// Another process's sweep may have taken the lock between our open and
	// flock (it then found the record empty and removed it): start again.
	var st syscall.Stat_t
	if err := syscall.Fstat(int(rec.Fd()), &st); err != nil {
		return fail(fmt.Errorf("stat record %s: %w", recPath, err))
	}
	if st.Nlink == 0 {
		rec.Close()
		return nil, errRetry
	}
	if _, err := rec.WriteString(abs + "\n"); err != nil {
		return fail(fmt.Errorf("write record %s: %w", recPath, err))
	}
	if err := rec.Sync(); err != nil {
		return fail(fmt.Errorf("fsync record %s: %w", recPath, err))
	}
	if err := SyncDir(t.dir); err != nil {
		return fail(err)
	}
	// The file is created relative to its directory's descriptor, which
	// Release unlinks it from: a directory renamed or swapped for a
	// symlink meanwhile does not send the removal elsewhere.
	var d *os.File
	if root != nil {
		d, err = root.Open(dir)
	} else {
		d, err = os.Open(dir)
	}
	if err != nil {
		return fail(fmt.Errorf("open directory %s: %w", filepath.Dir(abs), err))
	}
	fd, err := unix.Openat(int(d.Fd()), name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		d.Close()
		return fail(fmt.Errorf("create temp file in %s: %w", filepath.Dir(abs), err))
	}
	f := os.NewFile(uintptr(fd), abs)
	return &TempFile{File: f, Rel: rel, path: abs, dir: d, record: rec, t: t}, nil
}

// Release removes the temp name if it is still there (it is ours: created
// with O_EXCL, never renamed; after a successful link the data lives on
// under the target's name), then the record, then closes both.
// Safe to call more than once.
func (tf *TempFile) Release() {
	if tf.record == nil {
		return
	}
	_ = tf.File.Close()
	err := unix.Unlinkat(int(tf.dir.Fd()), filepath.Base(tf.path), 0)
	tf.dir.Close()
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		// Only once the name is gone may the record go: a crash in between
		// leaves a record whose sweep finds nothing to remove.
		os.Remove(tf.record.Name())
	}
	tf.record.Close()
	tf.record = nil
}

// Sweep removes this owner's temp files that no live process holds (left
// by a killed run) and their records. removed is called with each temp
// file removed.
func (t *Temps) Sweep(removed func(path string)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	ents, err := os.ReadDir(t.dir)
	if err != nil {
		return fmt.Errorf("list temp-file records %s: %w", t.dir, err)
	}
	var errs []error
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), t.owner+"-") || !e.Type().IsRegular() {
			continue
		}
		if err := t.sweepOne(e.Name(), removed); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (t *Temps) sweepOne(id string, removed func(string)) error {
	recPath := filepath.Join(t.dir, id)
	rec, err := os.OpenFile(recPath, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("open record %s: %w", recPath, err)
	}
	defer rec.Close()
	if err := syscall.Flock(int(rec.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil // its creator is alive
		}
		return fmt.Errorf("lock record %s: %w", recPath, err)
	}
	b, err := os.ReadFile(recPath)
	if err != nil {
		return fmt.Errorf("read record %s: %w", recPath, err)
	}
	p := strings.TrimSuffix(string(b), "\n")
	// The record names exactly one path, ending in the name made from its
	// own token; anything else (empty: its creator died before writing
	// it) names no file of ours.
	if p != "" && filepath.IsAbs(p) && filepath.Base(p) == TempPrefix+id && !strings.Contains(p, "\n") {
		fi, err := os.Lstat(p)
		switch {
		case err == nil && fi.Mode().IsRegular():
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove temp file %s: %w", p, err)
			}
			if removed != nil {
				removed(p)
			}
		case err == nil:
			// Not a regular file: not what we created; leave it.
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		default:
			return fmt.Errorf("check temp file %s: %w", p, err)
		}
	}
	if err := os.Remove(recPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove record %s: %w", recPath, err)
	}
	return nil
}
