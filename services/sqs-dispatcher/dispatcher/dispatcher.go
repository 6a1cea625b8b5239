// Package dispatcher is sqs-dispatcher's logic: turn work-queue events into
// processor launches, one per key, at most the launcher's capacity at once.
package dispatcher

import (
	"context"
	"fmt"
	"strings"
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
	// StartGrace is the visibility given to a message once its processor is
	// launched, covering the processor's start until its first heartbeat.
	StartGrace time.Duration
	// Busy is how long to pause when at capacity or after errors.
	Busy time.Duration
}

// Bind registers the dispatcher's variables.
func (c *Config) Bind(s *config.Set) {
	s.Duration(&c.Wait, "RECEIVE_WAIT", 20*time.Second, "long-poll wait of each receive (max 20s on SQS)")
	s.Duration(&c.StartGrace, "START_GRACE", 10*time.Minute, "message visibility after a launch, until the processor's heartbeat takes over")
	c.Busy = 5 * time.Second
}

// Dispatcher consumes the work queue.
type Dispatcher struct {
	Store    storage.Store
	Queue    queue.Queue
	Launcher launch.Launcher
	Cfg      Config
	Log      zerolog.Logger
}

// Run dispatches until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.Cfg.Busy <= 0 {
		d.Cfg.Busy = 5 * time.Second
	}
	for ctx.Err() == nil {
		free := 10
		inflight, err := d.Launcher.InFlight(ctx)
		if err != nil {
			d.Log.Error().Err(err).Msg("count running processors")
			sleep(ctx, d.Cfg.Busy)
			continue
		}
		if c := d.Launcher.Capacity(); c > 0 {
			free = min(10, c-len(inflight))
		}
		if free <= 0 {
			// At the cap: receive nothing, so messages stay for other
			// dispatchers or for later.
			sleep(ctx, d.Cfg.Busy)
			continue
		}
		msgs, err := d.Queue.Receive(ctx, free, d.Cfg.Wait)
		if err != nil {
			if ctx.Err() == nil {
				d.Log.Error().Err(err).Msg("receive work")
				sleep(ctx, d.Cfg.Busy)
			}
			continue
		}
		for _, m := range msgs {
			if err := d.Handle(ctx, m, inflight); err != nil && ctx.Err() == nil {
				d.Log.Error().Err(err).Str("message", m.ID).Msg("dispatch; the message will be redelivered")
			}
		}
	}
	return nil
}

// Handle dispatches one message; inflight is updated with launched keys.
func (d *Dispatcher) Handle(ctx context.Context, m queue.Message, inflight map[string]bool) error {
	recs, err := events.Parse(m.Body)
	if err != nil {
		d.Log.Error().Err(err).Str("message", m.ID).Msg("unreadable work message; deleted")
		return d.Queue.Delete(ctx, m.Receipt)
	}
	if len(recs) != 1 {
		// One job per message, so that each has its own receipt for the
		// processor's heartbeat: split (or drop a test event).
		var bodies []string
		for _, r := range recs {
			bodies = append(bodies, events.Created(r.Bucket, r.Key, r.Size, r.EventName))
		}
		if err := d.Queue.Send(ctx, bodies...); err != nil {
			return fmt.Errorf("split message %s: %w", m.ID, err)
		}
		return d.Queue.Delete(ctx, m.Receipt)
	}
	r := recs[0]
	log := d.Log.With().Str("key", r.Key).Logger()
	drop := func(why string) error {
		log.Info().Str("reason", why).Msg("message dropped")
		return d.Queue.Delete(ctx, m.Receipt)
	}
	if r.Bucket != d.Store.Bucket() {
		return drop(fmt.Sprintf("bucket %q is not ours (%q)", r.Bucket, d.Store.Bucket()))
	}
	if !strings.HasPrefix(r.EventName, "ObjectCreated") && r.EventName != "" {
		return drop("event " + r.EventName)
	}
	rel, err := library.RelFromTodo(r.Key)
	if err != nil {
		return drop(err.Error())
	}
	if inflight[r.Key] {
		return drop("a processor for this key is already running")
	}
	doneKey, _ := library.DoneKey(rel)
	if ok, err := storage.Exists(ctx, d.Store, doneKey); err != nil {
		return fmt.Errorf("check %s: %w", doneKey, err)
	} else if ok {
		if err := d.Store.Delete(ctx, r.Key); err != nil {
			return fmt.Errorf("delete %s (result exists): %w", r.Key, err)
		}
		return drop("result already in DONE/")
	}
	if ok, err := storage.Exists(ctx, d.Store, r.Key); err != nil {
		return fmt.Errorf("check %s: %w", r.Key, err)
	} else if !ok {
		return drop("TODO object no longer exists")
	}
	job := launch.Job{Bucket: r.Bucket, Key: r.Key, QueueURL: d.Queue.Name(), Receipt: m.Receipt}
	if err := d.Launcher.Launch(ctx, job); err != nil {
		// Let the message come back soon rather than after the full timeout.
		_ = d.Queue.ChangeVisibility(ctx, m.Receipt, d.Cfg.Busy)
		return fmt.Errorf("launch %s: %w", r.Key, err)
	}
	inflight[r.Key] = true
	if d.Cfg.StartGrace > 0 {
		if err := d.Queue.ChangeVisibility(ctx, m.Receipt, d.Cfg.StartGrace); err != nil {
			log.Warn().Err(err).Msg("extend visibility after launch")
		}
	}
	log.Info().Int("receive_count", m.ReceiveCount).Msg("processor launched")
	return nil
}

// TriggerResult counts what Trigger did.
type TriggerResult struct {
	Sent, InFlight, HasResult int
}

// Trigger re-queues every TODO/ object without a running processor or a
// result, as S3-event-shaped messages (re-process).
func Trigger(ctx context.Context, st storage.Store, q queue.Queue, l launch.Launcher, dryRun bool, log zerolog.Logger) (TriggerResult, error) {
	var res TriggerResult
	inflight := map[string]bool{}
	if l != nil {
		var err error
		if inflight, err = l.InFlight(ctx); err != nil {
			return res, fmt.Errorf("list running processors: %w", err)
		}
	}
	var batch []string
	flush := func() error {
		if len(batch) == 0 || dryRun {
			batch = nil
			return nil
		}
		err := q.Send(ctx, batch...)
		batch = nil
		return err
	}
	err := storage.Walk(ctx, st, library.TodoPrefix, func(o storage.Object) error {
		rel, err := library.RelFromTodo(o.Key)
		if err != nil {
			log.Warn().Str("key", o.Key).Err(err).Msg("trigger: skipped")
			return nil
		}
		if inflight[o.Key] {
			res.InFlight++
			return nil
		}
		if dk, _ := library.DoneKey(rel); dk != "" {
			if ok, err := storage.Exists(ctx, st, dk); err != nil {
				return err
			} else if ok {
				res.HasResult++
				return nil
			}
		}
		log.Info().Str("key", o.Key).Bool("dry_run", dryRun).Msg("trigger")
		batch = append(batch, events.Created(st.Bucket(), o.Key, o.Size, "ObjectCreated:Put"))
		res.Sent++
		if len(batch) == 10 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return res, fmt.Errorf("trigger: %w", err)
	}
	return res, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
