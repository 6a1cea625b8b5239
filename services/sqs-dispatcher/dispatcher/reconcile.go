package dispatcher

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/events"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// ReconcileResult counts what one reconcile pass did.
type ReconcileResult struct {
	// Waited is true when the work queue held messages, so nothing was
	// checked (see Reconciler.Run).
	Waited bool `json:"waited"`
	// Healed is the number of TODO/ objects re-queued.
	Healed int `json:"healed"`
}

// Reconciler re-queues lost work: TODO/ objects that no message, running
// processor or result accounts for. S3 notifications can be missing (a
// filter that misses a spelling such as .Mp4, notifications off for a
// while, a queue purged by hand); without this such an object would wait
// in TODO/ until someone ran trigger.
type Reconciler struct {
	D *Dispatcher
	// Keys are the dispatcher's keys in flight (launched or being handled);
	// nil: only the launcher's listing counts.
	Keys *Keys

	mu     sync.Mutex
	healed map[string]bool
}

// Pass runs one reconcile.
//
// "No message in flight" is decided by the work queue as a whole: only when
// it holds no message at all, visible, in flight or delayed
// (ApproximateNumberOfMessages, ...NotVisible and ...Delayed all 0), is any
// TODO/ object re-queued. Every message
// that can still lead to an encode is counted there: one waiting, one a
// processor holds with its heartbeat, one handed back with a retry backoff,
// one the dispatcher keeps hidden. Keys have no message of their own in
// this port (SQS cannot be searched by key), so a per-key check would have
// to receive every message; the whole-queue check costs one call and errs
// only towards waiting. SQS's counts are approximate and lag by up to about
// a minute: a message sent just before may be missed, and the object sent
// twice; the dispatcher then launches it once (a duplicate of a running
// key is dropped, and once the first run finished, DONE/ or the missing
// TODO/ object ends the second).
//
// On top of that, objects younger than ReconcileGrace (their own event may
// still be on its way), keys whose processor runs, and keys with a result in
// DONE/ or a record in FAILED/ are left alone, and each key is re-queued at
// most once per Reconciler: a job that then fails until it is dead-lettered
// stays in the dead-letter queue for a person (trigger --redrive), instead
// of looping.
func (rc *Reconciler) Pass(ctx context.Context) (ReconcileResult, error) {
	d := rc.D
	var res ReconcileResult
	dep, err := d.Queue.Depth(ctx)
	if err != nil {
		return res, fmt.Errorf("reconcile: depth of %s: %w", d.Queue.Name(), err)
	}
	if dep.Visible+dep.InFlight+dep.Delayed > 0 {
		res.Waited = true
		d.Log.Debug().Int("visible", dep.Visible).Int("in_flight", dep.InFlight).Int("delayed", dep.Delayed).Msg("reconcile: the work queue holds messages; waiting until it is empty")
		return res, nil
	}
	running, err := d.Launcher.InFlight(ctx)
	if err != nil {
		return res, fmt.Errorf("reconcile: list running processors: %w", err)
	}
	have := map[string]bool{} // DONE/ and FAILED/ keys
	for _, prefix := range []string{library.DonePrefix, library.FailedPrefix} {
		if err := storage.Walk(ctx, d.Store, prefix, func(o storage.Object) error {
			have[o.Key] = true
			return nil
		}); err != nil {
			return res, fmt.Errorf("reconcile: list %s: %w", prefix, err)
		}
	}
	cutoff := time.Now().Add(-d.Cfg.ReconcileGrace)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.healed == nil {
		rc.healed = map[string]bool{}
	}
	var batch, keys []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := d.Queue.Send(ctx, batch...); err != nil {
			return fmt.Errorf("reconcile: send %d message(s): %w", len(batch), err)
		}
		for _, k := range keys {
			rc.healed[k] = true
			d.Log.Info().Str("key", k).Msg("reconcile: re-queued a TODO/ object that had no message")
		}
		res.Healed += len(keys)
		batch, keys = batch[:0], keys[:0]
		return nil
	}
	err = storage.Walk(ctx, d.Store, library.TodoPrefix, func(o storage.Object) error {
		rel, err := library.RelFromTodo(o.Key)
		if err != nil || library.IsHevcName(rel) || rc.healed[o.Key] || o.Modified.After(cutoff) ||
			running[o.Key] || (rc.Keys != nil && rc.Keys.Has(o.Key)) {
			return nil
		}
		doneKey, _ := library.DoneKey(rel)
		failedKey, _ := library.FailedKey(rel)
		if have[doneKey] || have[failedKey] {
			return nil
		}
		batch = append(batch, events.Created(d.Store.Bucket(), o.Key, o.Size, "ObjectCreated:Put"))
		keys = append(keys, o.Key)
		if len(batch) == 10 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return res, err
	}
	if res.Healed > 0 {
		d.Log.Info().Int("healed", res.Healed).Msg("reconcile: lost work re-queued")
	} else {
		d.Log.Debug().Msg("reconcile: nothing lost")
	}
	return res, nil
}

// Run runs a pass every interval until ctx ends; errors are logged.
func (rc *Reconciler) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := rc.Pass(ctx); err != nil && ctx.Err() == nil {
			rc.D.Log.Error().Err(err).Msg("reconcile failed; trying again at the next interval")
		}
	}
}
