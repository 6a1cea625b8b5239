// Package process is `result-downloader process`: upload the library once
// (pkg/upload, s3-uploader's logic), then bring results home (result-downloader's
// logic) until TODO/ and DONE/ are drained or a timeout passes, showing
// queued / processing / done / failed as it goes.
package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/progress"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/pkg/upload"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/downloader"
)

// Options configure Run.
type Options struct {
	Store storage.Store
	// Work is the work queue, optional: its in-flight messages are the jobs
	// being processed (without it everything in TODO/ counts as queued),
	// and its dead-letter queue tells when waiting is pointless.
	Work queue.Queue
	// Uploader runs once first; nil skips the upload (--skip-upload).
	Uploader *upload.Uploader
	// Downloader installs results; its Cfg.Reconcile is set to Poll.
	Downloader *downloader.Downloader
	// Poll is how often TODO/, DONE/ and FAILED/ are listed (default 30 s).
	Poll time.Duration
	// Timeout ends the wait (0: no limit).
	Timeout time.Duration
	// StallAfter: when nothing has moved for this long, say what is stuck
	// and why, and again every StallAfter while it stays so (default 5 min).
	StallAfter time.Duration
	Progress   *progress.Progress
	Log        zerolog.Logger
}

// Report is what a run did and what is left.
type Report struct {
	Upload    *upload.Summary
	UploadErr error
	DryRun    bool

	Installed               int
	BytesBefore, BytesAfter int64
	// Failed lists "<key>: <reason>" for results that were not installed
	// and jobs that failed (new FAILED/ records) during this run.
	Failed []string
	// Kept lists originals kept because HEVC was not smaller.
	Kept []string

	// Unsettled lists files uploaded in this run that ended neither
	// installed nor in FAILED/ ("<TODO/ key>: where it is").
	Unsettled []string
	// Stuck is the last "nothing moved" diagnosis, "" if none was made.
	Stuck string

	// Left at the end (after a timeout or an interruption).
	Queued, Processing, Waiting int
	Stalled                     string // why waiting longer would not help
	TimedOut, Interrupted       bool
	Wall                        time.Duration
}

// OK reports whether everything succeeded.
func (r Report) OK() bool {
	return r.UploadErr == nil && len(r.Failed) == 0 && len(r.Unsettled) == 0 && !r.TimedOut && !r.Interrupted && r.Stalled == ""
}

// tracker collects results and job outcomes.
type tracker struct {
	mu           sync.Mutex
	installed    int
	before       int64
	after        int64
	stuck        map[string]stuckResult // DONE/ key → why it is not installed
	failedJobs   map[string]string      // FAILED/ key → reason
	kept         map[string]string
	seenFailed   map[string]string // FAILED/ key → "size/modified" already read
	startFailed  map[string]string // FAILED/ at the start
	uploadFailed int
	uploaded     []string        // TODO/ keys uploaded in this run
	installedKey map[string]bool // DONE/ keys installed in this run
}

type stuckResult struct {
	size   int64
	reason string
}

func (t *tracker) onResult(r downloader.Result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch r.Outcome {
	case downloader.Installed:
		t.installed++
		t.installedKey[r.Key] = true
		t.before += r.Before
		t.after += r.After
		delete(t.stuck, r.Key)
	case downloader.Collision, downloader.Rejected, downloader.Refused:
		size := r.After
		if r.Outcome == downloader.Refused {
			size = -1 // never looked at: any version of the key stays refused
		}
		t.stuck[r.Key] = stuckResult{size: size, reason: fmt.Sprintf("not installed (%s): %s", r.Outcome, r.Reason)}
	case downloader.Missing:
		delete(t.stuck, r.Key)
	}
}

// Run uploads (unless o.Uploader is nil), then installs results until
// TODO/ and DONE/ hold nothing that can still change, ctx ends or o.Timeout
// passes. The error is non-nil when anything failed or is left.
func Run(ctx context.Context, o Options) (Report, error) {
	start := time.Now()
	rep := Report{}
	if o.Poll <= 0 {
		o.Poll = 30 * time.Second
	}
	if o.StallAfter <= 0 {
		o.StallAfter = 5 * time.Minute
	}
	t := &tracker{stuck: map[string]stuckResult{}, failedJobs: map[string]string{}, kept: map[string]string{}, seenFailed: map[string]string{}, installedKey: map[string]bool{}}
	var err error
	if t.startFailed, err = listVersions(ctx, o.Store, library.FailedPrefix); err != nil {
		return rep, err
	}
	if o.Uploader != nil {
		err := runUpload(ctx, o, t, &rep)
		if ctx.Err() != nil {
			rep.Interrupted, rep.Wall = true, time.Since(start)
			return rep, ctx.Err()
		}
		if rep.DryRun {
			rep.Wall = time.Since(start)
			return rep, err
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.Timeout > 0 {
		var c2 context.CancelFunc
		runCtx, c2 = context.WithTimeout(runCtx, o.Timeout)
		defer c2()
	}
	d := o.Downloader
	prev := d.OnResult
	d.OnResult = func(r downloader.Result) {
		t.onResult(r)
		if prev != nil {
			prev(r)
		}
	}
	d.Cfg.Reconcile = o.Poll
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.Run(runCtx) }()
	st := wait(runCtx, o, t, &rep)
	timedOut := ctx.Err() == nil && runCtx.Err() != nil
	cancel()
	wg.Wait()
	if ctx.Err() == nil {
		// FAILED/ records written since the downloader's last reconcile
		// reach the history, and NOTIFY_URL, now rather than next run.
		if _, err := d.RecordFailures(context.WithoutCancel(ctx)); err != nil {
			o.Log.Warn().Err(err).Msg("history: FAILED/ records not all recorded")
		}
		// One last look so the report counts the final state.
		if s, err := look(context.WithoutCancel(ctx), o, t); err == nil {
			st = s
		}
	}
	err = report(ctx, o, t, st, timedOut, &rep)
	rep.Wall = time.Since(start)
	return rep, err
}

// runUpload runs the Uploader, recording what it queues in t, and returns its
// error.
func runUpload(ctx context.Context, o Options, t *tracker, rep *Report) error {
	o.Progress.SetStatus("uploading", 0, 0, nil)
	prevUp := o.Uploader.OnUpload
	o.Uploader.OnUpload = func(key string) {
		t.mu.Lock()
		t.uploaded = append(t.uploaded, key)
		t.mu.Unlock()
		if prevUp != nil {
			prevUp(key)
		}
	}
	sum, err := o.Uploader.Run(ctx)
	o.Uploader.OnUpload = prevUp
	rep.Upload, rep.UploadErr, rep.DryRun = &sum, err, o.Uploader.Cfg.DryRun
	t.uploadFailed = sum.Failed
	o.Log.Info().Str("summary", sum.String()).Msg("upload finished")
	return err
}

// wait looks at the bucket and queues every Poll, with progress, until
// everything is drained (two idle looks in a row), a stall is certain, or
// runCtx ends; it says when nothing has moved for StallAfter, and returns
// the last state seen.
func wait(runCtx context.Context, o Options, t *tracker, rep *Report) state {
	d := o.Downloader
	var st state
	idle := false
	// Nothing moved since lastMove: said at most every StallAfter.
	var moved string
	lastMove, lastSaid := time.Now(), time.Time{}
	for {
		next := o.Poll
		s, err := look(runCtx, o, t)
		if err == nil {
			st = s
			o.Progress.SetStatus(st.text(), int64(st.done), int64(st.total()), st.fields())
			if sig := st.signature(d.Busy()); sig != moved || d.Busy() > 0 {
				moved, lastMove = sig, time.Now()
			} else if still := time.Since(lastMove); still >= o.StallAfter && time.Since(lastSaid) >= o.StallAfter && !st.drained() {
				lastSaid = time.Now()
				rep.Stuck = st.stuck(o.Work != nil)
				ev := o.Log.Warn()
				if st.processing > 0 {
					ev = o.Log.Info() // encodes of large files take long
				}
				ev.Dur("still_for", still.Round(time.Second)).Int("todo", st.todo).Int("queued", st.visible).
					Int("running", st.processing).Int("waiting", st.waiting).Int("failed", st.failed).
					Msg("nothing moved: " + rep.Stuck)
			}
			if st.drained() && d.Busy() == 0 {
				if idle {
					return st // two idle looks in a row
				}
				idle, next = true, min(o.Poll, time.Second)
			} else {
				idle = false
			}
			if st.stalled != "" && st.waiting == 0 && d.Busy() == 0 {
				rep.Stalled = st.stalled
				return st
			}
		} else if runCtx.Err() == nil {
			o.Log.Warn().Err(err).Msg("listing the bucket failed; retrying")
		}
		select {
		case <-runCtx.Done():
			return st
		case <-time.After(next):
		}
	}
}

// report fills rep from t and the final state st, and returns the run's
// error: failures, unsettled uploads, an interruption, a time-out or a
// stall.
func report(ctx context.Context, o Options, t *tracker, st state, timedOut bool, rep *Report) error {
	t.mu.Lock()
	rep.Installed, rep.BytesBefore, rep.BytesAfter = t.installed, t.before, t.after
	for k, s := range t.stuck {
		rep.Failed = append(rep.Failed, k+": "+s.reason)
	}
	for k, r := range t.failedJobs {
		rep.Failed = append(rep.Failed, k+": "+r)
	}
	for k, r := range t.kept {
		rep.Kept = append(rep.Kept, k+": "+r)
	}
	t.mu.Unlock()
	sort.Strings(rep.Failed)
	sort.Strings(rep.Kept)
	rep.Queued, rep.Processing, rep.Waiting = st.queued, st.processing, st.waiting
	rep.TimedOut = timedOut && !st.drained()
	rep.Interrupted = ctx.Err() != nil
	if ctx.Err() == nil {
		root := ""
		if o.Downloader != nil {
			root = o.Downloader.Cfg.Root
		}
		rep.Unsettled = t.unsettled(context.WithoutCancel(ctx), o.Store, root)
	}

	var errs []error
	if rep.UploadErr != nil {
		errs = append(errs, rep.UploadErr)
	}
	if n := len(rep.Failed); n > 0 {
		errs = append(errs, fmt.Errorf("%d file(s) failed", n))
	}
	if n := len(rep.Unsettled); n > 0 && !rep.TimedOut {
		errs = append(errs, fmt.Errorf("%d uploaded file(s) ended neither installed nor in FAILED/", n))
	}
	switch {
	case rep.Interrupted:
		errs = append(errs, fmt.Errorf("interrupted with %d queued, %d processing, %d waiting to download: %w", st.queued, st.processing, st.waiting, ctx.Err()))
	case rep.TimedOut:
		errs = append(errs, fmt.Errorf("timed out after %s with %d queued, %d processing, %d waiting to download", o.Timeout, st.queued, st.processing, st.waiting))
	case rep.Stalled != "":
		errs = append(errs, errors.New(rep.Stalled))
	}
	return errors.Join(errs...)
}

// state is one look at the bucket.
type state struct {
	todo, queued, processing int
	waiting                  int // DONE/ objects that can still be installed
	done, failed             int
	stalled                  string
	// The work queue's approximate counts, when it was asked (o.Work and
	// something in TODO/); dlq is its dead-letter queue's, -1 unknown.
	asked            bool
	visible, running int
	dlq              int
}

// signature changes whenever anything moved.
func (s state) signature(busy int) string {
	return fmt.Sprintf("%d %d %d %d %d %d %d %d", s.todo, s.visible, s.processing, s.waiting, s.done, s.failed, s.dlq, busy)
}

// stuck says what is waiting and, as far as the bucket and the work queue
// tell, why nothing moves.
func (s state) stuck(haveWork bool) string {
	var parts []string
	switch {
	case s.todo == 0:
	case !haveWork:
		parts = append(parts, fmt.Sprintf("%d in TODO/, none finished (no WORK_QUEUE_URL to tell whether they are queued or running: is sqs-dispatcher running? `sqs-dispatcher status` shows more)", s.todo))
	case !s.asked:
		parts = append(parts, fmt.Sprintf("%d in TODO/, the work queue could not be read", s.todo))
	case s.visible == 0 && s.running == 0 && s.dlq > 0:
		parts = append(parts, fmt.Sprintf("%d in TODO/, none queued or running; %d in the work queue's dead-letter queue (their jobs failed repeatedly: fix the cause, then `sqs-dispatcher trigger --redrive`)", s.todo, s.dlq))
	case s.visible == 0 && s.running == 0:
		parts = append(parts, fmt.Sprintf("%d in TODO/, none queued or running (no work messages: check the bucket notification, or `sqs-dispatcher trigger`)", s.todo))
	case s.running == 0:
		parts = append(parts, fmt.Sprintf("%d in TODO/, %d queued, none running: is sqs-dispatcher running?", s.todo, s.visible))
	default:
		parts = append(parts, fmt.Sprintf("%d in TODO/, %d running and %d queued, no result yet (`sqs-dispatcher status` shows the tasks)", s.todo, s.processing, s.visible))
	}
	if s.waiting > 0 {
		parts = append(parts, fmt.Sprintf("%d result(s) in DONE/ not installed yet", s.waiting))
	}
	if s.failed > 0 {
		parts = append(parts, fmt.Sprintf("%d failed so far", s.failed))
	}
	return strings.Join(parts, "; ")
}

func (s state) drained() bool { return s.todo == 0 && s.waiting == 0 }
func (s state) total() int    { return s.queued + s.processing + s.waiting + s.done + s.failed }

func (s state) text() string {
	return fmt.Sprintf("queued %d · processing %d · done %d · failed %d", s.queued, s.processing+s.waiting, s.done, s.failed)
}

func (s state) fields() map[string]int64 {
	return map[string]int64{"queued": int64(s.queued), "processing": int64(s.processing + s.waiting), "done": int64(s.done), "failed": int64(s.failed)}
}

// look lists TODO/ before DONE/ (the processor writes DONE/ before it
// deletes TODO/, so a job between the two is seen in one of them) and
// FAILED/ last (written before TODO/ is deleted, too).
func look(ctx context.Context, o Options, t *tracker) (state, error) {
	var s state
	if err := storage.Walk(ctx, o.Store, library.TodoPrefix, func(storage.Object) error { s.todo++; return nil }); err != nil {
		return s, fmt.Errorf("list %s: %w", library.TodoPrefix, err)
	}
	var dlq int
	s.dlq = -1
	if o.Work != nil && s.todo > 0 {
		d, err := o.Work.Depth(ctx)
		if err != nil {
			return s, fmt.Errorf("depth of the work queue: %w", err)
		}
		s.processing = min(d.InFlight, s.todo)
		s.asked, s.visible, s.running = true, d.Visible, d.InFlight
		if r, ok := o.Work.(queue.Redriver); ok && d.Visible == 0 && d.InFlight == 0 {
			if dd, err := r.DeadLetterDepth(ctx); err == nil {
				dlq, s.dlq = dd.Visible, dd.Visible
			}
		}
	}
	s.queued = s.todo - s.processing
	if dlq > 0 && dlq >= s.todo {
		s.stalled = fmt.Sprintf("%d file(s) in TODO/ will not be processed: their jobs failed repeatedly and were dead-lettered (fix the cause, then `trigger --redrive`)", s.todo)
	}
	t.mu.Lock()
	stuck := make(map[string]stuckResult, len(t.stuck))
	for k, v := range t.stuck {
		stuck[k] = v
	}
	t.mu.Unlock()
	if err := storage.Walk(ctx, o.Store, library.DonePrefix, func(ob storage.Object) error {
		if st, ok := stuck[ob.Key]; !ok || (st.size != ob.Size && st.size >= 0) {
			s.waiting++
		}
		return nil
	}); err != nil {
		return s, fmt.Errorf("list %s: %w", library.DonePrefix, err)
	}
	if err := t.readFailed(ctx, o.Store); err != nil {
		return s, err
	}
	t.mu.Lock()
	s.done = t.installed
	s.failed = len(t.stuck) + len(t.failedJobs) + t.uploadFailed
	t.mu.Unlock()
	return s, nil
}

// readFailed reads FAILED/ records that are new since the start.
func (t *tracker) readFailed(ctx context.Context, st storage.Store) error {
	now, err := listVersions(ctx, st, library.FailedPrefix)
	if err != nil {
		return err
	}
	for k, v := range now {
		t.mu.Lock()
		old := t.startFailed[k] == v || t.seenFailed[k] == v
		t.mu.Unlock()
		if old {
			continue
		}
		rec, err := readRecord(ctx, st, k)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		t.mu.Lock()
		t.seenFailed[k] = v
		switch rec.Status {
		case "no-gain":
			t.kept[k] = rec.Reason
		case "failed", "":
			t.failedJobs[k] = rec.Reason
		}
		t.mu.Unlock()
	}
	return nil
}

// unsettled lists the uploads of this run that were neither installed nor
// recorded in FAILED/, with where each one is now. A result installed in
// the library under root by another result-downloader (the stack's runs
// beside `process`) is settled, not lost.
func (t *tracker) unsettled(ctx context.Context, st storage.Store, root string) []string {
	t.mu.Lock()
	var keys []string
	for _, k := range t.uploaded {
		rel, err := library.RelFromTodo(k)
		if err != nil {
			continue
		}
		done, _ := library.DoneKey(rel)
		legacy, _ := library.LegacyDoneKey(rel)
		failed, _ := library.FailedKey(rel)
		_, isFailed := t.failedJobs[failed]
		_, isKept := t.kept[failed]
		_, notInstalled := t.stuck[done]
		if t.installedKey[done] || (legacy != "" && t.installedKey[legacy]) || isFailed || isKept || notInstalled {
			continue
		}
		keys = append(keys, k)
	}
	t.mu.Unlock()
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		rel, _ := library.RelFromTodo(k)
		done, _ := library.DoneKey(rel)
		failed, _ := library.FailedKey(rel)
		where := "gone from TODO/ with no result in DONE/ and no record in FAILED/"
		if ok, err := storage.Exists(ctx, st, k); err != nil {
			where = "cannot tell: " + err.Error()
		} else if ok {
			where = "still in TODO/"
		} else if ok, _ := storage.Exists(ctx, st, done); ok {
			where = "result in " + done + ", not installed"
		} else if ok, _ := storage.Exists(ctx, st, failed); ok {
			where = "recorded in " + failed + " before this run looked"
		} else if installedElsewhere(root, rel) {
			continue
		}
		out = append(out, k+": "+where)
	}
	return out
}

type record struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
}

func readRecord(ctx context.Context, st storage.Store, key string) (record, error) {
	var rec record
	r, _, err := st.Get(ctx, key)
	if err != nil {
		return rec, err
	}
	defer r.Close()
	if err := json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(&rec); err != nil {
		return record{Status: "failed", Reason: "unreadable failure record: " + err.Error()}, nil
	}
	return rec, nil
}

// listVersions maps the keys under prefix to "size/modified", which
// changes when an object is written again.
func listVersions(ctx context.Context, st storage.Store, prefix string) (map[string]string, error) {
	out := map[string]string{}
	err := storage.Walk(ctx, st, prefix, func(o storage.Object) error {
		out[o.Key] = fmt.Sprintf("%d/%d", o.Size, o.Modified.UnixNano())
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	return out, nil
}

// Print writes the end-of-run report for people.
func (r Report) Print(w io.Writer) {
	if r.Upload != nil {
		r.Upload.Print(w, r.DryRun)
		if r.DryRun {
			return
		}
		fmt.Fprintln(w)
	}
	line := fmt.Sprintf("installed %d file(s)", r.Installed)
	if r.BytesBefore > 0 {
		line += fmt.Sprintf(": %s → %s (%.1f%%)", progress.Bytes(r.BytesBefore), progress.Bytes(r.BytesAfter), 100*float64(r.BytesAfter)/float64(r.BytesBefore))
	}
	fmt.Fprintln(w, line)
	if len(r.Kept) > 0 {
		fmt.Fprintf(w, "kept %d original(s) (HEVC was not smaller):\n", len(r.Kept))
		for _, k := range r.Kept {
			fmt.Fprintln(w, "  "+k)
		}
	}
	if len(r.Failed) > 0 {
		fmt.Fprintf(w, "failed %d:\n", len(r.Failed))
		for _, f := range r.Failed {
			fmt.Fprintln(w, "  "+f)
		}
	}
	if len(r.Unsettled) > 0 {
		fmt.Fprintf(w, "uploaded in this run, neither installed nor failed: %d\n", len(r.Unsettled))
		for _, u := range r.Unsettled {
			fmt.Fprintln(w, "  "+u)
		}
	}
	if r.UploadErr != nil {
		fmt.Fprintf(w, "upload: %v\n", r.UploadErr)
	}
	left := fmt.Sprintf("%d queued, %d processing, %d waiting to download", r.Queued, r.Processing, r.Waiting)
	switch {
	case r.Interrupted:
		fmt.Fprintf(w, "interrupted with %s; run again to continue\n", left)
	case r.TimedOut:
		fmt.Fprintf(w, "timed out with %s; run `result-downloader process --skip-upload` to keep waiting\n", left)
		if r.Stuck != "" {
			fmt.Fprintf(w, "stuck: %s\n", r.Stuck)
		}
	case r.Stalled != "":
		fmt.Fprintln(w, r.Stalled)
	}
	fmt.Fprintf(w, "wall time %s\n", r.Wall.Round(100*time.Millisecond))
	if r.OK() {
		fmt.Fprintln(w, "all done")
	}
}

// installedElsewhere reports whether rel's result is in the library under
// root (its current name, or the name a .MP4's result had before spellings
// were told apart), as another result-downloader leaves it.
func installedElsewhere(root, rel string) bool {
	if root == "" {
		return false
	}
	names := []string{library.HevcRel(rel)}
	if legacy, ok := library.LegacyDoneKey(rel); ok {
		names = append(names, strings.TrimPrefix(legacy, library.DonePrefix))
	}
	for _, n := range names {
		if p, err := library.Path(root, n); err == nil {
			if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
				return true
			}
		}
	}
	return false
}
