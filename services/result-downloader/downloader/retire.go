package downloader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// retire runs once the verified result is durably in place: the original
// goes first (only if it is still the very file that was encoded), then
// the DONE/ object, whose bytes now live in the library.
func (j *job) retire(ctx context.Context) (bool, error) {
	if j.orig.path != "" {
		if err := j.retireOriginal(); err != nil {
			return false, err
		}
	}
	if err := j.d.Store.Delete(ctx, j.key); err != nil {
		return false, fmt.Errorf("delete %s: %w", j.key, err)
	}
	j.d.mu.Lock()
	delete(j.d.rejected, j.key)
	delete(j.d.reported, j.key)
	j.d.mu.Unlock()
	j.res.Outcome = Installed
	return true, nil
}

// retireOriginal retires the original as ORIGINALS says (trash, delete
// or keep), unless it changed since it was found and hashed: a version
// saved meanwhile (written in place, or replaced by a rename) is not the
// one the result was made from. Its identity (device, inode, size,
// mtime, ctime: nobody can set a ctime back) is taken again through the
// library root right before the removal or the move to the trash, which
// go through the root too.
func (j *job) retireOriginal() error {
	j.d.crash(CrashRetiring)
	if j.d.Cfg.originals() == OriginalsKeep {
		j.log.Info().Str("path", j.orig.path).Msg("original kept beside its result (ORIGINALS=keep)")
		return nil
	}
	diff, err := j.recheckOriginal()
	if errors.Is(err, os.ErrNotExist) {
		j.log.Info().Msg("original already gone")
		return nil
	}
	if err != nil {
		return err
	}
	if diff != "" {
		j.keptChanged(diff)
		return nil
	}
	if j.d.Cfg.originals() == OriginalsTrash {
		return j.trashOriginal()
	}
	if err := j.root.Remove(j.orig.rel); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove original %s: %w", j.orig.path, err)
	}
	if err := syncDirIn(j.root, filepath.Dir(j.orig.rel)); err != nil {
		return err
	}
	j.log.Info().Msg("original removed")
	j.d.crash(CrashOriginalRemoved)
	return nil
}

// recheckOriginal takes the original's identity again: "" when it is
// still the file that was encoded, else what changed; an error wrapping
// os.ErrNotExist when it is gone.
func (j *job) recheckOriginal() (string, error) {
	now, err := j.root.Lstat(j.orig.rel)
	if errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("check original %s: %w", j.orig.path, err)
	}
	return identityChange(j.orig.info, now), nil
}

// keptChanged reports an original kept because it changed since it was
// encoded.
func (j *job) keptChanged(diff string) {
	j.res.OriginalKept = true
	j.res.Reason = fmt.Sprintf("installed as %s, but the original %s changed since it was encoded (%s): kept; it is a newer version", j.target, j.orig.path, diff)
	j.d.logProblem(j.log, j.key, j.res.Reason).Str("path", j.orig.path).Str("changed", diff).
		Msg("original changed since it was encoded; kept beside the installed result")
}

// identityChange says what differs between two looks at one file, or ""
// when it is the same file, unchanged.
func identityChange(was, now os.FileInfo) string {
	var diff []string
	if !now.Mode().IsRegular() {
		diff = append(diff, "no longer a regular file")
	}
	if was.Size() != now.Size() {
		diff = append(diff, fmt.Sprintf("size %d, now %d", was.Size(), now.Size()))
	}
	if !was.ModTime().Equal(now.ModTime()) {
		diff = append(diff, fmt.Sprintf("modified %s, now %s", was.ModTime().Format(time.RFC3339Nano), now.ModTime().Format(time.RFC3339Nano)))
	}
	a, aok := was.Sys().(*syscall.Stat_t)
	b, bok := now.Sys().(*syscall.Stat_t)
	if aok && bok {
		if a.Dev != b.Dev || a.Ino != b.Ino {
			diff = append(diff, "replaced by another file")
		}
		if a.Ctim != b.Ctim {
			diff = append(diff, "inode changed")
		}
	} else if aok != bok {
		diff = append(diff, "cannot compare inodes")
	}
	return strings.Join(diff, "; ")
}
