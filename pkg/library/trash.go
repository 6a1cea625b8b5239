package library

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// The trash keeps originals replaced by their results for a grace period
// (ORIGINALS=trash): <library>/.hevc-encoder/trash/<rel> is the original,
// moved there by a rename (same file system: no copy, mtime and inode
// kept), and <rel>.trash.json beside it is its record: when it was
// trashed (the file's own times are the original's, kept for a restore)
// and which result replaced it, so that a restore removes that result
// only if it is still the very file that was installed.

// TrashDirName is the trash's directory in the state directory.
const TrashDirName = "trash"

// TrashDir is root's trash directory.
func TrashDir(root string) string { return filepath.Join(StateDir(root), TrashDirName) }

// trashRel is the trash directory relative to the library root.
var trashRel = filepath.Join(StateDirName, TrashDirName)

const (
	trashRecordSuffix = ".trash.json"
	trashRecordTemp   = ".trash.json.tmp"
	// staleAfter: an unfinished record (temp, or a record whose file never
	// arrived) this old is not one being written right now.
	staleAfter = time.Hour
)

// RestoreHint tells a person how to bring an original back (for status).
const RestoreHint = "restore an original: result-downloader restore <rel> (list the trash: result-downloader restore --list)"

// TrashRecord is the record beside a trashed original.
type TrashRecord struct {
	Rel     string    `json:"rel"`     // the original's name in the library, /-separated
	Trashed time.Time `json:"trashed"` // when it was moved to the trash: its age for TRASH_DAYS
	Size    int64     `json:"size"`
	Mtime   time.Time `json:"mtime"`
	// SHA256 is the original's, as the result recorded it ("" unknown).
	SHA256 string `json:"sha256,omitempty"`
	// Result, ResultSize, ResultSHA256 describe the file installed in its
	// place (Result /-separated); a restore removes it only if it still
	// matches them. Empty when unknown: the result is then kept.
	Result       string `json:"result,omitempty"`
	ResultSize   int64  `json:"result_size,omitempty"`
	ResultSHA256 string `json:"result_sha256,omitempty"`
	// Note says why a record was made after the fact.
	Note string `json:"note,omitempty"`
}

// Errors of the trash (wrapped; test with errors.Is).
var (
	// ErrTrashTaken: the trash already holds a file of that name (the
	// same name trashed twice within TRASH_DAYS).
	ErrTrashTaken = errors.New("the trash already holds a file of that name")
	// ErrTrashElsewhere: the trash is on another file system than the
	// original (a mount) or leads out of the library (a symlink): a move
	// there would be a copy, so nothing is moved.
	ErrTrashElsewhere = errors.New("the trash directory is on another file system than the original, or outside the library")
	// ErrNotInTrash: nothing of that name is in the trash.
	ErrNotInTrash = errors.New("not in the trash")
	// ErrRestoreTaken: a file exists where the original would go back.
	ErrRestoreTaken = errors.New("a file exists where the original would be restored")
)

// TrashMove is an original on its way to the trash: PrepareTrash made
// the directory and wrote the record, Commit moves the file, Abort
// removes the record again.
type TrashMove struct {
	root                  *os.Root
	rel, dst, rec, recTmp string
	// Path is where the original goes, absolute.
	Path string
}

// PrepareTrash readies the move of rel (relative to root, the library)
// into the trash: its directory is created (dirMode), and rec is written
// and fsynced beside where the original will be, so the original never
// sits in the trash without its record's time (a crash between the two
// leaves a record without a file, which Purge removes later).
// rec.Rel and rec.Trashed must be set.
func PrepareTrash(root *os.Root, rel string, rec TrashRecord, dirMode fs.FileMode) (*TrashMove, error) {
	if dirMode == 0 {
		dirMode = 0o755
	}
	m := &TrashMove{root: root, rel: rel, dst: filepath.Join(trashRel, rel)}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("random name: %w", err)
	}
	// A name of its own: two downloaders (a service and `process`) may
	// prepare the same move at once.
	m.rec, m.recTmp = m.dst+trashRecordSuffix, m.dst+trashRecordTemp+hex.EncodeToString(b[:])
	m.Path = filepath.Join(root.Name(), m.dst)
	if _, err := root.Lstat(m.dst); err == nil {
		return nil, fmt.Errorf("move %s to the trash: %w: %s", rel, ErrTrashTaken, m.Path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, trashErr(fmt.Sprintf("check %s", m.Path), err)
	}
	if err := root.MkdirAll(filepath.Dir(m.dst), dirMode|0o700); err != nil {
		return nil, trashErr(fmt.Sprintf("create trash directory %s", filepath.Dir(m.Path)), err)
	}
	if err := writeRecord(root, m.recTmp, m.rec, rec); err != nil {
		return nil, err
	}
	if err := syncIn(root, filepath.Dir(m.dst)); err != nil {
		m.Abort()
		return nil, trashErr("", err)
	}
	return m, nil
}

// Commit moves the original into the trash by a rename that never
// replaces a file, then fsyncs both directories. On failure the original
// stays where it is (a rename is all or nothing) and the record goes.
func (m *TrashMove) Commit() error {
	if err := renameNoReplaceIn(m.root, m.rel, m.dst); err != nil {
		m.Abort()
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("move %s to the trash: %w: %s", m.rel, ErrTrashTaken, m.Path)
		}
		return trashErr(fmt.Sprintf("move %s to %s", m.rel, m.Path), err)
	}
	// Both directories: the new name and the old name's removal must be
	// durable together with what follows (the DONE/ object's removal).
	if err := syncIn(m.root, filepath.Dir(m.dst)); err != nil {
		return err
	}
	return syncIn(m.root, filepath.Dir(m.rel))
}

// Abort drops the record of a move that will not happen, unless an
// original is in the trash under that name after all (another
// downloader's move of the same file): the record is then its.
func (m *TrashMove) Abort() {
	m.root.Remove(m.recTmp)
	if _, err := m.root.Lstat(m.dst); errors.Is(err, fs.ErrNotExist) {
		m.root.Remove(m.rec)
	}
}

// trashErr wraps err, naming ErrTrashElsewhere for the errors that mean
// the trash is somewhere else (EXDEV: a mount; os.Root's "path escapes
// from parent": a symlink out of the library).
func trashErr(doing string, err error) error {
	if errors.Is(err, syscall.EXDEV) || strings.Contains(err.Error(), "path escapes from parent") {
		err = fmt.Errorf("%w: %w", ErrTrashElsewhere, err)
	}
	if doing == "" {
		return err
	}
	return fmt.Errorf("%s: %w", doing, err)
}

func writeRecord(root *os.Root, tmp, dst string, rec TrashRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode trash record %s: %w", dst, err)
	}
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return trashErr("write trash record "+filepath.Join(root.Name(), tmp), err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, dst)
	}
	if err != nil {
		root.Remove(tmp)
		return trashErr("write trash record "+filepath.Join(root.Name(), dst), err)
	}
	return nil
}

func syncIn(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s in %s: %w", dir, root.Name(), err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("fsync directory %s in %s: %w", dir, root.Name(), err)
	}
	return nil
}

// TrashEntry is one original in the trash.
type TrashEntry struct {
	Rel  string // its name in the library, /-separated
	Path string // where it is now
	Size int64
	// Trashed is when it was moved there (from its record; when the record
	// is missing, zero).
	Trashed time.Time
	Record  *TrashRecord // nil: no readable record
}

// openTrash opens the library and its trash (nil trash: there is none).
// The trash is opened through the library root: a trash that is a
// symlink leading out of the library is refused, not followed.
func openTrash(libraryDir string) (lib, trash *os.Root, err error) {
	lib, err = os.OpenRoot(libraryDir)
	if err != nil {
		return nil, nil, fmt.Errorf("open library %s: %w", libraryDir, err)
	}
	trash, err = lib.OpenRoot(trashRel)
	if errors.Is(err, fs.ErrNotExist) {
		return lib, nil, nil
	}
	if err != nil {
		lib.Close()
		return nil, nil, trashErr("open trash "+TrashDir(libraryDir), err)
	}
	return lib, trash, nil
}

// ListTrash lists the originals in the trash, oldest first.
func ListTrash(libraryDir string) ([]TrashEntry, error) {
	lib, trash, err := openTrash(libraryDir)
	if err != nil {
		return nil, err
	}
	defer lib.Close()
	if trash == nil {
		return nil, nil
	}
	defer trash.Close()
	var out []TrashEntry
	err = fs.WalkDir(trash.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || isRecordName(p) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("stat %s in the trash: %w", p, err)
		}
		e := TrashEntry{Rel: p, Path: filepath.Join(TrashDir(libraryDir), filepath.FromSlash(p)), Size: fi.Size()}
		if rec, err := readRecord(trash, p+trashRecordSuffix); err == nil {
			e.Record, e.Trashed = &rec, rec.Trashed
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list trash %s: %w", TrashDir(libraryDir), err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Trashed.Before(out[j].Trashed) })
	return out, nil
}

func isRecordName(p string) bool {
	return strings.HasSuffix(p, trashRecordSuffix) || strings.Contains(path.Base(p), trashRecordTemp)
}

func readRecord(trash *os.Root, p string) (TrashRecord, error) {
	var rec TrashRecord
	b, err := trash.ReadFile(p)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("trash record %s: %w", p, err)
	}
	return rec, nil
}

// TrashUsage sums the trash: how many originals, their bytes, and when
// the oldest was trashed (zero when empty). No trash is not an error.
func TrashUsage(libraryDir string) (files int, bytes int64, oldest time.Time, err error) {
	entries, err := ListTrash(libraryDir)
	if err != nil {
		return 0, 0, time.Time{}, err
	}
	for _, e := range entries {
		files++
		bytes += e.Size
		if !e.Trashed.IsZero() && (oldest.IsZero() || e.Trashed.Before(oldest)) {
			oldest = e.Trashed
		}
	}
	return files, bytes, oldest, nil
}

// PurgeReport is what PurgeTrash did.
type PurgeReport struct {
	Removed int
	Bytes   int64
	// Recorded counts originals found without a record (a crash right
	// after the move, or a file put there by hand): they got one dated now, so
	// their grace period starts now instead of ending early.
	Recorded int
}

// PurgeTrash removes the originals trashed at least maxAge before now
// (by their record, never by their own times), with their records;
// then unfinished records and emptied directories left long enough to
// be no move in progress. removed, if set, sees each original removed.
func PurgeTrash(libraryDir string, maxAge time.Duration, now time.Time, removed func(e TrashEntry)) (PurgeReport, error) {
	var rep PurgeReport
	lib, trash, err := openTrash(libraryDir)
	if err != nil {
		return rep, err
	}
	defer lib.Close()
	if trash == nil {
		return rep, nil
	}
	defer trash.Close()
	var dirs []string
	var errs []error
	err = fs.WalkDir(trash.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." {
				dirs = append(dirs, p)
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		switch {
		case strings.Contains(path.Base(p), trashRecordTemp):
			if now.Sub(fi.ModTime()) > staleAfter {
				trash.Remove(p)
			}
			return nil
		case strings.HasSuffix(p, trashRecordSuffix):
			orig := strings.TrimSuffix(p, trashRecordSuffix)
			if _, err := trash.Lstat(orig); errors.Is(err, fs.ErrNotExist) && now.Sub(fi.ModTime()) > staleAfter {
				trash.Remove(p) // a move that never happened (crash)
			}
			return nil
		}
		rec, rerr := readRecord(trash, p+trashRecordSuffix)
		if rerr != nil {
			rec = TrashRecord{Rel: p, Trashed: now, Size: fi.Size(), Mtime: fi.ModTime(),
				Note: "record made by a purge: the original was found in the trash without one"}
			if err := writeRecord(trash, p+trashRecordTemp+"purge", p+trashRecordSuffix, rec); err != nil {
				errs = append(errs, err)
				return nil
			}
			rep.Recorded++
			return nil
		}
		if now.Sub(rec.Trashed) < maxAge {
			return nil
		}
		if err := trash.Remove(p); err != nil {
			errs = append(errs, fmt.Errorf("remove %s from the trash: %w", p, err))
			return nil
		}
		trash.Remove(p + trashRecordSuffix)
		if err := syncIn(trash, path.Dir(p)); err != nil {
			errs = append(errs, err)
		}
		rep.Removed++
		rep.Bytes += fi.Size()
		if removed != nil {
			removed(TrashEntry{Rel: p, Path: filepath.Join(TrashDir(libraryDir), filepath.FromSlash(p)), Size: fi.Size(), Trashed: rec.Trashed, Record: &rec})
		}
		return nil
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("purge trash %s: %w", TrashDir(libraryDir), err))
	}
	// Deepest first; a directory that is not empty stays (Remove fails),
	// and a fresh one may be waiting for a move being prepared.
	for i := len(dirs) - 1; i >= 0; i-- {
		if fi, err := trash.Lstat(dirs[i]); err == nil && now.Sub(fi.ModTime()) > staleAfter {
			trash.Remove(dirs[i])
		}
	}
	return rep, errors.Join(errs...)
}

// RestoreReport is what Restore did.
type RestoreReport struct {
	Path string // the original, back in the library
	// Result is the installed result's path ("" none recorded);
	// ResultRemoved says whether it was removed, ResultKept why not.
	Result        string
	ResultRemoved bool
	ResultKept    string
}

// Restore moves the trashed original rel back to its place in the
// library, never over a file (ErrRestoreTaken: both are left as they
// are), then removes its result, unless keepResult, and only when the
// result is still the very file that was installed (size and SHA-256 of
// the record); otherwise the result is kept and ResultKept says why.
func Restore(libraryDir, rel string, keepResult bool, dirMode fs.FileMode) (RestoreReport, error) {
	var rep RestoreReport
	rel = strings.TrimPrefix(filepath.ToSlash(rel), "./")
	if err := CheckRel(rel); err != nil {
		return rep, err
	}
	if dirMode == 0 {
		dirMode = 0o755
	}
	lib, trash, err := openTrash(libraryDir)
	if err != nil {
		return rep, err
	}
	defer lib.Close()
	if trash == nil {
		return rep, fmt.Errorf("restore %s: %w (the trash %s does not exist)", rel, ErrNotInTrash, TrashDir(libraryDir))
	}
	defer trash.Close()
	src := filepath.Join(trashRel, filepath.FromSlash(rel))
	trashed := filepath.Join(libraryDir, src)
	fi, err := lib.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.Mode().IsRegular() {
		return rep, fmt.Errorf("restore %s: %w (no file %s)", rel, ErrNotInTrash, trashed)
	}
	if err != nil {
		return rep, fmt.Errorf("restore %s: %w", rel, err)
	}
	dst := filepath.FromSlash(rel)
	rep.Path = filepath.Join(libraryDir, dst)
	taken := func(existing fs.FileInfo) error {
		what := ""
		if existing != nil {
			what = fmt.Sprintf(" (%d bytes, modified %s)", existing.Size(), existing.ModTime().Format(time.RFC3339))
		}
		return fmt.Errorf("restore %s: %w: %s%s is there now; nothing was changed: the trashed original stays in %s. Move one of them yourself",
			rel, ErrRestoreTaken, rep.Path, what, trashed)
	}
	if existing, err := lib.Lstat(dst); err == nil {
		return rep, taken(existing)
	}
	if err := lib.MkdirAll(filepath.Dir(dst), dirMode); err != nil {
		return rep, fmt.Errorf("restore %s: create %s: %w", rel, filepath.Dir(rep.Path), err)
	}
	if err := renameNoReplaceIn(lib, src, dst); err != nil {
		if errors.Is(err, fs.ErrExist) {
			existing, _ := lib.Lstat(dst)
			return rep, taken(existing)
		}
		return rep, fmt.Errorf("restore %s: move %s to %s: %w", rel, trashed, rep.Path, err)
	}
	if err := syncIn(lib, filepath.Dir(dst)); err != nil {
		return rep, err
	}
	if err := syncIn(lib, filepath.Dir(src)); err != nil {
		return rep, err
	}
	rec, rerr := readRecord(trash, rel+trashRecordSuffix)
	switch {
	case rerr != nil || rec.Result == "":
		rep.ResultKept = "the trash holds no record of the result installed in its place, so no file is known to be it"
	default:
		rep.Result = filepath.Join(libraryDir, filepath.FromSlash(rec.Result))
		if keepResult {
			rep.ResultKept = "kept as asked (--keep-result)"
		} else {
			rep.ResultRemoved, rep.ResultKept, err = removeResult(lib, rec)
			if err != nil {
				return rep, err
			}
		}
	}
	trash.Remove(rel + trashRecordSuffix)
	return rep, nil
}

// removeResult removes rec's result if it is still the file installed
// (same size and SHA-256); a different or missing file stays, with why.
func removeResult(lib *os.Root, rec TrashRecord) (bool, string, error) {
	if CheckRel(rec.Result) != nil || rec.ResultSHA256 == "" {
		return false, "the record does not identify the result", nil
	}
	p := filepath.FromSlash(rec.Result)
	fi, err := lib.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, "it no longer exists", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("check result %s: %w", rec.Result, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != rec.ResultSize {
		return false, fmt.Sprintf("it is not the file installed from this original (%d bytes, the installed result had %d): not ours to delete", fi.Size(), rec.ResultSize), nil
	}
	f, err := lib.Open(p)
	if err != nil {
		return false, "", fmt.Errorf("hash result %s: %w", rec.Result, err)
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return false, "", fmt.Errorf("hash result %s: %w", rec.Result, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(sum, rec.ResultSHA256) {
		return false, fmt.Sprintf("its content changed since it was installed (sha256 %s, installed %s): not ours to delete", sum, rec.ResultSHA256), nil
	}
	// The very file hashed, unchanged meanwhile, is the one removed.
	if now, err := lib.Lstat(p); err != nil || !os.SameFile(fi, now) || !now.ModTime().Equal(fi.ModTime()) || now.Size() != fi.Size() {
		return false, "it changed while it was being checked: not removed", nil
	}
	if err := lib.Remove(p); err != nil {
		return false, "", fmt.Errorf("remove result %s: %w", rec.Result, err)
	}
	if err := syncIn(lib, filepath.Dir(p)); err != nil {
		return true, "", err
	}
	return true, "", nil
}
