package downloader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// commit gives the verified temp file the original's mtime, mode (or
// FILE_MODE) and owner (where allowed), fsyncs it and links it to the
// result's name without ever replacing a file. A name taken meanwhile is
// resumed: our own earlier install finishes, anything else collides.
func (j *job) commit(ctx context.Context) (bool, error) {
	mode := os.FileMode(j.d.Cfg.FileMode)
	var mtime time.Time
	uid, gid := -1, -1
	if j.orig.path != "" {
		mtime = j.orig.info.ModTime()
		if mode == 0 {
			mode = j.orig.info.Mode().Perm()
		}
		if st, ok := j.orig.info.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	} else if t, perr := time.Parse(time.RFC3339Nano, j.obj.Metadata[storage.MetaSourceMtime]); perr == nil {
		mtime = t
	}
	if mode == 0 {
		mode = 0o644
	}
	if err := j.tmp.commit(j.root, j.targetRel, mode, mtime, uid, gid); err != nil {
		if errors.Is(err, library.ErrExists) {
			// Someone (another downloader?) installed it meanwhile.
			if fi, lerr := j.root.Lstat(j.targetRel); lerr == nil {
				j.tmp.abort()
				return j.resume(ctx, fi)
			}
		}
		return false, err
	}
	secs := time.Since(j.start).Seconds()
	j.log.Info().Int64("bytes", j.obj.Size).Int64("original_bytes", j.res.Before).
		Float64("MBps", float64(j.obj.Size)/1e6/max(secs, 1e-6)).
		Dur("download", j.downloaded.Sub(j.start)).Dur("verify", j.verified.Sub(j.downloaded)).Dur("commit", time.Since(j.verified)).
		Msg("installed")
	j.d.crash(CrashInstalled)
	return false, nil
}

// resume handles a target that exists: our own install of an earlier,
// interrupted run (byte-identical to the DONE/ object: verify it against
// the original again, then retire the original), or a different file (a
// collision: nothing is touched).
func (j *job) resume(ctx context.Context, fi os.FileInfo) (bool, error) {
	collide := func(why string) (bool, error) {
		j.res.Outcome = Collision
		j.res.Reason = fmt.Sprintf("%s already exists and %s; the result stays in %s and the original is kept", j.target, why, j.key)
		j.d.logProblem(j.log, j.key, j.res.Reason).Str("existing", j.target).Str("why", why).Msg("not installed: the name is taken by a different file; resolve by hand")
		return true, nil
	}
	if !fi.Mode().IsRegular() {
		return collide("is not a regular file")
	}
	if fi.Size() != j.obj.Size {
		return collide(fmt.Sprintf("has %d bytes, the result %d", fi.Size(), j.obj.Size))
	}
	sha, _, err := library.FileSHA256(j.target)
	if err != nil {
		return false, fmt.Errorf("hash %s: %w", j.target, err)
	}
	if !strings.EqualFold(sha, j.obj.SHA256) {
		return collide("has different content")
	}
	if stop, err := j.verifyInstalled(ctx); stop || err != nil {
		return stop, err
	}
	j.log.Info().Msg("already installed by an earlier run; finishing cleanup")
	if stop, err := j.retire(ctx); stop || err != nil {
		return stop, err
	}
	return true, nil // retired here: the steps after commit are done
}
