// Package dispatcher is sqs-dispatcher's logic: turn work-queue events into
// processor launches, one per key, at most the launcher's capacity at once;
// re-queue TODO/ (Trigger), move the dead-letter queue back (Redrive) and
// report the pipeline's state (Status).
package dispatcher

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/events"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// Config tunes the dispatcher.
type Config struct {
	// Wait is the long-poll wait of each receive.
	Wait time.Duration
	// StartGrace is the visibility given to a message when its processor is
	// launched, covering the task's start until its first heartbeat.
	StartGrace time.Duration
	// Busy is how long to pause when at capacity or after errors, and the
	// visibility given back to a message whose launch failed.
	Busy time.Duration
	// Refresh is how often Run lists the launcher's running processors
	// (default 2 s); keys launched in between count as in flight.
	Refresh time.Duration
	// Reconcile is how often Run re-queues TODO/ objects that have no
	// message (see Reconcile); 0 turns it off.
	Reconcile time.Duration
	// ReconcileGrace is how old a TODO/ object must be before Reconcile
	// re-queues it, so that a fresh upload whose event is on its way is
	// not sent twice.
	ReconcileGrace time.Duration
}

// Bind registers the dispatcher's variables.
func (c *Config) Bind(s *config.Set) {
	s.Duration(&c.Wait, "RECEIVE_WAIT", 20*time.Second, "long-poll wait of each receive (max 20s on SQS)")
	s.Duration(&c.StartGrace, "START_GRACE", 10*time.Minute, "message visibility from a launch until the processor's heartbeat takes over (covers task provisioning and image pull)")
	s.Duration(&c.Busy, "BUSY_WAIT", 5*time.Second, "pause when at MAX_TASKS or after a failed launch or receive")
	s.Duration(&c.Reconcile, "RECONCILE_INTERVAL", 10*time.Minute, "how often TODO/ objects that have no message, running task or result (lost notifications, a purged queue, a .Mp4 spelling the suffix rules miss) are re-queued; 0 turns it off")
	s.Duration(&c.ReconcileGrace, "RECONCILE_GRACE", 5*time.Minute, "how old a TODO/ object must be before the reconcile re-queues it (its own event may still be on its way)")
	s.Check(func() error {
		if c.Wait < 0 || c.Wait > 20*time.Second {
			return fmt.Errorf("RECEIVE_WAIT must be 0..20s, got %s", c.Wait)
		}
		if c.StartGrace < time.Second || c.StartGrace > 12*time.Hour {
			return fmt.Errorf("START_GRACE must be 1s..12h (SQS's visibility range), got %s", c.StartGrace)
		}
		if c.Busy <= 0 {
			return fmt.Errorf("BUSY_WAIT must be positive, got %s", c.Busy)
		}
		if c.Reconcile != 0 && c.Reconcile < time.Second {
			return fmt.Errorf("RECONCILE_INTERVAL must be 0 (off) or at least 1s, got %s", c.Reconcile)
		}
		if c.ReconcileGrace < 0 {
			return fmt.Errorf("RECONCILE_GRACE must not be negative, got %s", c.ReconcileGrace)
		}
		return nil
	})
}

// Dispatcher consumes the work queue.
type Dispatcher struct {
	Store    storage.Store
	Queue    queue.Queue
	Launcher launch.Launcher
	Cfg      Config
	Log      zerolog.Logger
	// OnOutcome, if set, sees the outcome of every message Run handles
	// (metrics), from any goroutine.
	OnOutcome func(Outcome)
	// OnLoop, if set, is called at each turn of Run's loop (the health
	// check's sign of life, also while it pauses on purpose).
	OnLoop func()
	// Budget, if set, stops launching once the month's estimated cost
	// reaches BUDGET_USD (budget.go).
	Budget *Budget
}

// Keys tracks the keys in flight for Handle, safe for concurrent use: a
// snapshot of the launcher's (InFlight), the keys launched here since that
// snapshot was taken, and the keys of messages being handled (claimed).
type Keys struct {
	mu       sync.Mutex
	snapshot map[string]bool
	launched map[string]time.Time
	claimed  map[string]bool
	busy     int // messages being handled
}

// NewKeys makes a tracker whose snapshot is keys (may be nil).
func NewKeys(keys map[string]bool) *Keys {
	k := &Keys{launched: map[string]time.Time{}, claimed: map[string]bool{}}
	k.SetSnapshot(keys, time.Now())
	return k
}

// SetSnapshot replaces the snapshot with keys, listed from a call that
// started at taken: keys launched here since then are kept (the listing may
// not show them).
func (k *Keys) SetSnapshot(keys map[string]bool, taken time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.snapshot = map[string]bool{}
	for key, ok := range keys {
		if ok {
			k.snapshot[key] = true
		}
	}
	for key, at := range k.launched {
		if at.Before(taken) {
			delete(k.launched, key)
		}
	}
}

// Claim marks key as being handled and reports whether it was free: not in
// flight, not launched here, not claimed.
func (k *Keys) Claim(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.snapshot[key] || !k.launched[key].IsZero() || k.claimed[key] {
		return false
	}
	k.claimed[key] = true
	return true
}

// Finish ends a claim; a launched key stays in flight.
func (k *Keys) Finish(key string, launched bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.claimed, key)
	if launched {
		k.launched[key] = time.Now()
	}
}

// Has reports whether key is in flight or claimed.
func (k *Keys) Has(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.snapshot[key] || !k.launched[key].IsZero() || k.claimed[key]
}

// Running is the number of keys in flight (snapshot and launched here).
func (k *Keys) Running() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := len(k.snapshot)
	for key := range k.launched {
		if !k.snapshot[key] {
			n++
		}
	}
	return n
}

// load counts processors that run or may start: Running plus the messages
// being handled.
func (k *Keys) load() int {
	n := k.Running()
	k.mu.Lock()
	defer k.mu.Unlock()
	return n + k.busy
}

// handling is the number of messages being handled.
func (k *Keys) handling() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.busy
}

func (k *Keys) addBusy(d int) {
	k.mu.Lock()
	k.busy += d
	k.mu.Unlock()
}

// Outcome is what Handle did with a message.
type Outcome string

// Outcomes of Handle.
const (
	Launched     Outcome = "launched"
	Dropped      Outcome = "dropped"       // deleted: unusable, gone, done, or a duplicate
	Deferred     Outcome = "deferred"      // kept hidden: a task for the key is running
	Split        Outcome = "split"         // several records re-sent one per message
	Retry        Outcome = "retry"         // hidden for a backoff (store or queue error)
	LaunchFailed Outcome = "launch-failed" // hidden for a backoff; Run pauses BUSY_WAIT
	// Misrouted: the event names another bucket than S3_BUCKET. Our
	// configuration may be what is wrong, so the message is not deleted: it
	// reappears, and the redrive policy dead-letters it.
	Misrouted Outcome = "misrouted"
	Unhandled Outcome = "unhandled" // ctx ended
)

func (c *Config) defaults() {
	if c.Busy <= 0 {
		c.Busy = 5 * time.Second
	}
	if c.StartGrace <= 0 {
		c.StartGrace = 10 * time.Minute
	}
	if c.Refresh <= 0 {
		c.Refresh = 2 * time.Second
	}
}

// maxHandlers bounds the messages handled at once (two receives' worth),
// so that the next batch is received while the last is still launching.
const maxHandlers = 20

// Run dispatches until ctx ends, and every Cfg.Reconcile re-queues lost
// work (Reconciler). At the launcher's capacity it receives
// nothing (messages stay in the queue), so the cap holds however many
// messages wait. The launcher's tasks are listed at most every Refresh
// (and whenever a redelivered message needs a fresh look); in between,
// keys launched here count as in flight.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.Cfg.defaults()
	keys := NewKeys(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, maxHandlers)
	handled := make(chan struct{}, 1) // a message's handling ended
	var mu sync.Mutex
	var pauseUntil time.Time
	var listed time.Time // when the last snapshot was taken; zero: take one
	if d.Cfg.Reconcile > 0 {
		rc := &Reconciler{D: d, Keys: keys}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc.Run(ctx, d.Cfg.Reconcile)
		}()
	}
	refresh := func() bool {
		start := time.Now()
		snap, err := d.Launcher.InFlight(ctx)
		if err != nil {
			if ctx.Err() == nil {
				d.Log.Error().Err(err).Msg("list running processors; retrying")
				sleep(ctx, d.Cfg.Busy)
			}
			return false
		}
		keys.SetSnapshot(snap, start)
		listed = start
		return true
	}
	for ctx.Err() == nil {
		if d.OnLoop != nil {
			d.OnLoop()
		}
		mu.Lock()
		pause := time.Until(pauseUntil)
		mu.Unlock()
		if pause > 0 {
			// A launch failed (no capacity, throttled): let it recover.
			sleep(ctx, pause)
			continue
		}
		if d.budgetReached(ctx) {
			// Nothing is received: the messages wait in the queue.
			sleep(ctx, d.Cfg.Busy)
			continue
		}
		if time.Since(listed) >= d.Cfg.Refresh && !refresh() {
			continue
		}
		free := 10
		if c := d.Launcher.Capacity(); c > 0 {
			free = min(10, c-keys.load())
		}
		if free <= 0 {
			if keys.handling() > 0 {
				// Messages still being handled count against the cap
				// until they are launched or dropped; most end in
				// milliseconds (junk, duplicates), so wait for one of
				// them rather than BUSY_WAIT.
				select {
				case <-handled:
				case <-ctx.Done():
				case <-time.After(d.Cfg.Busy):
				}
				continue
			}
			d.Log.Debug().Int("running", keys.Running()).Int("max_tasks", d.Launcher.Capacity()).Msg("at capacity; not receiving")
			sleep(ctx, d.Cfg.Busy)
			listed = time.Time{} // see which tasks have ended
			continue
		}
		// Room to handle a whole batch.
		for i := 0; i < free; i++ {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
		}
		msgs, err := d.Queue.Receive(ctx, free, d.Cfg.Wait)
		for i := len(msgs); i < free; i++ {
			<-slots
		}
		if err != nil {
			if ctx.Err() == nil {
				d.Log.Error().Err(err).Msg("receive work")
				sleep(ctx, d.Cfg.Busy)
			}
			continue
		}
		for _, m := range msgs {
			d.Log.Debug().Str("message_id", m.ID).Int("receive_count", m.ReceiveCount).Msg("received")
		}
		if redelivered(msgs) {
			// A redelivered message may have been released by a task that
			// has stopped since the snapshot (Spot interruption): look
			// again, or it would be deferred as if that task still ran.
			refresh()
		}
		keys.addBusy(len(msgs))
		for _, m := range msgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				defer func() {
					keys.addBusy(-1)
					select {
					case handled <- struct{}{}:
					default:
					}
				}()
				out, err := d.Handle(ctx, m, keys)
				if d.OnOutcome != nil {
					d.OnOutcome(out)
				}
				if err != nil && ctx.Err() == nil {
					d.Log.Error().Err(err).Str("message_id", m.ID).Str("outcome", string(out)).Msg("dispatch failed; the message will be redelivered")
				}
				if out == LaunchFailed {
					// Only a failed launch pauses receiving (no capacity,
					// throttled); unusable messages and store errors do
					// not hold up the messages behind them.
					mu.Lock()
					pauseUntil = time.Now().Add(d.Cfg.Busy)
					mu.Unlock()
				}
			}()
		}
	}
	return nil
}

func redelivered(msgs []queue.Message) bool {
	for _, m := range msgs {
		if m.ReceiveCount > 1 {
			return true
		}
	}
	return false
}

// HandleBatch handles received messages concurrently (a key is launched
// once even when several messages of the batch name it) and reports whether
// a launch failed.
func (d *Dispatcher) HandleBatch(ctx context.Context, msgs []queue.Message, inflight *Keys) (launchFailed bool) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, m := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := d.Handle(ctx, m, inflight)
			if err != nil && ctx.Err() == nil {
				d.Log.Error().Err(err).Str("message_id", m.ID).Str("outcome", string(out)).Msg("dispatch failed; the message will be redelivered")
			}
			if out == LaunchFailed {
				mu.Lock()
				launchFailed = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return launchFailed
}

// Handle dispatches one message. inflight holds the keys whose processors
// run; Handle claims the key before launching and keeps it claimed once
// launched. A message it cannot use is deleted and logged at warn level with
// the reason, except one for another bucket (see Misrouted). After an error
// the message is hidden for queue.RetryDelay of its receive count.
func (d *Dispatcher) Handle(ctx context.Context, m queue.Message, inflight *Keys) (Outcome, error) {
	d.Cfg.defaults()
	mlog := d.Log.With().Str("message_id", m.ID).Int("receive_count", m.ReceiveCount).Logger()
	recs, err := events.Parse(m.Body)
	if err != nil {
		mlog.Warn().Err(err).Str("reason", "not an S3 event notification").Msg("unusable work message; deleted")
		return Dropped, d.Queue.Delete(ctx, m.Receipt)
	}
	if len(recs) != 1 {
		// One job per message, so that each has its own receipt for the
		// processor's heartbeat: split (or drop a test event).
		if len(recs) == 0 {
			mlog.Info().Msg("S3 test event (sent when notifications are configured); deleted")
			return Dropped, d.Queue.Delete(ctx, m.Receipt)
		}
		var bodies []string
		for _, r := range recs {
			bodies = append(bodies, events.Created(r.Bucket, r.Key, r.Size, r.EventName))
		}
		if err := d.Queue.Send(ctx, bodies...); err != nil {
			return d.retry(ctx, m, mlog, Retry, fmt.Errorf("split message %s: %w", m.ID, err))
		}
		mlog.Info().Int("records", len(recs)).Msg("message split into one message per record")
		return Split, d.Queue.Delete(ctx, m.Receipt)
	}
	r := recs[0]
	log := mlog.With().Str("key", r.Key).Logger()
	drop := func(level zerolog.Level, why string) (Outcome, error) {
		log.WithLevel(level).Str("reason", why).Msg("message dropped")
		if err := d.Queue.Delete(ctx, m.Receipt); err != nil {
			return d.retry(ctx, m, log, Retry, fmt.Errorf("delete message for %s: %w", r.Key, err))
		}
		return Dropped, nil
	}
	if bucket := d.Store.Bucket(); r.Bucket != bucket {
		// Either the notification is routed to the wrong queue or
		// S3_BUCKET is wrong: ours to fix, so nothing is deleted.
		log.Error().Str("event_bucket", r.Bucket).Str("configured_bucket", bucket).
			Msg("the event's bucket is not S3_BUCKET: message left in the queue (the redrive policy dead-letters it); check S3_BUCKET and where the bucket's notifications go")
		return Misrouted, nil
	}
	if reason := Validate(r); reason != "" {
		return drop(zerolog.WarnLevel, reason)
	}
	if !inflight.Claim(r.Key) {
		if m.ReceiveCount <= 1 {
			// A second event for a key whose task runs: that task holds its
			// own message, so this one is redundant.
			return drop(zerolog.InfoLevel, "duplicate: a processor for this key is already running")
		}
		// Received before: this may be the running task's own message
		// (whose heartbeat has not started yet, or stopped). Keep it,
		// hidden, so that the job is not lost if that task dies.
		if err := d.Queue.ChangeVisibility(ctx, m.Receipt, d.Cfg.StartGrace); err != nil {
			return Retry, fmt.Errorf("defer message for %s: %w", r.Key, err)
		}
		log.Info().Dur("for", d.Cfg.StartGrace).Msg("a processor for this key is running; message kept hidden")
		return Deferred, nil
	}
	launched := false
	defer func() { inflight.Finish(r.Key, launched) }()
	rel, _ := library.RelFromTodo(r.Key) // checked by Validate
	doneKey, _ := library.DoneKey(rel)
	// Both lookups at once: they are most of a dispatch's latency.
	var doneOK, todoOK bool
	var doneErr, todoErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		doneOK, doneErr = storage.Exists(ctx, d.Store, doneKey)
	}()
	todoOK, todoErr = storage.Exists(ctx, d.Store, r.Key)
	wg.Wait()
	if doneErr != nil {
		return d.retry(ctx, m, log, Retry, fmt.Errorf("check %s: %w", doneKey, doneErr))
	} else if doneOK {
		// Encoded before (the message was redelivered after the processor
		// uploaded): finish its clean-up, unless the result is of an older
		// version (stale.go): then this newer TODO/ object is dispatched.
		newer, err := d.deleteEncodedTodo(ctx, r.Key, doneKey)
		if err != nil {
			return d.retry(ctx, m, log, Retry, fmt.Errorf("delete %s (result exists): %w", r.Key, err))
		}
		if !newer {
			return drop(zerolog.InfoLevel, "result already in DONE/")
		}
		log.Info().Str("done", doneKey).Msg("DONE/ holds the result of an older version; dispatching this newer TODO/ object")
	}
	if todoErr != nil {
		return d.retry(ctx, m, log, Retry, fmt.Errorf("check %s: %w", r.Key, todoErr))
	} else if !todoOK {
		return drop(zerolog.InfoLevel, "TODO object no longer exists")
	}
	// Hide the message for the start-up before RunTask, so that the
	// receipt the processor gets stays valid however long RunTask's
	// retries take; the processor's heartbeat takes over from there.
	if err := d.Queue.ChangeVisibility(ctx, m.Receipt, d.Cfg.StartGrace); err != nil {
		return d.retry(ctx, m, log, Retry, fmt.Errorf("extend visibility of the message for %s: %w", r.Key, err))
	}
	job := launch.Job{Bucket: r.Bucket, Key: r.Key, QueueURL: d.Queue.Name(), Receipt: m.Receipt, ReceiveCount: m.ReceiveCount}
	if err := d.Launcher.Launch(ctx, job); err != nil {
		// Let the message come back after a backoff rather than after
		// StartGrace.
		return d.retry(ctx, m, log, LaunchFailed, fmt.Errorf("launch %s: %w", r.Key, err))
	}
	launched = true
	log.Info().Msg("processor launched")
	return Launched, nil
}

// retry hides m for queue.RetryDelay of its receive count, so that it is
// retried soon after a passing failure and ever more slowly after a lasting
// one (until maxReceiveCount dead-letters it), and returns out and err.
func (d *Dispatcher) retry(ctx context.Context, m queue.Message, log zerolog.Logger, out Outcome, err error) (Outcome, error) {
	delay := queue.RetryDelay(m.ReceiveCount)
	if verr := d.Queue.ChangeVisibility(context.WithoutCancel(ctx), m.Receipt, delay); verr != nil {
		log.Warn().Err(verr).Msg("schedule the message's retry; it reappears after its visibility timeout")
	} else {
		log.Debug().Dur("retry_in", delay).Msg("message hidden until its retry")
	}
	if ctx.Err() != nil {
		return Unhandled, ctx.Err()
	}
	return out, err
}

// Validate says why a record is not a job ("" when it is): not an
// ObjectCreated event (in S3's or MinIO's spelling), a key outside
// TODO/<rel>.mp4 or the library rules, or one of our own outputs. The
// bucket is Handle's to check.
func Validate(r events.Record) string {
	if r.EventName != "" && !events.IsObjectCreated(r.EventName) {
		return "event " + r.EventName + " is not ObjectCreated"
	}
	rel, err := library.RelFromTodo(r.Key)
	if err != nil {
		return err.Error()
	}
	if library.IsHevcName(rel) {
		return fmt.Sprintf("%q is an encoded output (%s), never re-encoded", r.Key, library.HevcSuffix)
	}
	return ""
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
