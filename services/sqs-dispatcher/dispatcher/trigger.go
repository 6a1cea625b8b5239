package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/events"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// TriggerResult counts what Trigger did.
type TriggerResult struct {
	Sent      int `json:"sent"`       // messages sent (or, with DryRun, that would be)
	InFlight  int `json:"in_flight"`  // skipped: a processor for the key is running
	HasResult int `json:"has_result"` // skipped: DONE/ holds the result already
	Invalid   int `json:"invalid"`    // skipped: key outside TODO/<rel>.mp4 or the library rules
}

// TriggerOptions tune TriggerWith.
type TriggerOptions struct {
	// DryRun lists what would be sent and sends nothing.
	DryRun bool
	// Out receives one line per key sent or skipped ("send", "running",
	// "done", "invalid" and the key); nil: none.
	Out io.Writer
}

// Trigger re-queues every TODO/ object without a running processor or a
// result, as S3-event-shaped messages (re-process). l may be nil (nothing
// is running).
func Trigger(ctx context.Context, st storage.Store, q queue.Queue, l launch.Launcher, dryRun bool, log zerolog.Logger) (TriggerResult, error) {
	return TriggerWith(ctx, st, q, l, TriggerOptions{DryRun: dryRun}, log)
}

// TriggerWith is Trigger with options. It lists TODO/ page by page and
// sends in batches of 10 as it goes, so memory stays flat however many
// objects wait; DONE/ is listed once up front.
func TriggerWith(ctx context.Context, st storage.Store, q queue.Queue, l launch.Launcher, o TriggerOptions, log zerolog.Logger) (TriggerResult, error) {
	var res TriggerResult
	inflight := map[string]bool{}
	if l != nil {
		var err error
		if inflight, err = l.InFlight(ctx); err != nil {
			return res, fmt.Errorf("trigger: list running processors: %w", err)
		}
	}
	done := map[string]bool{}
	if err := storage.Walk(ctx, st, library.DonePrefix, func(o storage.Object) error {
		done[o.Key] = true
		return nil
	}); err != nil {
		return res, fmt.Errorf("trigger: list %s: %w", library.DonePrefix, err)
	}
	say := func(what, key string) {
		if o.Out != nil {
			fmt.Fprintf(o.Out, "%s\t%s\n", what, key)
		}
	}
	var batch []string
	flush := func() error {
		if len(batch) == 0 || o.DryRun {
			batch = batch[:0]
			return nil
		}
		err := q.Send(ctx, batch...)
		batch = batch[:0]
		return err
	}
	err := storage.Walk(ctx, st, library.TodoPrefix, func(obj storage.Object) error {
		rel, err := library.RelFromTodo(obj.Key)
		if err == nil && library.IsHevcName(rel) {
			err = errors.New("an encoded output is never re-encoded")
		}
		if err != nil {
			log.Warn().Str("key", obj.Key).Err(err).Msg("trigger: skipped")
			say("invalid", obj.Key)
			res.Invalid++
			return nil
		}
		if inflight[obj.Key] {
			say("running", obj.Key)
			res.InFlight++
			return nil
		}
		if dk, _ := library.DoneKey(rel); done[dk] {
			say("done", obj.Key)
			res.HasResult++
			return nil
		}
		log.Debug().Str("key", obj.Key).Bool("dry_run", o.DryRun).Msg("trigger")
		say("send", obj.Key)
		batch = append(batch, events.Created(st.Bucket(), obj.Key, obj.Size, "ObjectCreated:Put"))
		if len(batch) == 10 {
			if err := flush(); err != nil {
				return err
			}
		}
		res.Sent++
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return res, fmt.Errorf("trigger: %w", err)
	}
	log.Info().Int("sent", res.Sent).Int("in_flight", res.InFlight).Int("has_result", res.HasResult).
		Int("invalid", res.Invalid).Bool("dry_run", o.DryRun).Msg("trigger finished")
	return res, nil
}

// ErrNoRedrive is returned by Redrive for a queue without a dead-letter
// queue it can move back.
var ErrNoRedrive = errors.New("the work queue has no dead-letter queue to redrive")

// Redrive moves every message of q's dead-letter queue back to q. With
// dryRun it only reports how many wait there.
func Redrive(ctx context.Context, q queue.Queue, dryRun bool) (int, error) {
	r, ok := q.(queue.Redriver)
	if !ok {
		return 0, ErrNoRedrive
	}
	if dryRun {
		d, err := r.DeadLetterDepth(ctx)
		if err != nil {
			return 0, fmt.Errorf("redrive: dead-letter depth of %s: %w", q.Name(), err)
		}
		return d.Visible, nil
	}
	n, err := r.Redrive(ctx, 0)
	if err != nil {
		return n, fmt.Errorf("redrive to %s: %w", q.Name(), err)
	}
	return n, nil
}
