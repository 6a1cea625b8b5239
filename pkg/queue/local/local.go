// Package local is the embedded queue: in-process, with SQS semantics that
// matter here — visibility timeout, receive count, and a dead-letter queue
// after MaxReceives deliveries.
package local

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
)

type msg struct {
	id, body, receipt string
	receives          int
	visibleAt         time.Time
	sent              time.Time
}

// Queue is an in-memory queue. Its zero value is not usable; use New.
type Queue struct {
	name        string
	visibility  time.Duration
	maxReceives int
	dlq         *Queue

	mu      sync.Mutex
	msgs    []*msg
	wake    chan struct{} // closed and replaced on every Send/visibility change
	counter atomic.Int64
	now     func() time.Time
}

var (
	_ queue.Queue    = (*Queue)(nil)
	_ queue.Redriver = (*Queue)(nil)
)

// New makes a queue. With maxReceives > 0 a message received that many times
// without being deleted moves to dlq on its next receive (as SQS's
// maxReceiveCount); dlq may be nil to drop it instead.
func New(name string, visibility time.Duration, maxReceives int, dlq *Queue) *Queue {
	return &Queue{name: name, visibility: visibility, maxReceives: maxReceives, dlq: dlq, wake: make(chan struct{}), now: time.Now}
}

// Name implements queue.Queue.
func (q *Queue) Name() string { return q.name }

func (q *Queue) signal() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// Send implements queue.Queue.
func (q *Queue) Send(_ context.Context, bodies ...string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, b := range bodies {
		q.msgs = append(q.msgs, &msg{id: q.name + "-" + strconv.FormatInt(q.counter.Add(1), 10), body: b, sent: q.now()})
	}
	q.signal()
	return nil
}

// Receive implements queue.Queue.
func (q *Queue) Receive(ctx context.Context, max int, wait time.Duration) ([]queue.Message, error) {
	if max < 1 || max > 10 {
		return nil, fmt.Errorf("receive from %s: max must be 1..10, got %d", q.name, max)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		q.mu.Lock()
		out, next := q.take(max)
		wake := q.wake
		q.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		var retry <-chan time.Time
		if !next.IsZero() {
			retry = time.After(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, nil
		case <-wake:
		case <-retry:
		}
	}
}

// take hides up to max visible messages; it also returns when the next
// hidden message becomes visible. Caller holds q.mu.
func (q *Queue) take(max int) ([]queue.Message, time.Time) {
	now := q.now()
	var out []queue.Message
	var next time.Time
	kept := q.msgs[:0]
	for _, m := range q.msgs {
		if len(out) < max && !m.visibleAt.After(now) {
			if q.maxReceives > 0 && m.receives >= q.maxReceives {
				if q.dlq != nil {
					q.dlq.Send(context.Background(), m.body)
				}
				continue
			}
			m.receives++
			m.receipt = m.id + "#" + strconv.FormatInt(q.counter.Add(1), 10)
			m.visibleAt = now.Add(q.visibility)
			out = append(out, queue.Message{ID: m.id, Body: m.body, Receipt: m.receipt, ReceiveCount: m.receives, Sent: m.sent})
		}
		if m.visibleAt.After(now) && (next.IsZero() || m.visibleAt.Before(next)) {
			next = m.visibleAt
		}
		kept = append(kept, m)
	}
	q.msgs = kept
	return out, next
}

func (q *Queue) find(receipt string) (int, error) {
	for i, m := range q.msgs {
		if m.receipt == receipt && receipt != "" {
			return i, nil
		}
	}
	return -1, fmt.Errorf("queue %s: receipt handle %q is not current (message deleted, or received again since)", q.name, receipt)
}

// Delete implements queue.Queue.
func (q *Queue) Delete(_ context.Context, receipt string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	i, err := q.find(receipt)
	if err != nil {
		return err
	}
	q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
	return nil
}

// ChangeVisibility implements queue.Queue.
func (q *Queue) ChangeVisibility(_ context.Context, receipt string, timeout time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	i, err := q.find(receipt)
	if err != nil {
		return err
	}
	q.msgs[i].visibleAt = q.now().Add(timeout)
	q.signal()
	return nil
}

// Depth implements queue.Queue.
func (q *Queue) Depth(_ context.Context) (queue.Depth, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var d queue.Depth
	now := q.now()
	for _, m := range q.msgs {
		if m.visibleAt.After(now) {
			d.InFlight++
		} else {
			d.Visible++
		}
	}
	return d, nil
}

// Redrive implements queue.Redriver.
func (q *Queue) Redrive(ctx context.Context, max int) (int, error) {
	if q.dlq == nil {
		return 0, fmt.Errorf("queue %s has no dead-letter queue", q.name)
	}
	q.dlq.mu.Lock()
	var moved []string
	kept := q.dlq.msgs[:0]
	now := q.dlq.now()
	for _, m := range q.dlq.msgs {
		if (max <= 0 || len(moved) < max) && !m.visibleAt.After(now) {
			moved = append(moved, m.body)
			continue
		}
		kept = append(kept, m)
	}
	q.dlq.msgs = kept
	q.dlq.mu.Unlock()
	return len(moved), q.Send(ctx, moved...)
}

// DeadLetterDepth implements queue.Redriver.
func (q *Queue) DeadLetterDepth(ctx context.Context) (queue.Depth, error) {
	if q.dlq == nil {
		return queue.Depth{}, nil
	}
	return q.dlq.Depth(ctx)
}
