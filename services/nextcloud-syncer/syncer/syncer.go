// Package syncer moves camera uploads from Nextcloud (WebDAV) into the
// library without ever losing or overwriting a file.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/rs/zerolog"
)

// Summary is one user's result of one pass.
type Summary struct {
	User     string
	Files    int           // moved (or, in a dry run, that would be moved)
	Bytes    int64         // bytes of the moved files
	Skipped  int           // identical copy already in the library: remote deleted only
	Deferred int           // changed or vanished on the server while moving: left for the next pass
	Failed   int           // errors (the remote file is kept)
	Elapsed  time.Duration // wall time of the user's pass
	Err      error         // the user could not be synced at all (auth, listing), or nil
}

// MBps is the moved bytes per second of wall time, in MB (10^6) per second.
func (s Summary) MBps() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Bytes) / 1e6 / s.Elapsed.Seconds()
}

// Syncer runs passes over all configured users.
type Syncer struct {
	cfg  *Config
	log  zerolog.Logger
	rt   http.RoundTripper
	sem  chan struct{} // transfer slots: GET streams (files, or ranges of a large file)
	fin  chan struct{} // finishing slots: files being fsynced, verified, installed, deleted
	bufs sync.Pool

	temps *library.Temps // records of our temp files (see sweep)

	filesWaiting atomic.Int64 // files waiting for a transfer slot: they go before splits
	freedMu      sync.Mutex
	freed        chan struct{} // closed (and replaced) when a transfer slot frees

	// OnFile, if set, sees each remote file's outcome (moved, identical,
	// deferred, failed, planned) and, when moved, its bytes (metrics); it
	// is called from the transfer goroutines.
	OnFile func(outcome string, bytes int64)
	// OnPass, if set, sees each finished pass's summaries and error.
	OnPass func([]Summary, error)
}

const copyBuf = 256 << 10

// New builds a Syncer. Every user shares one HTTP transport and one limit
// of cfg.Concurrency transfers.
func New(cfg *Config, log zerolog.Logger) *Syncer {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.Concurrency*2 + 2
	tr.ResponseHeaderTimeout = cfg.Timeout
	tr.DisableCompression = true
	tr.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	s := &Syncer{cfg: cfg, log: log, rt: tr,
		sem: make(chan struct{}, cfg.Concurrency), fin: make(chan struct{}, cfg.Concurrency),
		freed: make(chan struct{})}
	s.bufs.New = func() any { b := make([]byte, copyBuf); return &b }
	return s
}

// releaseSlot gives back a transfer slot and wakes splitters waiting for
// one.
func (s *Syncer) releaseSlot() {
	<-s.sem
	s.freedMu.Lock()
	close(s.freed)
	s.freed = make(chan struct{})
	s.freedMu.Unlock()
}

// slotFreed is closed at the next releaseSlot.
func (s *Syncer) slotFreed() <-chan struct{} {
	s.freedMu.Lock()
	defer s.freedMu.Unlock()
	return s.freed
}

// Run runs one pass (Once) or passes every Interval until ctx ends. With
// Once the error says whether anything failed; otherwise failures are
// logged and retried on the next pass, and Run returns nil when ctx ends.
func (s *Syncer) Run(ctx context.Context) error {
	for {
		sums, err := s.RunOnce(ctx)
		if s.OnPass != nil && ctx.Err() == nil {
			s.OnPass(sums, err)
		}
		if s.cfg.Once {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.log.Error().Err(err).Dur("next_in", s.cfg.Interval).Msg("pass finished with failures; the next pass retries")
		}
		t := time.NewTimer(s.cfg.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// RunOnce moves every user's files once, users in parallel. The error is
// non-nil when any user or file failed.
func (s *Syncer) RunOnce(ctx context.Context) ([]Summary, error) {
	if !s.cfg.DryRun {
		if err := s.sweep(); err != nil {
			return nil, err
		}
	}
	sums := make([]Summary, len(s.cfg.Users))
	var wg sync.WaitGroup
	for i, u := range s.cfg.Users {
		wg.Go(func() { sums[i] = s.syncUser(ctx, u) })
	}
	wg.Wait()
	var errs []error
	for _, sum := range sums {
		switch {
		case sum.Err != nil:
			errs = append(errs, fmt.Errorf("user %s: %w", sum.User, sum.Err))
		case sum.Failed > 0:
			errs = append(errs, fmt.Errorf("user %s: %d file(s) failed", sum.User, sum.Failed))
		}
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("interrupted: %w", err))
	}
	return sums, errors.Join(errs...)
}

// tempOwner names the syncer's temp files and their records
// (<library>/.hevc-encoder/temps/sync-<token>).
const tempOwner = "sync"

// sweep opens the records of the syncer's temp files (once) and removes
// the temp files of killed runs: only files this service recorded creating
// and no live process holds. A user's file of a similar name (even one
// this syncer moved from Nextcloud) and the downloader's temp files, live
// or not, are never touched, however old.
func (s *Syncer) sweep() error {
	if s.temps == nil {
		t, err := library.OpenTemps(library.StateDir(s.cfg.LibraryRoot), tempOwner, s.cfg.DirMode)
		if err != nil {
			return err
		}
		s.temps = t
	}
	err := s.temps.Sweep(func(p string) {
		s.log.Warn().Str("path", p).Msg("removed a temp file left by an interrupted transfer")
	})
	if err != nil {
		s.log.Warn().Err(err).Msg("sweep temp files of interrupted transfers")
	}
	return nil
}

type outcome int

const (
	moved outcome = iota
	identical
	deferred
	failed
	planned // dry run
)

// String names the outcome (metrics labels).
func (o outcome) String() string {
	switch o {
	case moved:
		return "moved"
	case identical:
		return "identical"
	case deferred:
		return "deferred"
	case failed:
		return "failed"
	case planned:
		return "planned"
	}
	return "unknown"
}

// userRun is one user's pass.
type userRun struct {
	s        *Syncer
	user     string
	dav      *dav
	target   string // local directory
	log      zerolog.Logger
	files    atomic.Int64
	bytes    atomic.Int64
	skipped  atomic.Int64
	deferred atomic.Int64
	failed   atomic.Int64
	streak   atomic.Int64 // files failed in a row with transient errors
	abort    context.CancelCauseFunc
}

// errUnwell stops a user's pass when the server keeps failing.
var errUnwell = errors.New("server keeps failing; pass stopped, the next pass retries")

func (s *Syncer) syncUser(ctx context.Context, u User) Summary {
	start := time.Now()
	log := s.log.With().Str("user", u.Name).Logger()
	sum := Summary{User: u.Name}
	d, err := newDAV(s.cfg.URL, u.Name, u.Password.Reveal(), s.rt)
	uctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	run := &userRun{s: s, user: u.Name, dav: d, target: s.cfg.Target(u.Name), log: log, abort: abort}
	if err == nil {
		_, err = run.walk(uctx, "")
	}
	if cause := context.Cause(uctx); err == nil && (errors.Is(cause, errUnwell) || errors.Is(cause, ErrAuth)) {
		err = cause
	}
	sum.Files, sum.Bytes = int(run.files.Load()), run.bytes.Load()
	sum.Skipped, sum.Deferred, sum.Failed = int(run.skipped.Load()), int(run.deferred.Load()), int(run.failed.Load())
	sum.Elapsed = time.Since(start)
	sum.Err = err
	ev := log.Info()
	if err != nil || sum.Failed > 0 {
		ev = log.Error().Err(err)
	}
	ev.Str("key", s.cfg.SourceDir).Str("path", run.target).Bool("dry_run", s.cfg.DryRun).
		Int("files", sum.Files).Int64("bytes", sum.Bytes).Int("skipped", sum.Skipped).
		Int("deferred", sum.Deferred).Int("failed", sum.Failed).
		Float64("seconds", round3(sum.Elapsed.Seconds())).Float64("MBps", round3(sum.MBps())).
		Msg("user summary")
	return sum
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// walk moves the files of remote folder rel (relative to the source
// folder) and its subfolders. It reports whether the folder was emptied by
// this pass and removed (never the source folder itself). A listing error
// of the source folder is returned; deeper ones count as failures.
func (r *userRun) walk(ctx context.Context, rel string) (bool, error) {
	remote := joinRemote(r.s.cfg.SourceDir, rel)
	var entries []Entry
	err := r.retry(ctx, "list", remote, func(ctx context.Context) error {
		var err error
		entries, err = r.dav.List(ctx, remote)
		return err
	})
	if err != nil {
		if rel == "" {
			return false, fmt.Errorf("list %s: %w", remote, err)
		}
		r.failed.Add(1)
		r.log.Error().Err(err).Str("key", rel).Msg("cannot list folder; its files stay on the server")
		return false, nil
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	var kept atomic.Int64
	var wg sync.WaitGroup
	for _, e := range entries {
		if e.Dir {
			continue
		}
		r.s.filesWaiting.Add(1)
		select {
		case r.s.sem <- struct{}{}:
			r.s.filesWaiting.Add(-1)
		case <-ctx.Done():
			r.s.filesWaiting.Add(-1)
			wg.Wait()
			return false, nil
		}
		wg.Go(func() {
			tk := &ticket{s: r.s, transfer: true}
			defer tk.release()
			if o := r.moveFile(ctx, joinRemote(rel, e.Name), e, tk); o != moved && o != identical {
				kept.Add(1)
			}
		})
	}
	for _, e := range entries {
		if !e.Dir {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if removed, _ := r.walk(ctx, joinRemote(rel, e.Name)); !removed {
			kept.Add(1)
		}
	}
	wg.Wait()
	if rel == "" || len(entries) == 0 || kept.Load() > 0 || r.s.cfg.DryRun || ctx.Err() != nil {
		return false, nil
	}
	return r.removeEmptyDir(ctx, rel), nil
}

// removeEmptyDir deletes remote folder rel if it is (still) empty, with
// If-Match on its ETag so that a file uploaded meanwhile keeps it alive.
func (r *userRun) removeEmptyDir(ctx context.Context, rel string) bool {
	remote := joinRemote(r.s.cfg.SourceDir, rel)
	var self *Entry
	var children []Entry
	err := r.retry(ctx, "list", remote, func(ctx context.Context) error {
		var err error
		self, children, err = r.dav.propfind(ctx, remote+"/", "1")
		return err
	})
	if err != nil || len(children) > 0 || self == nil {
		if err != nil {
			r.log.Warn().Err(err).Str("key", rel).Msg("cannot check emptied folder; kept")
		}
		return false
	}
	if self.ETag == "" {
		// Without an ETag the DELETE cannot be conditional: a file uploaded
		// after the check would go with the folder.
		r.log.Info().Str("key", rel).Msg("emptied remote folder kept: the server sends no ETag to delete it safely")
		return false
	}
	err = r.retry(ctx, "delete", remote, func(ctx context.Context) error {
		return r.dav.Delete(ctx, remote+"/", self.ETag)
	})
	if err != nil {
		r.log.Warn().Err(err).Str("key", rel).Msg("cannot remove emptied folder; kept")
		return false
	}
	r.log.Info().Str("key", rel).Msg("removed emptied remote folder")
	return true
}

// errChanged marks a remote file that changed (or vanished) while it was
// being moved.
var errChanged = errors.New("remote file changed while it was being moved")

// ticket is one file's hold on the Syncer's limits: a transfer slot while
// it downloads, then a finishing slot while its copy is fsynced, verified,
// installed and the remote deleted. Handing over at the end of the
// download lets the next file's download run during this one's fsync
// (which waits for the disk) instead of after it; at most Concurrency
// files download and at most Concurrency more finish.
type ticket struct {
	s                *Syncer
	transfer, finish bool
}

// handOver trades the transfer slot for a finishing slot (waiting for
// one, so downloads slow down when the disk falls behind).
func (t *ticket) handOver(ctx context.Context) {
	if t == nil || !t.transfer || t.finish {
		return
	}
	select {
	case t.s.fin <- struct{}{}:
	case <-ctx.Done():
		return // finish on the transfer slot
	}
	t.finish = true
	t.s.releaseSlot()
	t.transfer = false
}

func (t *ticket) release() {
	if t.transfer {
		t.s.releaseSlot()
	}
	if t.finish {
		<-t.s.fin
	}
	t.transfer, t.finish = false, false
}

// moveFile moves one remote file (rel is relative to the source folder).
func (r *userRun) moveFile(ctx context.Context, rel string, e Entry, tk *ticket) outcome {
	log := r.log.With().Str("key", rel).Logger()
	o, dest, n, dur, err := r.move(ctx, rel, e, tk, log)
	if o == moved || o == identical {
		r.streak.Store(0)
	}
	if r.s.OnFile != nil && (o != failed || ctx.Err() == nil) {
		r.s.OnFile(o.String(), n)
	}
	switch o {
	case moved:
		r.files.Add(1)
		r.bytes.Add(n)
		log.Info().Str("path", dest).Int64("size", n).Float64("seconds", round3(dur.Seconds())).
			Float64("MBps", round3(mbps(n, dur))).Msg("moved")
	case identical:
		r.skipped.Add(1)
		msg := "identical file already in the library; remote copy deleted"
		if r.s.cfg.DryRun {
			msg = "dry run: identical file already in the library; would delete the remote copy"
		}
		log.Info().Str("path", dest).Int64("size", e.Size).Msg(msg)
	case planned:
		r.files.Add(1)
		r.bytes.Add(max(e.Size, 0))
	case deferred:
		r.deferred.Add(1)
		log.Warn().Err(err).Str("path", dest).Msg("left on the server for the next pass")
	case failed:
		r.failed.Add(1)
		if errors.Is(err, ErrAuth) {
			r.abort(err) // every further request would fail the same way
		} else if transient(err) {
			if n := r.streak.Add(1); n == int64(max(8, 2*r.s.cfg.Concurrency)) {
				r.abort(fmt.Errorf("%w: %d files in a row failed, the last with: %v", errUnwell, n, err))
			}
		}
		ev := log.Error().Err(err)
		if dest != "" {
			ev = ev.Str("path", dest)
		}
		ev.Msg("move failed; remote file kept")
	}
	return o
}

func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}

func (r *userRun) move(ctx context.Context, rel string, e Entry, tk *ticket, log zerolog.Logger) (o outcome, dest string, n int64, dur time.Duration, err error) {
	if err := library.CheckRel(rel); err != nil {
		return failed, "", 0, 0, fmt.Errorf("remote name cannot be stored: %w", err)
	}
	remote := joinRemote(r.s.cfg.SourceDir, rel)
	local := filepath.Join(r.target, filepath.FromSlash(rel))

	// With a strong checksum from the server, an identical file in place
	// is recognised without downloading.
	if c, ok := bestStrong(e.Checksums); ok && e.Size >= 0 {
		p, err := findIdentical(local, e.Size, func(p string) (bool, error) { return fileMatches(p, c) })
		if err != nil {
			return failed, "", 0, 0, err
		}
		if p != "" {
			if r.s.cfg.DryRun {
				return identical, p, 0, 0, nil
			}
			if err := r.deleteRemote(ctx, remote, e); err != nil {
				return deleteOutcome(err), p, 0, 0, err
			}
			return identical, p, 0, 0, nil
		}
	}
	if r.s.cfg.DryRun {
		p, err := freeName(local)
		if err != nil {
			return failed, "", 0, 0, err
		}
		log.Info().Str("path", p).Int64("size", e.Size).Msg("dry run: would move")
		return planned, p, e.Size, 0, nil
	}

	if err := mkdirAll(filepath.Dir(local), r.s.cfg.DirMode); err != nil {
		return failed, "", 0, 0, err
	}
	var t *staged
	var v *verifier
	start := time.Now()
	err = r.retry(ctx, "download", remote, func(ctx context.Context) error {
		var err error
		t, v, err = r.download(ctx, remote, local, e)
		return err
	})
	if err == nil {
		defer t.abort()
		tk.handOver(ctx)
		err = r.seal(ctx, t, v, remote, e)
	}
	dur = time.Since(start)
	if err != nil {
		if errors.Is(err, errChanged) || errors.Is(err, ErrNotFound) {
			return deferred, "", 0, dur, err
		}
		return failed, "", 0, dur, err
	}
	n = t.Size()

	// The copy is durable and verified; is it still what the server has?
	var now Entry
	err = r.retry(ctx, "stat", remote, func(ctx context.Context) error {
		var err error
		now, err = r.dav.Stat(ctx, remote)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return deferred, "", n, dur, fmt.Errorf("%w: it vanished", errChanged)
		}
		return failed, "", n, dur, err
	}
	if changed(e, now) {
		return deferred, "", n, dur, fmt.Errorf("%w: listed %s, now %s", errChanged, describe(e), describe(now))
	}
	dest, same, err := r.install(t, local)
	if err != nil {
		return failed, dest, n, dur, err
	}
	if err := r.deleteRemote(ctx, remote, e); err != nil {
		return deleteOutcome(err), dest, n, dur, err
	}
	if same {
		return identical, dest, n, dur, nil
	}
	return moved, dest, n, dur, nil
}

func deleteOutcome(err error) outcome {
	if errors.Is(err, ErrPrecondition) || errors.Is(err, ErrNoCondition) {
		return deferred
	}
	return failed
}

func (r *userRun) deleteRemote(ctx context.Context, remote string, e Entry) error {
	// Finish the DELETE of an installed file even when asked to stop, so
	// that the next pass has no duplicate to resolve.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.s.cfg.Timeout)
	defer cancel()
	err := r.retry(ctx, "delete", remote, func(ctx context.Context) error {
		return r.dav.DeleteIfUnmodified(ctx, remote, e)
	})
	if err != nil {
		return fmt.Errorf("copy is in the library, remote not deleted: %w", err)
	}
	return nil
}

// download streams remote into a temp file beside local, hashing it with
// every checksum the server offered. The caller seals it.
func (r *userRun) download(ctx context.Context, remote, local string, e Entry) (*staged, *verifier, error) {
	if ps := r.s.cfg.PartSize; ps > 0 && r.s.cfg.PartStreams > 1 && e.Size >= 2*ps {
		t, err := stage(r.s.temps, filepath.Dir(local))
		if err != nil {
			return nil, nil, err
		}
		v := newVerifier(e.Checksums)
		if err := r.downloadRanged(ctx, remote, e, t, v); err != nil {
			t.abort()
			return nil, nil, err
		}
		return t, v, nil
	}
	body, err := r.dav.Open(ctx, remote, r.s.cfg.Timeout)
	if err != nil {
		return nil, nil, err
	}
	defer body.Close()
	t, err := stage(r.s.temps, filepath.Dir(local))
	if err != nil {
		return nil, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			t.abort()
		}
	}()
	v := newVerifier(e.Checksums)
	var w io.Writer = t
	if e.Size < 0 || e.Size >= writebackStep {
		wb := newWriteback(t.Name(), writebackStep)
		defer wb.close()
		w = &progressWriter{w: t, wb: wb}
	}
	if hw := v.writers(); len(hw) > 0 {
		w = io.MultiWriter(append([]io.Writer{w}, hw...)...)
	}
	bp := r.s.bufs.Get().(*[]byte)
	n, err := io.CopyBuffer(w, body, *bp)
	r.s.bufs.Put(bp)
	if err != nil {
		return nil, nil, fmt.Errorf("download %s: %w (after %d bytes)", remote, err, n)
	}
	ok = true
	return t, v, nil
}

// seal sets the downloaded temp file's mode and mtime, fsyncs it, then
// verifies its size and the server's checksums (computed while it was
// written). A mismatch on a file that changed on the server meanwhile is
// errChanged (left for the next pass), not a failure.
func (r *userRun) seal(ctx context.Context, t *staged, v *verifier, remote string, e Entry) error {
	if err := t.finish(r.s.cfg.FileMode, e.ModTime); err != nil {
		return err
	}
	var bad error
	if n := t.Size(); e.Size >= 0 && n != e.Size {
		bad = fmt.Errorf("%w: %s: got %d bytes, listed %d", library.ErrChecksum, remote, n, e.Size)
	} else if err := v.check(); err != nil {
		bad = fmt.Errorf("%w: %s: %v", library.ErrChecksum, remote, err)
	}
	if bad == nil {
		return nil
	}
	if now, serr := r.dav.Stat(ctx, remote); serr == nil && changed(e, now) {
		return fmt.Errorf("%w: listed %s, now %s", errChanged, describe(e), describe(now))
	} else if errors.Is(serr, ErrNotFound) {
		return fmt.Errorf("%w: it vanished", errChanged)
	}
	return bad
}

const writebackStep = 8 << 20

type progressWriter struct {
	w  io.Writer
	wb *writeback
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.wb.wrote(n)
	return n, err
}

// changed compares a listing with a later one.
func changed(a, b Entry) bool {
	if a.ETag != "" && b.ETag != "" {
		return a.ETag != b.ETag
	}
	return a.Size != b.Size || !a.ModTime.Equal(b.ModTime)
}

func describe(e Entry) string {
	return fmt.Sprintf("etag %s, %d bytes, modified %s", e.ETag, e.Size, e.ModTime.UTC().Format(time.RFC3339))
}

// install links the verified temp file at local or, when a different file
// has that name, at the first free "name (n).ext". A file with the same
// content already at one of those names means the move is done (same =
// true) and the temp file is dropped. Nothing is ever overwritten.
func (r *userRun) install(t *staged, local string) (dest string, same bool, err error) {
	for i := 0; i <= maxCollisions; i++ {
		cand := collisionName(local, i)
		st, err := os.Lstat(cand)
		if err == nil {
			if st.Mode().IsRegular() && st.Size() == t.Size() {
				sha, err := t.SHA256()
				if err != nil {
					return cand, false, err
				}
				got, _, err := library.FileSHA256(cand)
				if err != nil {
					return cand, false, err
				}
				if got == sha {
					t.abort()
					return cand, true, nil
				}
			}
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return cand, false, fmt.Errorf("check %s: %w", cand, err)
		}
		switch err := t.link(cand); {
		case err == nil:
			return cand, false, nil
		case errors.Is(err, library.ErrExists):
			i-- // taken meanwhile: look at it again
		default:
			return cand, false, err
		}
	}
	return local, false, fmt.Errorf("%s and %d suffixed names are all taken by different files", local, maxCollisions)
}

const maxCollisions = 1000

// collisionName is p for n == 0, else "stem (n).ext".
func collisionName(p string, n int) string {
	if n == 0 {
		return p
	}
	dir, base := filepath.Split(p)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	if stem == "" {
		stem, ext = base, ""
	}
	return filepath.Join(dir, fmt.Sprintf("%s (%d)%s", stem, n, ext))
}

// findIdentical returns the first of local, "local (1)", … that has size
// and for which same says true, or "" when the first free name comes first.
func findIdentical(local string, size int64, same func(string) (bool, error)) (string, error) {
	for i := 0; i <= maxCollisions; i++ {
		cand := collisionName(local, i)
		st, err := os.Lstat(cand)
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("check %s: %w", cand, err)
		}
		if st.Mode().IsRegular() && st.Size() == size {
			ok, err := same(cand)
			if err != nil {
				return "", err
			}
			if ok {
				return cand, nil
			}
		}
	}
	return "", nil
}

// freeName is the name a new file would get (dry run).
func freeName(local string) (string, error) {
	for i := 0; i <= maxCollisions; i++ {
		cand := collisionName(local, i)
		if _, err := os.Lstat(cand); errors.Is(err, fs.ErrNotExist) {
			return cand, nil
		} else if err != nil {
			return "", fmt.Errorf("check %s: %w", cand, err)
		}
	}
	return "", fmt.Errorf("%s: all suffixed names taken", local)
}

// mkdirAll creates dir and missing parents with exactly mode (not masked
// by the umask).
func mkdirAll(dir string, mode fs.FileMode) error {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("create directory %s: a file has that name", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirAll(parent, mode); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, mode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return nil
}

// retry runs f until it succeeds, fails for good, or attempts run out. op
// names the operation, key the remote path, in the log.
func (r *userRun) retry(ctx context.Context, op, key string, f func(context.Context) error) error {
	backoff := r.s.cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		err := f(ctx)
		if err == nil || attempt >= r.s.cfg.Retries || !transient(err) || ctx.Err() != nil {
			return err
		}
		r.log.Warn().Err(err).Str("op", op).Str("key", key).Int("attempt", attempt+1).
			Str("pause", backoff.String()).Msg("transient error; retrying")
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff *= 2
	}
}

// transient reports whether trying again may help: network errors and
// HTTP 5xx, 408 and 429 — not auth, not found, not a changed file, not a
// checksum mismatch.
func transient(err error) bool {
	var se *StatusError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrAuth), errors.Is(err, ErrNotFound), errors.Is(err, ErrPrecondition), errors.Is(err, ErrNoCondition),
		errors.Is(err, errChanged), errors.Is(err, library.ErrChecksum):
		return false
	case errors.As(err, &se):
		return se.Code >= 500 || se.Code == http.StatusRequestTimeout || se.Code == http.StatusTooManyRequests
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && !isNetErr(err) {
		return false // local filesystem
	}
	return true
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "connection")
}
