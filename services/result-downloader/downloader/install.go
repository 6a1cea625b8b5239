package downloader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// job is one result on its way home: what each step of install hands to
// the next. The steps, each in its own file:
//
//   - fetch.go: locate (GET, find the original, notice an earlier install)
//     and fetch (download into a recorded temp file beside the target);
//   - verify.go: compare the download with the original (streams, duration,
//     decode, picture) and wait for the original's SHA-256 check;
//   - commit.go: mode, owner, mtime, fsync, link without replacing, or
//     finish an earlier, interrupted install (resume);
//   - retire.go: remove the original (only if it is still the file that
//     was encoded), then the DONE/ object.
type job struct {
	d   *Downloader
	key string
	log zerolog.Logger
	res Result
	tk  *ticket
	// root is the library, opened once per job: every write, link and
	// delete goes through it, so a directory swapped for a symlink out of
	// the library after the first check cannot carry one out.
	root *os.Root

	ref               library.Done
	target, targetRel string // the result's final name, absolute and in root

	obj  storage.Object
	body io.ReadCloser

	orig original
	// confirmed delivers the original's SHA-256 check, which runs while
	// the result downloads (nil when it is not needed).
	confirmed  chan error
	cancelHash context.CancelFunc
	chk        check
	origProbe  media.Info
	tmp        *temp

	start, downloaded, verified time.Time
}

// original is the file the result replaces ("" path: none left).
type original struct {
	path, rel string
	info      os.FileInfo // as found before it was hashed: its identity
	unhashed  bool        // its SHA-256 is still to be confirmed
}

// step is one stage of an install: stop says the result has its outcome
// (refused, rejected, collided, installed), err is a failure worth
// retrying.
type step func(ctx context.Context) (stop bool, err error)

// install is Install on a download slot the caller already holds (tk), or
// on one it waits for (tk nil).
func (d *Downloader) install(ctx context.Context, key string, tk *ticket) (res Result, err error) {
	if tk != nil {
		defer tk.release()
	}
	j := &job{d: d, key: key, log: d.Log.With().Str("key", key).Logger()}
	j.res.Key = key
	defer func() {
		res = j.res
		res.Err = err
		if err != nil && ctx.Err() == nil {
			j.log.Warn().Err(err).Msg("install failed; will retry")
		}
		d.record(j, res)
		if d.OnResult != nil && res.Outcome != busy {
			d.OnResult(res)
		}
	}()
	if j.resolve() {
		return
	}
	if !d.acquire(key) {
		j.res.Outcome = busy
		return
	}
	defer d.release(key)

	// A download slot for the GET and the download; handed over to a
	// finishing slot for the verification, fsync, install and deletes
	// (see ticket).
	if tk == nil {
		if tk, err = d.transferSlot(ctx); err != nil {
			return
		}
		defer tk.release()
	}
	j.tk = tk
	if j.root, err = os.OpenRoot(d.Cfg.Root); err != nil {
		err = fmt.Errorf("open library root %s: %w", d.Cfg.Root, err)
		return
	}
	defer j.root.Close()
	defer j.close()

	var stop bool
	if stop, err = j.locate(ctx); stop || err != nil {
		return
	}
	for _, s := range []step{j.probeOriginal, j.fetch, j.verify, j.commit, j.retire} {
		if stop, err = s(ctx); stop || err != nil {
			return
		}
	}
	return
}

// resolve maps the key to the result's name in the library, refusing keys
// that would leave it.
func (j *job) resolve() (stop bool) {
	refuse := func(e error) bool {
		j.res.Outcome, j.res.Reason = Refused, e.Error()
		j.d.logProblem(j.log, j.key, j.res.Reason).Err(e).Msg("refused: key would escape the library; nothing written")
		return true
	}
	ref, err := library.ParseDone(j.key)
	if err != nil {
		return refuse(err)
	}
	j.ref = ref
	if j.target, err = library.Path(j.d.Cfg.Root, ref.Hevc); err != nil {
		return refuse(err)
	}
	// Early and friendly; every write below is checked again by root.
	if err := j.d.inside(j.target); err != nil {
		return refuse(err)
	}
	j.targetRel = filepath.FromSlash(ref.Hevc)
	j.res.Path = j.target
	j.log = j.log.With().Str("file", ref.Hevc).Logger()
	return false
}

// close releases what the steps left open: the download's body, the temp
// file (removed unless committed) and the original's hashing.
func (j *job) close() {
	if j.cancelHash != nil {
		j.cancelHash()
	}
	j.closeBody()
	if j.tmp != nil {
		j.tmp.abort()
	}
}

func (j *job) closeBody() {
	if j.body != nil {
		j.body.Close()
		j.body = nil
	}
}

// reject ends the job with the result left in DONE/ and the original in
// place.
func (j *job) reject(reason string) (bool, error) {
	j.res.Outcome, j.res.Reason = Rejected, reason
	j.d.logProblem(j.log, j.key, reason).Str("reason", reason).Msg("not installed; original kept, result left in DONE/")
	return true, nil
}

// remember is reject for a result that will be rejected again as long as
// neither it nor its original changes: it is not downloaded again.
func (j *job) remember(reason string) (bool, error) {
	j.d.rememberRejection(j.key, j.obj, j.orig.path, j.orig.info, reason)
	return j.reject(reason)
}

// mismatchOr rejects a mismatch; other errors are retried.
func (j *job) mismatchOr(err error) (bool, error) {
	var mm mismatch
	if errors.As(err, &mm) {
		return j.reject(mm.Error())
	}
	return false, err
}

// rel is p relative to the library root.
func (j *job) rel(p string) (string, error) {
	r, err := filepath.Rel(j.d.Cfg.Root, p)
	if err != nil || r == ".." || filepath.IsAbs(r) || len(r) > 2 && r[:3] == ".."+string(filepath.Separator) {
		return "", fmt.Errorf("%w: %s is not in the library %s", library.ErrUnsafe, p, j.d.Cfg.Root)
	}
	return r, nil
}
