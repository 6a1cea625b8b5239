package library

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrExists is returned (wrapped) when the target name is taken.
var ErrExists = errors.New("target exists")

// TempPrefix starts the names of in-progress files; walkers skip them.
const TempPrefix = ".hevc-tmp-"

// IsTemp reports whether a file name is one of our in-progress temp files.
func IsTemp(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// Temp is a file being written beside its final name. Write to it, then
// Commit (fsync + verify + link into place without overwriting) or Abort.
type Temp struct {
	f      *os.File
	target string
	h      hashWriter
	n      int64
	done   bool
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

// CreateTemp starts a temp file in target's directory (created if needed,
// with dirMode).
func CreateTemp(target string, dirMode fs.FileMode) (*Temp, error) {
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("create directory for %s: %w", target, err)
	}
	f, err := os.CreateTemp(dir, TempPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("create temp file for %s: %w", target, err)
	}
	return &Temp{f: f, target: target, h: sha256.New()}, nil
}

// Name is the temp file's path.
func (t *Temp) Name() string { return t.f.Name() }

// Write writes to the temp file and hashes what it writes.
func (t *Temp) Write(p []byte) (int, error) {
	n, err := t.f.Write(p)
	t.h.Write(p[:n])
	t.n += int64(n)
	return n, err
}

// Size is the number of bytes written so far.
func (t *Temp) Size() int64 { return t.n }

// SHA256 is the hex SHA-256 of what was written so far.
func (t *Temp) SHA256() string { return hex.EncodeToString(t.h.Sum(nil)) }

// Sync flushes the temp file to stable storage; call before verifying.
func (t *Temp) Sync() error {
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", t.f.Name(), err)
	}
	return nil
}

// Commit fsyncs the temp file, checks size and checksum when given (size <
// 0 or sha == "" skip the check), sets mode, and links it to the target
// name. It never overwrites: when the target exists it fails with ErrExists
// and leaves the temp file for the caller to Abort.
func (t *Temp) Commit(size int64, sha string, mode fs.FileMode) error {
	if err := t.Sync(); err != nil {
		return err
	}
	if size >= 0 && t.n != size {
		return fmt.Errorf("%w: %s: wrote %d bytes, want %d", ErrChecksum, t.target, t.n, size)
	}
	if sha != "" && !strings.EqualFold(sha, t.SHA256()) {
		return fmt.Errorf("%w: %s: sha256 %s, want %s", ErrChecksum, t.target, t.SHA256(), sha)
	}
	if err := t.f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", t.f.Name(), err)
	}
	if err := t.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", t.f.Name(), err)
	}
	if err := LinkNoReplace(t.f.Name(), t.target); err != nil {
		return err
	}
	t.done = true
	_ = os.Remove(t.f.Name())
	return SyncDir(filepath.Dir(t.target))
}

// Abort removes the temp file; safe after Commit and more than once.
func (t *Temp) Abort() {
	if t.done {
		return
	}
	t.done = true
	t.f.Close()
	os.Remove(t.f.Name())
}

// ErrChecksum is returned (wrapped) when written bytes do not match.
var ErrChecksum = errors.New("checksum mismatch")

// LinkNoReplace gives src the name dst without ever replacing an existing
// dst (a hard link fails with EEXIST where a rename would overwrite).
func LinkNoReplace(src, dst string) error {
	return linkNoReplace(linkFunc, renameNoReplace, src, dst)
}

// LinkNoReplaceIn is LinkNoReplace for names relative to root: neither
// name may resolve outside root at the moment of the link (os.Root checks
// every component as it goes, so a directory swapped for a symlink after
// an earlier check cannot carry the file out).
func LinkNoReplaceIn(root *os.Root, src, dst string) error {
	link := func(src, dst string) error { return root.Link(src, dst) }
	if linkHook != nil {
		link = linkHook
	}
	rename := func(src, dst string) error { return renameNoReplaceIn(root, src, dst) }
	if err := linkNoReplace(link, rename, src, dst); err != nil {
		return fmt.Errorf("%w (in %s)", err, root.Name())
	}
	return nil
}

// linkHook, when set by a test, replaces the hard link (to act as a file
// system without hard links).
var linkHook func(src, dst string) error

func linkFunc(src, dst string) error {
	if linkHook != nil {
		return linkHook(src, dst)
	}
	return os.Link(src, dst)
}

// ErrNoExclusiveRename means the file system offers neither hard links nor
// a rename that refuses to replace: nothing is installed there rather
// than risk overwriting a file created between a check and a rename.
var ErrNoExclusiveRename = errors.New("the file system supports neither hard links nor an exclusive rename (RENAME_NOREPLACE)")

func linkNoReplace(link, rename func(src, dst string) error, src, dst string) error {
	err := link(src, dst)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s", ErrExists, dst)
	}
	// File systems without hard links (vfat, some FUSE and SMB mounts): a
	// rename that fails when dst exists. Never check, then rename: a file
	// created in between would be replaced.
	rerr := rename(src, dst)
	switch {
	case rerr == nil:
		return nil
	case errors.Is(rerr, fs.ErrExist):
		return fmt.Errorf("%w: %s", ErrExists, dst)
	case errors.Is(rerr, ErrNoExclusiveRename):
		return fmt.Errorf("install %s as %s: %w (link: %v)", src, dst, rerr, err)
	}
	return fmt.Errorf("rename %s to %s without replacing: %w (link: %v)", src, dst, rerr, err)
}

// SyncDir fsyncs a directory so that a rename or link in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// FileSHA256 hashes a file.
func FileSHA256(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
