// Package downloader is result-downloader's logic: bring DONE/<rel>-hevc.mp4
// home beside its original, verified, then remove the original.
//
// For each result: download to a temp file beside the original (checksum
// verified while reading and again against the recorded SHA-256) → check
// that it is a result of this very original (source size and SHA-256
// recorded at upload) and that its video matches the original (streams,
// duration, decodes) → fsync → link to <rel>-hevc.mp4 without ever
// replacing an existing file → mtime, mode (and owner, where allowed) as
// the original's → fsync the directory → delete the original → delete the
// DONE/ object → delete the message. Every step can be interrupted and run
// again: an installed file identical to the DONE/ object counts as done.
package downloader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/events"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/progress"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// Config tunes the downloader.
type Config struct {
	Root string
	// FileMode and DirMode of installed files; 0 keeps the original's mode.
	FileMode, DirMode int
	Reconcile         time.Duration
	Wait              time.Duration // long-poll wait
	// Concurrency is the number of results installed at once (<= 0: 1).
	Concurrency int
	// Hold is how long a message being worked on is kept invisible; it is
	// extended every Hold/2 (default 5 min).
	Hold time.Duration
	// RetryDelay is how soon a message whose result failed transiently is
	// delivered again (default 30 s).
	RetryDelay time.Duration
	// VerifyDecode is VerifyAlways or VerifyAuto (the default, also for "").
	VerifyDecode string
	// Once: Run installs what DONE/ holds once and returns (ONCE).
	Once bool
	// BufferedWrites writes downloads through the page cache only
	// (DIRECT_WRITES=false); by default whole blocks are written with
	// O_DIRECT where the file system allows it.
	BufferedWrites bool

	fileMode, dirMode string
}

// Bind registers the downloader's variables.
func (c *Config) Bind(s *config.Set) {
	s.String(&c.Root, "LIBRARY_ROOT", "", "library root directory", config.Required())
	s.Duration(&c.Reconcile, "RECONCILE_INTERVAL", 10*time.Minute, "how often DONE/ is listed in case events were lost (0: only at start)")
	s.Int(&c.Concurrency, "CONCURRENCY", 4, "results installed at once")
	c.Wait = 20 * time.Second
	s.Check(func() error {
		if c.Concurrency < 1 {
			return fmt.Errorf("CONCURRENCY must be at least 1, got %d", c.Concurrency)
		}
		if c.Reconcile < 0 {
			return fmt.Errorf("RECONCILE_INTERVAL must not be negative, got %s", c.Reconcile)
		}
		return nil
	})
	s.Bool(&c.Once, "ONCE", false, "install what DONE/ holds now, then exit (status 1 if anything was not installed); no queue needed")
	direct := true
	s.Bool(&direct, "DIRECT_WRITES", true, "write downloads to disk with O_DIRECT where the file system allows it (no copy through the page cache; the file is still fsynced before it is installed); false: through the page cache")
	s.Check(func() error { c.BufferedWrites = !direct; return nil })
	c.BindModes(s)
	c.BindVerify(s)
}

// Verification modes (VERIFY_DECODE).
const (
	// VerifyAlways decodes every result in full before its original goes.
	VerifyAlways = "always"
	// VerifyAuto skips that decode for results hevc-processor decoded
	// itself before storing them (see trustedResult), keeping the checks
	// of streams and duration.
	VerifyAuto = "auto"
)

// BindVerify registers VERIFY_DECODE, for commands that bind the other
// variables themselves.
func (c *Config) BindVerify(s *config.Set) {
	s.String(&c.VerifyDecode, "VERIFY_DECODE", VerifyAuto, "always: decode every result in full before deleting its original; "+
		"auto: skip that decode when the result's bytes match the SHA-256 hevc-processor recorded after decoding them itself (streams and duration are still compared)")
	s.Check(func() error {
		switch c.VerifyDecode {
		case VerifyAlways, VerifyAuto:
			return nil
		}
		return fmt.Errorf("VERIFY_DECODE must be always or auto, got %q", c.VerifyDecode)
	})
}

// BindModes registers FILE_MODE and DIR_MODE, for commands that bind the
// other variables themselves.
func (c *Config) BindModes(s *config.Set) {
	s.String(&c.fileMode, "FILE_MODE", "", "octal mode of installed files, e.g. 0644; empty keeps the original's")
	s.String(&c.dirMode, "DIR_MODE", "0755", "octal mode of directories created")
	s.Check(func() error {
		var err error
		if c.FileMode, err = parseMode("FILE_MODE", c.fileMode); err != nil {
			return err
		}
		c.DirMode, err = parseMode("DIR_MODE", c.dirMode)
		return err
	})
}

func parseMode(name, v string) (int, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(v, "0o"), 8, 32)
	if err != nil || n > 0o7777 {
		return 0, fmt.Errorf("%s: not an octal mode (e.g. 0644): %q", name, v)
	}
	return int(n), nil
}

// Outcome of one result.
type Outcome string

// Outcomes.
const (
	Installed Outcome = "installed" // new file in place, original and DONE/ removed
	Collision Outcome = "collision" // target name taken by a different file: nothing done
	Refused   Outcome = "refused"   // key outside the library rules
	Rejected  Outcome = "rejected"  // result failed verification: original kept
	Missing   Outcome = "gone"      // DONE/ object no longer exists
	busy      Outcome = "busy"      // being installed by another goroutine
)

// Crash points: Crash is called there (tests kill the process to check
// that a re-run converges).
const (
	CrashDownloaded      = "downloaded"       // verified temp file written, not yet renamed
	CrashInstalled       = "installed"        // renamed into place, original not yet deleted
	CrashOriginalRemoved = "original-removed" // original deleted, DONE/ object not yet deleted
)

// Result describes one handled DONE/ object.
type Result struct {
	Key, Path     string
	Outcome       Outcome
	Before, After int64 // bytes of the original and of the HEVC file
	// SHA256 of the DONE/ object (identifies the version of a result that
	// could not be installed).
	SHA256 string
	// Reason says why a result was refused, rejected or collided.
	Reason string
	Err    error
}

// Downloader installs results.
type Downloader struct {
	Store storage.Store
	Queue queue.Queue // results queue; nil: reconcile only
	Cfg   Config
	Log   zerolog.Logger
	// OnResult, if set, sees every handled object (from any goroutine).
	OnResult func(Result)
	// Progress, if set, shows each download.
	Progress *progress.Progress
	// Crash, if set, is called at each crash point.
	Crash func(point string)

	mu       sync.Mutex
	busy     map[string]bool
	rejected map[string]rejection // key → last rejection, to avoid re-downloading it
	reported map[string]string    // key → last problem logged at error level
	swept    map[string]time.Time // directory → last sweepTemps

	slotsOnce sync.Once
	xfer, fin chan struct{} // download and finishing slots (see ticket)
}

type rejection struct {
	sha, orig string
	origSize  int64
	origMtime time.Time
	reason    string
}

// Run reconciles, then consumes the results queue until ctx ends,
// reconciling again every Cfg.Reconcile.
func (d *Downloader) Run(ctx context.Context) error {
	if err := d.Reconcile(ctx); err != nil && ctx.Err() == nil {
		d.Log.Error().Err(err).Msg("reconcile")
	}
	last := time.Now()
	for ctx.Err() == nil {
		if d.Cfg.Reconcile > 0 && time.Since(last) >= d.Cfg.Reconcile {
			if err := d.Reconcile(ctx); err != nil && ctx.Err() == nil {
				d.Log.Error().Err(err).Msg("reconcile")
			}
			last = time.Now()
		}
		if d.Queue == nil {
			if d.Cfg.Reconcile <= 0 {
				<-ctx.Done()
				break
			}
			sleep(ctx, time.Until(last.Add(d.Cfg.Reconcile)))
			continue
		}
		wait := d.Cfg.Wait
		if wait <= 0 {
			wait = 20 * time.Second
		}
		if d.Cfg.Reconcile > 0 {
			wait = min(wait, max(time.Second, time.Until(last.Add(d.Cfg.Reconcile))))
		}
		msgs, err := d.Queue.Receive(ctx, 10, wait)
		if err != nil {
			if ctx.Err() == nil {
				d.Log.Error().Err(err).Msg("receive results")
				sleep(ctx, 5*time.Second)
			}
			continue
		}
		d.parallel(len(msgs), func(i int) { d.handleMessage(ctx, msgs[i]) })
	}
	return nil
}

// parallel runs fn(0..n-1) with at most twice Cfg.Concurrency at once:
// Install itself holds at most Concurrency downloads and Concurrency
// finishing results at a time (see ticket).
func (d *Downloader) parallel(n int, fn func(i int)) {
	sem := make(chan struct{}, 2*max(1, d.Cfg.Concurrency))
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

func (d *Downloader) handleMessage(ctx context.Context, m queue.Message) {
	recs, err := events.Parse(m.Body)
	if err != nil {
		d.Log.Error().Err(err).Str("message", m.ID).Msg("unreadable results message; deleted")
		if err := d.Queue.Delete(ctx, m.Receipt); err != nil {
			d.Log.Warn().Err(err).Msg("delete results message")
		}
		return
	}
	stop := d.hold(ctx, m.Receipt)
	retry := false
	for _, r := range recs {
		if !strings.HasPrefix(r.Key, library.DonePrefix) {
			d.Log.Warn().Str("key", r.Key).Msg("results message names a key outside DONE/; ignored")
			continue
		}
		if _, err := d.Install(ctx, r.Key); err != nil {
			retry = true
		}
	}
	stop()
	if ctx.Err() != nil {
		return // reappears after its visibility timeout; reconcile covers it too
	}
	if retry {
		delay := d.Cfg.RetryDelay
		if delay <= 0 {
			delay = 30 * time.Second
		}
		if err := d.Queue.ChangeVisibility(ctx, m.Receipt, delay); err != nil {
			d.Log.Debug().Err(err).Msg("schedule results message retry")
		}
		return
	}
	if err := d.Queue.Delete(context.WithoutCancel(ctx), m.Receipt); err != nil {
		d.Log.Warn().Err(err).Msg("delete results message")
	}
}

// hold keeps a message invisible while its result is installed (a large
// download and its verification can outlast the queue's visibility timeout).
func (d *Downloader) hold(ctx context.Context, receipt string) (stop func()) {
	hold := d.Cfg.Hold
	if hold <= 0 {
		hold = 5 * time.Minute
	}
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if err := d.Queue.ChangeVisibility(hctx, receipt, hold); err != nil && hctx.Err() == nil {
				d.Log.Debug().Err(err).Msg("extend results message visibility")
			}
			select {
			case <-hctx.Done():
				return
			case <-time.After(hold / 2):
			}
		}
	}()
	return func() { cancel(); <-done }
}

// Reconcile installs every object under DONE/.
func (d *Downloader) Reconcile(ctx context.Context) error {
	var keys []string
	if err := storage.Walk(ctx, d.Store, library.DonePrefix, func(o storage.Object) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		return fmt.Errorf("list %s: %w", library.DonePrefix, err)
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	// Results start in the listing's order: each waits for a download
	// slot before its goroutine starts (at most Concurrency downloading
	// and Concurrency finishing at once).
	for _, key := range keys {
		tk, err := d.transferSlot(ctx)
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := d.install(ctx, key, tk); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.Join(errs...)
}

// Busy is the number of results being installed right now.
func (d *Downloader) Busy() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.busy)
}

func (d *Downloader) acquire(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.busy == nil {
		d.busy = map[string]bool{}
	}
	if d.busy[key] {
		return false
	}
	d.busy[key] = true
	return true
}

func (d *Downloader) release(key string) {
	d.mu.Lock()
	delete(d.busy, key)
	d.mu.Unlock()
}

// ticket is one result's hold on the Downloader's limits: a download
// slot from its GET to the end of its download, then a finishing slot
// while it is verified, fsynced, linked, and its original and DONE/
// object deleted. Handing over at the end of the download lets the next
// result download during this one's fsyncs and deletes instead of after
// them. At most Cfg.Concurrency results download at once (the download
// buffers, Concurrency × the store's per-download memory, are held only
// then) and at most Cfg.Concurrency more finish; a result waits for a
// finishing slot before it gives up its download slot, so downloads slow
// down when the disk falls behind. Nothing about the order of the steps
// of one result changes.
type ticket struct {
	d                *Downloader
	transfer, finish bool
}

func (d *Downloader) slots() {
	d.slotsOnce.Do(func() {
		n := max(1, d.Cfg.Concurrency)
		d.xfer, d.fin = make(chan struct{}, n), make(chan struct{}, n)
	})
}

// transferSlot waits for a download slot.
func (d *Downloader) transferSlot(ctx context.Context) (*ticket, error) {
	d.slots()
	select {
	case d.xfer <- struct{}{}:
		return &ticket{d: d, transfer: true}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// handOver trades the download slot for a finishing slot; when ctx ends
// first, the result finishes on its download slot.
func (t *ticket) handOver(ctx context.Context) {
	if !t.transfer || t.finish {
		return
	}
	select {
	case t.d.fin <- struct{}{}:
	case <-ctx.Done():
		return
	}
	t.finish = true
	t.transfer = false
	<-t.d.xfer
}

func (t *ticket) release() {
	if t.transfer {
		<-t.d.xfer
	}
	if t.finish {
		<-t.d.fin
	}
	t.transfer, t.finish = false, false
}

func (d *Downloader) crash(point string) {
	if d.Crash != nil {
		d.Crash(point)
	}
}

// Install brings one DONE/ object home. It returns an error only for
// failures worth retrying (network, disk, a cancelled ctx); refusals,
// rejections and collisions are reported in the Result (Outcome, Reason),
// logged, and leave the original and the DONE/ object in place.
func (d *Downloader) Install(ctx context.Context, key string) (Result, error) {
	return d.install(ctx, key, nil)
}

// install is Install on a download slot the caller already holds (tk), or
// on one it waits for (tk nil).
func (d *Downloader) install(ctx context.Context, key string, tk *ticket) (res Result, err error) {
	if tk != nil {
		defer tk.release()
	}
	res.Key = key
	log := d.Log.With().Str("key", key).Logger()
	defer func() {
		res.Err = err
		if err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("install failed; will retry")
		}
		if d.OnResult != nil && res.Outcome != busy {
			d.OnResult(res)
		}
	}()
	refuse := func(e error) (Result, error) {
		res.Outcome, res.Reason = Refused, e.Error()
		d.logProblem(log, key, res.Reason).Err(e).Msg("refused: key would escape the library; nothing written")
		return res, nil
	}
	hevcRel, stem, err := library.RelsFromDone(key)
	if err != nil {
		return refuse(err)
	}
	target, err := library.Path(d.Cfg.Root, hevcRel)
	if err != nil {
		return refuse(err)
	}
	if err := d.inside(target); err != nil {
		return refuse(err)
	}
	res.Path = target
	log = log.With().Str("file", hevcRel).Logger()
	if !d.acquire(key) {
		res.Outcome = busy
		return res, nil
	}
	defer d.release(key)
	d.sweep(filepath.Dir(target), log)

	// A download slot for the GET and the download; handed over to a
	// finishing slot for the verification, fsync, install and deletes
	// (see ticket).
	if tk == nil {
		if tk, err = d.transferSlot(ctx); err != nil {
			return res, err
		}
		defer tk.release()
	}

	// One GET both describes the object (size, SHA-256, what it was made
	// from) and delivers it: no HEAD first. The S3 store requests further
	// ranges only at the first read, so the checks below that end here
	// cost one response, closed unread.
	start := time.Now()
	body, obj, err := d.Store.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		res.Outcome = Missing
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("get %s: %w", key, err)
	}
	closeBody := func() {
		if body != nil {
			body.Close()
			body = nil
		}
	}
	defer closeBody()
	res.After, res.SHA256 = obj.Size, obj.SHA256
	reject := func(reason string) (Result, error) {
		res.Outcome, res.Reason = Rejected, reason
		d.logProblem(log, key, reason).Str("reason", reason).Msg("not installed; original kept, result left in DONE/")
		return res, nil
	}
	if obj.SHA256 == "" {
		return reject("the object has no recorded SHA-256, so its download cannot be verified")
	}

	// The original's SHA-256 (a full read of a file as large as the
	// result) is checked while the result downloads, not before.
	orig, origInfo, unhashed, err := d.findOriginal(stem, obj)
	if err != nil {
		var mm mismatch
		if errors.As(err, &mm) {
			return reject(mm.Error())
		}
		return res, err
	}
	if orig != "" {
		res.Before = origInfo.Size()
		log = log.With().Str("original", filepath.Base(orig)).Logger()
	}

	if fi, err := os.Lstat(target); err == nil {
		closeBody()
		tk.handOver(ctx)
		if unhashed {
			if err := confirmOriginal(ctx, orig, obj); err != nil {
				var mm mismatch
				if errors.As(err, &mm) {
					return reject(mm.Error())
				}
				return res, err
			}
		}
		return d.resume(ctx, key, target, fi, obj, orig, origInfo, res, log)
	} else if !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("check %s: %w", target, err)
	}

	if r, ok := d.knownRejection(key, obj, orig, origInfo); ok {
		log.Debug().Msg("rejected before; not downloading again")
		res.Outcome, res.Reason = Rejected, r
		return res, nil
	}
	remember := func(reason string) (Result, error) {
		d.rememberRejection(key, obj, orig, origInfo, reason)
		return reject(reason)
	}

	chk := d.checkFor(obj, orig)
	var origProbe media.Info
	if orig != "" {
		if origProbe, err = chk.probe(ctx, orig); err != nil {
			if errors.Is(err, media.ErrBadInput) {
				return remember("the original does not probe, so the result cannot be compared with it: " + err.Error())
			}
			return res, fmt.Errorf("probe original %s: %w", orig, err)
		}
	}

	var confirmed chan error
	if unhashed {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel() // an early return stops the hashing
		confirmed = make(chan error, 1)
		go func() { confirmed <- confirmOriginal(cctx, orig, obj) }()
	}

	tmp, err := newTemp(target, os.FileMode(d.Cfg.DirMode), !d.Cfg.BufferedWrites)
	if err != nil {
		return res, err
	}
	defer tmp.abort()
	tr := d.Progress.Start(hevcRel, obj.Size)
	if wa, ok := body.(writerToAt); ok && tmp.parallel() {
		// Ranges are written where they belong as they arrive, with
		// O_DIRECT, while the reader checks the SHA-256 in order.
		_, err = wa.WriteToAt(countAt{tmp, tr})
		tmp.endParallel()
	} else {
		// Counting on the writer's side keeps the reader's WriteTo: whole
		// parts reach tmp in one write each, from their own (aligned)
		// buffers.
		_, err = io.Copy(tr.Writer(tmp), body)
	}
	closeBody()
	tr.Done(err != nil)
	if errors.Is(err, storage.ErrChecksum) {
		return remember("download does not match its recorded checksum: " + err.Error())
	}
	if err != nil {
		return res, fmt.Errorf("download %s: %w", key, err)
	}
	// The reader verified every byte against the SHA-256 recorded in the
	// metadata examined above: it came with the same response (further
	// ranges are pinned to its ETag).
	if tmp.n != obj.Size {
		return remember(fmt.Sprintf("download does not match its recorded size: %d bytes, recorded %d", tmp.n, obj.Size))
	}
	downloaded := time.Now()
	// The download's buffers are free: let the next result download while
	// this one is verified, fsynced, installed and its original deleted.
	tk.handOver(ctx)
	// No fsync yet: commit fsyncs once, after setting mode and mtime, and
	// before the link that makes the file visible.
	if orig != "" {
		if _, err := chk.verify(ctx, origProbe, tmp.name()); err != nil {
			if errors.Is(err, media.ErrVerify) || errors.Is(err, media.ErrBadInput) {
				return remember("result does not match its original: " + strings.ReplaceAll(err.Error(), tmp.name(), hevcRel))
			}
			return res, fmt.Errorf("verify %s: %w", key, err)
		}
	} else if reason, err := verifyAlone(ctx, chk, tmp.name(), obj); err != nil {
		return res, fmt.Errorf("verify %s: %w", key, err)
	} else if reason != "" {
		return remember(reason)
	}
	if confirmed != nil {
		if err := <-confirmed; err != nil {
			var mm mismatch
			if errors.As(err, &mm) {
				return remember(mm.Error())
			}
			return res, err
		}
	}
	d.crash(CrashDownloaded)
	verified := time.Now()

	mode := os.FileMode(d.Cfg.FileMode)
	var mtime time.Time
	uid, gid := -1, -1
	if orig != "" {
		mtime = origInfo.ModTime()
		if mode == 0 {
			mode = origInfo.Mode().Perm()
		}
		if st, ok := origInfo.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	} else if t, perr := time.Parse(time.RFC3339Nano, obj.Metadata[storage.MetaSourceMtime]); perr == nil {
		mtime = t
	}
	if mode == 0 {
		mode = 0o644
	}
	if err := tmp.commit(target, mode, mtime, uid, gid); err != nil {
		if errors.Is(err, library.ErrExists) {
			// Someone (another downloader?) installed it meanwhile.
			if fi, lerr := os.Lstat(target); lerr == nil {
				tmp.abort()
				return d.resume(ctx, key, target, fi, obj, orig, origInfo, res, log)
			}
		}
		return res, err
	}
	secs := time.Since(start).Seconds()
	log.Info().Int64("bytes", obj.Size).Int64("original_bytes", res.Before).
		Float64("MBps", float64(obj.Size)/1e6/max(secs, 1e-6)).
		Dur("download", downloaded.Sub(start)).Dur("verify", verified.Sub(downloaded)).Dur("commit", time.Since(verified)).
		Msg("installed")
	d.crash(CrashInstalled)
	return d.cleanup(ctx, key, orig, res, log)
}

// writerToAt is a download that can write its ranges in parallel at their
// offsets (the S3 store's ranged GET), verifying them in order.
type writerToAt interface {
	WriteToAt(w io.WriterAt) (int64, error)
}

// countAt counts what is written through it for the progress display.
type countAt struct {
	w  io.WriterAt
	tr *progress.Transfer
}

func (c countAt) WriteAt(p []byte, off int64) (int, error) {
	n, err := c.w.WriteAt(p, off)
	c.tr.Add(int64(n))
	return n, err
}

// resume handles a target that exists: our own install of an earlier,
// interrupted run (byte-identical to the DONE/ object: verify it against
// the original again, then clean up), or a different file (a collision).
func (d *Downloader) resume(ctx context.Context, key, target string, fi os.FileInfo, obj storage.Object, orig string, origInfo os.FileInfo, res Result, log zerolog.Logger) (Result, error) {
	collide := func(why string) (Result, error) {
		res.Outcome = Collision
		res.Reason = fmt.Sprintf("%s already exists and %s; the result stays in %s and the original is kept", target, why, key)
		d.logProblem(log, key, res.Reason).Str("existing", target).Str("why", why).Msg("not installed: the name is taken by a different file; resolve by hand")
		return res, nil
	}
	if !fi.Mode().IsRegular() {
		return collide("is not a regular file")
	}
	if fi.Size() != obj.Size {
		return collide(fmt.Sprintf("has %d bytes, the result %d", fi.Size(), obj.Size))
	}
	sha, _, err := library.FileSHA256(target)
	if err != nil {
		return res, fmt.Errorf("hash %s: %w", target, err)
	}
	if !strings.EqualFold(sha, obj.SHA256) {
		return collide("has different content")
	}
	if orig != "" {
		// Verified before it was renamed, but the original is about to be
		// deleted: check once more, this time against the file in place.
		chk := d.checkFor(obj, orig)
		in, err := chk.probe(ctx, orig)
		if err != nil && !errors.Is(err, media.ErrBadInput) {
			return res, fmt.Errorf("probe original %s: %w", orig, err)
		}
		if err != nil {
			res.Outcome, res.Reason = Rejected, "the original does not probe, so the installed copy cannot be compared with it: "+err.Error()
		} else if _, err := chk.verify(ctx, in, target); err != nil {
			if !errors.Is(err, media.ErrVerify) && !errors.Is(err, media.ErrBadInput) {
				return res, fmt.Errorf("verify %s: %w", target, err)
			}
			res.Outcome, res.Reason = Rejected, "the installed copy does not match its original: "+err.Error()
		}
		if res.Outcome == Rejected {
			d.logProblem(log, key, res.Reason).Str("reason", res.Reason).Msg("not finishing: original kept beside the copy; resolve by hand")
			return res, nil
		}
	}
	log.Info().Msg("already installed by an earlier run; finishing cleanup")
	return d.cleanup(ctx, key, orig, res, log)
}

// cleanup runs once the verified result is durably in place: the original
// goes first, then the DONE/ object.
func (d *Downloader) cleanup(ctx context.Context, key, orig string, res Result, log zerolog.Logger) (Result, error) {
	if orig != "" {
		if err := os.Remove(orig); err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("remove original %s: %w", orig, err)
		}
		if err := library.SyncDir(filepath.Dir(orig)); err != nil {
			return res, err
		}
		log.Info().Msg("original removed")
		d.crash(CrashOriginalRemoved)
	}
	if err := d.Store.Delete(ctx, key); err != nil {
		return res, fmt.Errorf("delete %s: %w", key, err)
	}
	d.mu.Lock()
	delete(d.rejected, key)
	delete(d.reported, key)
	d.mu.Unlock()
	res.Outcome = Installed
	return res, nil
}

// inside checks that target's directory, symbolic links resolved, is in
// the library (a directory symlinked elsewhere must not carry a write out).
func (d *Downloader) inside(target string) error {
	root, err := filepath.EvalSymlinks(d.Cfg.Root)
	if err != nil {
		return fmt.Errorf("library root %s: %w", d.Cfg.Root, err)
	}
	dir := filepath.Dir(target)
	for {
		if _, err := os.Lstat(dir); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", dir, err)
	}
	rel, err := filepath.Rel(root, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return fmt.Errorf("%w: %s resolves to %s, outside the library %s", library.ErrUnsafe, filepath.Dir(target), real, root)
	}
	return nil
}

// mismatch means the originals present are not the source of the result.
type mismatch struct{ msg, detail string }

func (m mismatch) Error() string { return m.msg }

// findOriginal looks for <stem>.mp4 in any case of the extension (cameras
// write .MP4) and, when the result records its source's size and SHA-256,
// returns only an original that has them. No candidate at all is not an
// error (the original was removed by an earlier, interrupted run, or by
// hand); candidates that are all different files are a mismatch.
//
// A single candidate of the right size is returned without reading it
// (unhashed true): the caller must confirmOriginal it before anything is
// installed or deleted. Several are hashed here to pick the right one.
func (d *Downloader) findOriginal(stem string, obj storage.Object) (path string, fi os.FileInfo, unhashed bool, err error) {
	p, err := library.Path(d.Cfg.Root, stem+".mp4")
	if err != nil {
		return "", nil, false, nil
	}
	dir, base := filepath.Dir(p), filepath.Base(p)
	base = base[:len(base)-len(".mp4")]
	wantSize, sizeErr := strconv.ParseInt(obj.Metadata[storage.MetaSourceSize], 10, 64)
	wantSHA := obj.Metadata[storage.MetaSourceSHA]
	// Every spelling of the extension, in the order a directory listing
	// sorts them; four lstats instead of reading a directory that may hold
	// thousands of files, once per result.
	type cand struct {
		path string
		fi   os.FileInfo
	}
	var cands []cand
	for _, ext := range []string{".MP4", ".Mp4", ".mP4", ".mp4"} {
		full := filepath.Join(dir, base+ext)
		fi, err := os.Lstat(full)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			continue
		}
		if err != nil {
			return "", nil, false, fmt.Errorf("stat %s: %w", full, err)
		}
		if fi.Mode().IsRegular() {
			cands = append(cands, cand{full, fi})
		}
	}
	var why []string
	var sized []cand
	for _, c := range cands {
		if sizeErr == nil && c.fi.Size() != wantSize {
			why = append(why, fmt.Sprintf("%s has %d bytes, the result was made from %d", filepath.Base(c.path), c.fi.Size(), wantSize))
			continue
		}
		sized = append(sized, c)
	}
	if wantSHA != "" && len(sized) == 1 {
		return sized[0].path, sized[0].fi, true, nil
	}
	for _, c := range sized {
		if wantSHA != "" {
			if err := confirmOriginal(context.Background(), c.path, obj); err != nil {
				var mm mismatch
				if !errors.As(err, &mm) {
					return "", nil, false, err
				}
				why = append(why, mm.detail)
				continue
			}
		}
		return c.path, c.fi, false, nil
	}
	if len(why) > 0 {
		return "", nil, false, differentVersion(why)
	}
	return "", nil, false, nil
}

func differentVersion(why []string) mismatch {
	return mismatch{msg: "the result was made from a different version of the original (" + strings.Join(why, "; ") + ")"}
}

// confirmOriginal checks that the original at p has the SHA-256 the result
// records for its source; a different file is a mismatch.
func confirmOriginal(ctx context.Context, p string, obj storage.Object) error {
	want := obj.Metadata[storage.MetaSourceSHA]
	if want == "" {
		return nil
	}
	sha, err := fileSHA256(ctx, p)
	if err != nil {
		return err
	}
	if !strings.EqualFold(sha, want) {
		detail := fmt.Sprintf("%s has sha256 %s, the result was made from %s", filepath.Base(p), sha, want)
		return mismatch{msg: differentVersion([]string{detail}).msg, detail: detail}
	}
	return nil
}

// fileSHA256 hashes a file, stopping early when ctx ends.
func fileSHA256(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("hash %s: %w", p, err)
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", p, err)
		}
	}
}

// sweepEvery is how often a directory is searched for temp files left by
// killed runs: once per result would read a directory of n files n times.
const sweepEvery = time.Minute

// sweep runs sweepTemps on dir unless it did so within sweepEvery.
func (d *Downloader) sweep(dir string, log zerolog.Logger) {
	d.mu.Lock()
	if d.swept == nil {
		d.swept = map[string]time.Time{}
	}
	if last, ok := d.swept[dir]; ok && time.Since(last) < sweepEvery {
		d.mu.Unlock()
		return
	}
	d.swept[dir] = time.Now()
	d.mu.Unlock()
	sweepTemps(dir, log)
}

// check is how a result is compared with its original.
type check struct {
	probe  func(ctx context.Context, path string) (media.Info, error)
	verify func(ctx context.Context, in media.Info, output string) (media.Info, error)
}

var (
	// fullCheck probes with ffprobe and decodes the whole result.
	fullCheck = check{probe: media.Probe, verify: media.Verify}
	// streamsCheck reads both files' boxes and compares streams and
	// durations; no decode.
	streamsCheck = check{probe: media.ProbeFast, verify: media.VerifyStreams}
)

// checkFor picks the check for obj: the full one, unless VERIFY_DECODE is
// auto and the result is one hevc-processor decoded itself.
func (d *Downloader) checkFor(obj storage.Object, orig string) check {
	if d.Cfg.VerifyDecode != VerifyAlways && trustedResult(obj, orig) {
		return streamsCheck
	}
	return fullCheck
}

// trustedResult reports whether hevc-processor already decoded exactly
// these bytes in full. The processor commits a DONE/ object only after its
// verification of that output passed: the same streams and duration as
// its input, and every video and audio packet decoded without an error.
// It stores the object with the output's SHA-256 (sha256, checked by the
// store on upload) and the input's duration (duration). The downloader
// checks the SHA-256 on every byte it receives, so when both records are
// there a second decode here would decode identical bytes again: it costs
// as much CPU as the processor's and cannot find anything new. The
// processor compared the output with the TODO/ object whose SHA-256 it
// recorded as source-sha256, which confirmOriginal matches against this
// original. An object without these records (not written by our
// processor) is decoded in full. The streams and the duration are compared
// with the original either way (streamsCheck), which costs no decode.
func trustedResult(obj storage.Object, orig string) bool {
	if obj.SHA256 == "" {
		return false
	}
	if d, err := strconv.ParseFloat(obj.Metadata[storage.MetaDuration], 64); err != nil || d <= 0 {
		return false
	}
	return orig == "" || obj.Metadata[storage.MetaSourceSHA] != ""
}

// verifyAlone checks a result whose original is gone: it must be a
// decodable HEVC video and, when the processor recorded the input's
// duration, last as long. It returns a reason to reject, or an error
// worth retrying.
func verifyAlone(ctx context.Context, chk check, p string, obj storage.Object) (string, error) {
	info, err := chk.probe(ctx, p)
	if errors.Is(err, media.ErrBadInput) {
		return "result is not a readable video: " + err.Error(), nil
	}
	if err != nil {
		return "", err
	}
	if !info.IsHEVC() {
		v, _ := info.MainVideo()
		return fmt.Sprintf("result is %s, not HEVC", v.Codec), nil
	}
	if want, err := strconv.ParseFloat(obj.Metadata[storage.MetaDuration], 64); err == nil && want > 0 {
		if diff, tol := math.Abs(info.Duration-want), math.Max(0.5, 0.01*want); diff > tol {
			return fmt.Sprintf("result lasts %.2fs, its input lasted %.2fs", info.Duration, want), nil
		}
	}
	return "", nil
}

// logProblem logs a result that cannot be installed at error level the
// first time (and whenever the reason changes), at debug level when it is
// met again on every reconcile.
func (d *Downloader) logProblem(log zerolog.Logger, key, reason string) *zerolog.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reported == nil {
		d.reported = map[string]string{}
	}
	if d.reported[key] == reason {
		return log.Debug()
	}
	d.reported[key] = reason
	return log.Error()
}

func (d *Downloader) knownRejection(key string, obj storage.Object, orig string, fi os.FileInfo) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.rejected[key]
	if !ok || r.sha != obj.SHA256 || r.orig != orig {
		return "", false
	}
	if fi != nil && (fi.Size() != r.origSize || !fi.ModTime().Equal(r.origMtime)) {
		return "", false
	}
	return r.reason, true
}

func (d *Downloader) rememberRejection(key string, obj storage.Object, orig string, fi os.FileInfo, reason string) {
	r := rejection{sha: obj.SHA256, orig: orig, reason: reason}
	if fi != nil {
		r.origSize, r.origMtime = fi.Size(), fi.ModTime()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rejected == nil {
		d.rejected = map[string]rejection{}
	}
	d.rejected[key] = r
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
