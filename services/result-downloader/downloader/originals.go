package downloader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/progress"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// What becomes of a verified original once its result is installed
// (ORIGINALS).
const (
	// OriginalsTrash moves it to <library>/.hevc-encoder/trash/<rel> for
	// TRASH_DAYS (the default, also for "").
	OriginalsTrash = "trash"
	// OriginalsDelete removes it at once.
	OriginalsDelete = "delete"
	// OriginalsKeep leaves it beside its result.
	OriginalsKeep = "keep"
)

// DefaultTrashDays is TRASH_DAYS's default.
const DefaultTrashDays = 30

// BindOriginals registers ORIGINALS and TRASH_DAYS, for every command
// that installs results.
func (c *Config) BindOriginals(s *config.Set) {
	s.String(&c.Originals, "ORIGINALS", OriginalsTrash, "what becomes of a verified original once its result is installed: "+
		"trash (moved to `<library>/.hevc-encoder/trash/<rel>`, same file system, removed after TRASH_DAYS; `result-downloader restore <rel>` brings it back), "+
		"delete (removed at once), keep (left beside its result)")
	s.Int(&c.TrashDays, "TRASH_DAYS", DefaultTrashDays, "days an original stays in the trash before it is removed (counted from when it was trashed, not from the file's mtime; checked at start and hourly)")
	s.Check(func() error {
		switch c.Originals {
		case OriginalsTrash, OriginalsDelete, OriginalsKeep:
		default:
			return fmt.Errorf("ORIGINALS must be trash, delete or keep, got %q", c.Originals)
		}
		if c.TrashDays < 1 {
			return fmt.Errorf("TRASH_DAYS must be at least 1, got %d", c.TrashDays)
		}
		return nil
	})
}

func (c *Config) originals() string {
	if c.Originals == "" {
		return OriginalsTrash
	}
	return c.Originals
}

// TrashAge is how long an original stays in the trash.
func (c *Config) TrashAge() time.Duration {
	days := c.TrashDays
	if days <= 0 {
		days = DefaultTrashDays
	}
	return time.Duration(days) * 24 * time.Hour
}

func (d *Downloader) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// purgeEvery: the trash is walked at most this often (TRASH_DAYS counts
// days; `process` reconciles every POLL_INTERVAL).
const purgeEvery = time.Hour

// purgeTrash removes the originals whose grace period is over. It runs
// at start, with the reconciles and in the service's loop, at most every
// purgeEvery, also when ORIGINALS is no longer trash: what is there
// still expires.
func (d *Downloader) purgeTrash() {
	d.mu.Lock()
	now := d.now()
	due := d.purged.IsZero() || now.Sub(d.purged) >= purgeEvery || now.Before(d.purged)
	if due {
		d.purged = now
	}
	d.mu.Unlock()
	if !due {
		return
	}
	rep, err := library.PurgeTrash(d.Cfg.Root, d.Cfg.TrashAge(), now, func(e library.TrashEntry) {
		d.Log.Info().Str("file", e.Rel).Str("trashed", e.Trashed.Format(time.RFC3339)).Int64("bytes", e.Size).
			Msg("original removed from the trash: its grace period (TRASH_DAYS) is over")
	})
	if rep.Removed > 0 {
		d.Log.Info().Int("files", rep.Removed).Str("freed", progress.Bytes(rep.Bytes)).Msg("trash purged")
	}
	if rep.Recorded > 0 {
		d.Log.Warn().Int("files", rep.Recorded).Msg("originals found in the trash without a record; their grace period starts now")
	}
	if err != nil {
		d.Log.Warn().Err(err).Str("trash", library.TrashDir(d.Cfg.Root)).Msg("purge trash")
	}
}

// trashOriginal moves the original into the trash. The record (when,
// and which result replaced it) is written first; the identity check is
// then made again right before the rename, exactly as strict as before a
// removal. When the original cannot be moved there (the trash on another
// file system or a symlink out of the library, a full disk, the name
// already in the trash), it is kept where it is, beside its result, and
// the reason is reported: a move across file systems would be a copy,
// and nothing is worth risking the original for.
func (j *job) trashOriginal() error {
	rec := library.TrashRecord{
		Rel: filepath.ToSlash(j.orig.rel), Trashed: j.d.now().UTC(),
		Size: j.orig.info.Size(), Mtime: j.orig.info.ModTime(), SHA256: j.obj.Metadata[storage.MetaSourceSHA],
		Result: filepath.ToSlash(j.targetRel), ResultSize: j.obj.Size, ResultSHA256: j.obj.SHA256,
	}
	mv, err := prepareTrash(j.root, j.orig.rel, rec, os.FileMode(j.d.Cfg.DirMode))
	if err == nil {
		// Right before the rename, as right before a removal.
		diff, cerr := j.recheckOriginal()
		switch {
		case errors.Is(cerr, os.ErrNotExist):
			mv.Abort()
			j.log.Info().Msg("original already gone")
			return nil
		case cerr != nil:
			mv.Abort()
			return cerr
		case diff != "":
			mv.Abort()
			j.keptChanged(diff)
			return nil
		}
		err = commitTrash(mv)
	}
	if err != nil {
		why := trashProblem(err)
		j.res.OriginalKept = true
		j.res.Reason = fmt.Sprintf("installed as %s, but the original %s could not be moved to the trash (%s): kept in place", j.target, j.orig.path, why)
		j.d.logProblem(j.log, j.key, j.res.Reason).Err(err).Str("path", j.orig.path).Str("trash", library.TrashDir(j.d.Cfg.Root)).
			Msg("original kept in place beside its result: it could not be moved to the trash")
		return nil
	}
	j.res.Trashed = mv.Path
	j.log.Info().Str("trash", mv.Path).Msg("original moved to the trash")
	j.d.crash(CrashOriginalRemoved)
	return nil
}

// The trash's two steps; tests on a machine where they cannot mount a
// file system replace them to inject its errors (export_test.go).
var (
	prepareTrash = library.PrepareTrash
	commitTrash  = (*library.TrashMove).Commit
)

// trashProblem says in a few words why a move to the trash failed.
func trashProblem(err error) string {
	switch {
	case errors.Is(err, library.ErrTrashElsewhere):
		return "the trash directory is on another file system or leads out of the library; a move there would be a copy"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "no space left on the device for the trash's directory or record"
	case errors.Is(err, library.ErrTrashTaken):
		return "the trash already holds a file of that name, trashed earlier"
	}
	return err.Error()
}
