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
	"github.com/hevc-encoder/hevc-encoder/pkg/history"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/notify"
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
	// Originals is OriginalsTrash ("" too), OriginalsDelete or
	// OriginalsKeep (ORIGINALS); TrashDays how long the trash keeps one
	// (TRASH_DAYS, <= 0: DefaultTrashDays).
	Originals string
	TrashDays int

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
	c.BindOriginals(s)
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
	// CrashRetiring: installed, right before the original's identity is
	// checked for its removal (tests change the original here).
	CrashRetiring = "retiring"
)

// Result describes one handled DONE/ object.
type Result struct {
	Key, Path     string
	Outcome       Outcome
	Before, After int64 // bytes of the original and of the HEVC file
	// Downloaded is the bytes of the result downloaded this time
	// (whatever the outcome; 0 when nothing was).
	Downloaded int64
	// SHA256 of the DONE/ object (identifies the version of a result that
	// could not be installed).
	SHA256 string
	// Reason says why a result was refused, rejected or collided, or why
	// the original of an installed result was kept.
	Reason string
	// OriginalKept: installed, but the original changed since it was
	// encoded (a newer version), so it was not removed.
	OriginalKept bool
	// Trashed is where the original went (ORIGINALS=trash); "" when it
	// was removed, kept, or already gone.
	Trashed string
	Err     error
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
	// Now, if set, is the clock of the trash (when an original was
	// trashed, and which are old enough to go).
	Now func() time.Time
	// History records every finished file (history.go); nil: the
	// library's own, <root>/.hevc-encoder/history.jsonl.
	History *history.Log
	// Notify, if set, is told of each result not installed and each job
	// that failed, once (see notify.go).
	Notify *notify.Notifier

	mu       sync.Mutex
	busy     map[string]bool
	rejected map[string]rejection // key → last rejection, to avoid re-downloading it
	reported map[string]string    // key → last problem logged at error level
	temps    *library.Temps       // records of our temp files (see tempFiles)
	purged   time.Time            // last purge of the trash (originals.go)
	failed   map[string]string    // FAILED/ key → version already in the history (history.go)

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
		d.purgeTrash() // also with RECONCILE_INTERVAL=0 (at most hourly)
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
	d.Log.Debug().Str("message", m.ID).Int("receive_count", m.ReceiveCount).Int("records", len(recs)).Msg("results message received")
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
	if ctx.Err() != nil && retry {
		// Stopped mid-install (a `process` run ending, a restart): hand
		// the message back at once, not after the hold's 5 minutes, so
		// that the next downloader takes it now.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := d.Queue.ChangeVisibility(bctx, m.Receipt, 0); err != nil {
			d.Log.Debug().Err(err).Msg("hand back results message")
		}
		return
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
		return
	}
	d.Log.Debug().Str("message", m.ID).Msg("results message deleted")
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

// Reconcile removes temp files left by killed runs and originals whose
// time in the trash is over, then installs every object under DONE/,
// then adds new FAILED/ records to the history (history.go).
func (d *Downloader) Reconcile(ctx context.Context) error {
	d.sweep()
	d.purgeTrash()
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
	d.recordFailures(ctx)
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

// findOriginal looks for the original the result was made from (ref.Orig:
// DONE/a-hevc.mp4 is a.mp4's, DONE/a-hevc-MP4.mp4 is a.MP4's) and, when the
// result records its source's size and SHA-256, returns it only if it has
// them. A DONE/<x>-hevc.mp4 named before spellings were told apart may be
// the result of x.MP4 (ref.Legacy): that counts only when x.mp4 does not
// exist and exactly one other spelling does. When x.mp4 and another
// spelling both exist, the result must match x.mp4 by SHA-256, or it is
// left in DONE/ and reported: never installed over a different original.
// No candidate at all is not an error (the original was removed by an
// earlier, interrupted run, or by hand); a different file is a mismatch.
//
// A candidate of the right size is returned without reading it (unhashed
// true): the caller must confirmOriginal it before anything is installed
// or deleted.
func (d *Downloader) findOriginal(ref library.Done, obj storage.Object) (path string, fi os.FileInfo, unhashed bool, err error) {
	wantSize, sizeErr := strconv.ParseInt(obj.Metadata[storage.MetaSourceSize], 10, 64)
	wantSHA := obj.Metadata[storage.MetaSourceSHA]
	type cand struct {
		path string
		fi   os.FileInfo
	}
	// One lstat per spelling instead of reading a directory that may hold
	// thousands of files, once per result.
	lookup := func(rel string) (*cand, error) {
		p, err := library.Path(d.Cfg.Root, rel)
		if err != nil {
			return nil, nil
		}
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", p, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, nil
		}
		return &cand{p, fi}, nil
	}
	own, err := lookup(ref.Orig)
	if err != nil {
		return "", nil, false, err
	}
	var legacy []cand
	for _, rel := range ref.Legacy {
		c, err := lookup(rel)
		if err != nil {
			return "", nil, false, err
		}
		if c != nil {
			legacy = append(legacy, *c)
		}
	}
	names := func(cs []cand) string {
		var n []string
		for _, c := range cs {
			n = append(n, filepath.Base(c.path))
		}
		return strings.Join(n, " and ")
	}
	var c cand
	switch {
	case own != nil:
		c = *own
	case len(legacy) == 1:
		c = legacy[0]
	case len(legacy) > 1:
		return "", nil, false, mismatch{msg: fmt.Sprintf("the result is named as before spellings of .mp4 were told apart, and %s exist: which one it was made from cannot be told, so none of them is replaced", names(legacy))}
	default:
		return "", nil, false, nil
	}
	// a.mp4 and a.MP4 side by side: the key names a.mp4, but an older
	// result of a.MP4 had the same key. Only the recorded SHA-256 tells
	// them apart.
	both := own != nil && len(legacy) > 0
	note := ""
	if both {
		note = fmt.Sprintf("; it may be the result of %s, named before spellings of .mp4 were told apart", names(legacy))
	}
	if sizeErr == nil && c.fi.Size() != wantSize {
		mm := differentVersion([]string{fmt.Sprintf("%s has %d bytes, the result was made from %d", filepath.Base(c.path), c.fi.Size(), wantSize)})
		mm.msg += note
		return "", nil, false, mm
	}
	if both {
		if wantSHA == "" {
			return "", nil, false, mismatch{msg: fmt.Sprintf("%s and %s both exist and the result records no SHA-256 of its source, so which one it was made from cannot be told", filepath.Base(own.path), names(legacy))}
		}
		if err := confirmOriginal(context.Background(), own.path, obj); err != nil {
			var mm mismatch
			if errors.As(err, &mm) {
				return "", nil, false, mismatch{msg: mm.msg + note, detail: mm.detail}
			}
			return "", nil, false, err
		}
		return own.path, own.fi, false, nil
	}
	return c.path, c.fi, wantSHA != "", nil
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

// tempOwner names the downloader's temp files and records
// (<library>/.hevc-encoder/temps/dl-<token>).
const tempOwner = "dl"

// tempFiles opens the records of this service's temp files in the
// library's state directory, once.
func (d *Downloader) tempFiles() (*library.Temps, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.temps == nil {
		t, err := library.OpenTemps(library.StateDir(d.Cfg.Root), tempOwner, os.FileMode(d.Cfg.DirMode))
		if err != nil {
			return nil, err
		}
		d.temps = t
	}
	return d.temps, nil
}

// sweep removes the temp files of downloads that a killed run left:
// only files this service recorded creating and no live process holds
// (another downloader's, or `process`, are skipped), never a user's file
// of a similar name nor another service's temp file.
func (d *Downloader) sweep() {
	temps, err := d.tempFiles()
	if err == nil {
		err = temps.Sweep(func(p string) {
			d.Log.Info().Str("temp", p).Msg("removed a partial download left by an interrupted run")
		})
	}
	if err != nil {
		d.Log.Warn().Err(err).Msg("sweep temp files of interrupted runs")
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
