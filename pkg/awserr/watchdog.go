package awserr

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// DefaultFailAfter is how long a long-running service keeps going while
// every AWS call it makes is refused for configuration reasons.
const DefaultFailAfter = 5 * time.Minute

// logEvery spaces the error lines while the failure lasts.
const logEvery = time.Minute

// Watchdog ends a long-running service whose AWS calls have failed for
// configuration reasons (Kind.Config: credentials, permissions, a missing
// bucket or queue) for FailAfter without one call succeeding in between:
// the service's loops would otherwise retry forever, logging warnings
// nobody reads, while a container restart (and its non-zero exit) is
// visible. Each failure is logged at error level (the first at once, then
// at most once a minute).
//
// The loops do not need to know: the adapters' calls report to it
// (adapters.Watch wraps the store and the queues).
type Watchdog struct {
	after  time.Duration
	log    zerolog.Logger
	cancel context.CancelCauseFunc

	mu      sync.Mutex
	runs    map[string]*run // by target
	lastLog time.Time
	err     error // set once fired
}

// run is one target's current run of failures.
type run struct {
	since time.Time
	last  error
	timer *time.Timer
}

// NewWatchdog returns a watchdog and a context derived from ctx that it
// cancels when it fires; the service runs with that context and, once it
// returns, asks Err why. after <= 0 means DefaultFailAfter.
func NewWatchdog(ctx context.Context, after time.Duration, log zerolog.Logger) (*Watchdog, context.Context) {
	if after <= 0 {
		after = DefaultFailAfter
	}
	ctx, cancel := context.WithCancelCause(ctx)
	return &Watchdog{after: after, log: log, cancel: cancel, runs: map[string]*run{}}, ctx
}

// Report records the outcome of one AWS call to target (a bucket, a
// queue: a success on one does not excuse failures on another): nil is a
// success and ends target's run of failures; configuration errors start or
// continue one; other errors (network, throttling, a missing key) change
// nothing.
func (w *Watchdog) Report(target string, err error) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.runs[target]
	if err == nil {
		if r != nil {
			r.timer.Stop()
			delete(w.runs, target)
			if w.err == nil {
				w.log.Info().Str("target", target).Dur("after", time.Since(r.since).Round(time.Second)).Msg("AWS calls succeed again")
			}
		}
		return
	}
	k := Classify(err)
	if !k.Config() || w.err != nil {
		return
	}
	now := time.Now()
	if r == nil {
		r = &run{since: now}
		r.timer = time.AfterFunc(w.after, func() { w.check(time.Now()) })
		w.runs[target] = r
	}
	r.last = err
	if now.Sub(w.lastLog) >= logEvery {
		w.lastLog = now
		w.log.Error().Err(err).Str("target", target).Str("kind", k.String()).Str("code", Code(err)).
			Dur("failing_for", now.Sub(r.since).Round(time.Second)).Dur("exit_in", (w.after - now.Sub(r.since)).Round(time.Second)).
			Msg("AWS refuses our configuration; fix it (the service exits if this lasts)")
	}
}

// check fires the watchdog if a run of failures has lasted.
func (w *Watchdog) check(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	for target, r := range w.runs {
		if now.Sub(r.since) < w.after {
			continue
		}
		w.err = fmt.Errorf("AWS refused every call to %s for %s (AUTH_FAIL_AFTER): %w", target, now.Sub(r.since).Round(time.Second), r.last)
		w.log.Error().Err(r.last).Str("target", target).Dur("failing_for", now.Sub(r.since).Round(time.Second)).
			Msg("giving up: configuration errors lasted AUTH_FAIL_AFTER; exiting")
		w.cancel(w.err)
		return
	}
}

// Err is why the watchdog ended the service; nil if it did not.
func (w *Watchdog) Err() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Stop releases the watchdog's timer and context.
func (w *Watchdog) Stop() {
	if w == nil {
		return
	}
	w.mu.Lock()
	for _, r := range w.runs {
		r.timer.Stop()
	}
	w.mu.Unlock()
	w.cancel(nil)
}
