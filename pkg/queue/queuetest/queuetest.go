// Package queuetest is the contract every queue.Queue adapter passes.
package queuetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
)

// NewFunc returns an empty queue with the given visibility timeout whose
// dead-letter queue takes messages after maxReceives deliveries.
type NewFunc func(t *testing.T, visibility time.Duration, maxReceives int) queue.Queue

// Run runs the contract. Visibility timeouts are whole seconds because SQS
// has no finer unit; waits are generous, and nothing asserts on elapsed time.
func Run(t *testing.T, newQueue NewFunc) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, NewFunc)
	}{
		{"SendReceiveDelete", sendReceiveDelete},
		{"VisibilityRedeliveryAndHeartbeat", visibilityRedeliveryAndHeartbeat},
		{"DeadLetterAfterMaxReceivesAndRedrive", deadLetterAfterMaxReceivesAndRedrive},
		{"StaleReceiptRejected", staleReceiptRejected},
		{"Depth", depth},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newQueue) })
	}
}

// recv receives until it has n messages or wait has passed.
func recv(t *testing.T, q queue.Queue, n int, wait time.Duration) []queue.Message {
	t.Helper()
	var out []queue.Message
	deadline := time.Now().Add(wait)
	for len(out) < n && time.Now().Before(deadline) {
		ms, err := q.Receive(context.Background(), min(10, n-len(out)), 1*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ms...)
	}
	return out
}

func sendReceiveDelete(t *testing.T, newQueue NewFunc) {
	ctx := context.Background()
	q := newQueue(t, 30*time.Second, 0)
	var bodies []string
	for i := 0; i < 25; i++ {
		bodies = append(bodies, fmt.Sprintf("m%02d", i))
	}
	sent := time.Now()
	if err := q.Send(ctx, bodies...); err != nil {
		t.Fatal(err)
	}
	ms := recv(t, q, 25, 20*time.Second)
	if len(ms) != 25 {
		t.Fatalf("received %d of 25", len(ms))
	}
	seen := map[string]bool{}
	for _, m := range ms {
		if seen[m.Body] || m.ReceiveCount != 1 {
			t.Fatalf("duplicate or re-received %+v", m)
		}
		// Sent (SQS's SentTimestamp, in milliseconds) is when it was
		// sent: the metrics' age of the oldest message. Bounds of a
		// minute either way: a sanity check, not a timing one.
		if m.Sent.Before(sent.Add(-time.Minute)) || m.Sent.After(time.Now().Add(time.Minute)) {
			t.Fatalf("message %s: sent at %v, sent from here at %v", m.Body, m.Sent, sent)
		}
		seen[m.Body] = true
		if err := q.Delete(ctx, m.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	if more, _ := q.Receive(ctx, 10, time.Second); len(more) != 0 {
		t.Fatalf("deleted messages came back: %+v", more)
	}
}

func visibilityRedeliveryAndHeartbeat(t *testing.T, newQueue NewFunc) {
	ctx := context.Background()
	q := newQueue(t, 2*time.Second, 0)
	if err := q.Send(ctx, "a", "b"); err != nil {
		t.Fatal(err)
	}
	ms := recv(t, q, 2, 10*time.Second)
	if len(ms) != 2 {
		t.Fatalf("got %d", len(ms))
	}
	var a, b queue.Message
	for _, m := range ms {
		if m.Body == "a" {
			a = m
		} else {
			b = m
		}
	}
	// a is heart-beaten well past the timeout; b is released at once.
	if err := q.ChangeVisibility(ctx, a.Receipt, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := q.ChangeVisibility(ctx, b.Receipt, 0); err != nil {
		t.Fatal(err)
	}
	again := recv(t, q, 1, 10*time.Second)
	if len(again) != 1 || again[0].Body != "b" || again[0].ReceiveCount != 2 {
		t.Fatalf("want b redelivered with count 2, got %+v", again)
	}
	// Not deleted: b comes back after its timeout on its own.
	again = recv(t, q, 1, 15*time.Second)
	if len(again) != 1 || again[0].Body != "b" || again[0].ReceiveCount != 3 {
		t.Fatalf("want b again after timeout, got %+v", again)
	}
	if err := q.Delete(ctx, again[0].Receipt); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(ctx, a.Receipt); err != nil {
		t.Fatal(err)
	}
}

func deadLetterAfterMaxReceivesAndRedrive(t *testing.T, newQueue NewFunc) {
	ctx := context.Background()
	q := newQueue(t, 1*time.Second, 2)
	if err := q.Send(ctx, "poison"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		ms := recv(t, q, 1, 15*time.Second)
		if len(ms) != 1 || ms[0].ReceiveCount != i {
			t.Fatalf("receive %d: %+v", i, ms)
		}
		if err := q.ChangeVisibility(ctx, ms[0].Receipt, 0); err != nil {
			t.Fatal(err)
		}
	}
	if ms := recv(t, q, 1, 4*time.Second); len(ms) != 0 {
		t.Fatalf("poison message delivered a third time: %+v", ms)
	}
	rd, ok := q.(queue.Redriver)
	if !ok {
		return
	}
	var dl queue.Depth
	for i := 0; i < 20 && dl.Visible == 0; i++ {
		dl, _ = rd.DeadLetterDepth(ctx)
		if dl.Visible == 0 {
			time.Sleep(500 * time.Millisecond)
		}
	}
	if dl.Visible != 1 {
		t.Fatalf("dead-letter depth %+v", dl)
	}
	n, err := rd.Redrive(ctx, 0)
	if err != nil || n != 1 {
		t.Fatalf("redrive: %d %v", n, err)
	}
	ms := recv(t, q, 1, 15*time.Second)
	if len(ms) != 1 || ms[0].Body != "poison" {
		t.Fatalf("redriven message: %+v", ms)
	}
	q.Delete(ctx, ms[0].Receipt)
}

func staleReceiptRejected(t *testing.T, newQueue NewFunc) {
	ctx := context.Background()
	q := newQueue(t, 1*time.Second, 0)
	q.Send(ctx, "x")
	first := recv(t, q, 1, 10*time.Second)
	second := recv(t, q, 1, 15*time.Second) // after the timeout
	if len(first) != 1 || len(second) != 1 {
		t.Fatal("no delivery")
	}
	if err := q.Delete(ctx, second[0].Receipt); err != nil {
		t.Fatal(err)
	}
}

func depth(t *testing.T, newQueue NewFunc) {
	ctx := context.Background()
	q := newQueue(t, 30*time.Second, 0)
	q.Send(ctx, "1", "2", "3")
	recv(t, q, 1, 10*time.Second)
	var d queue.Depth
	for i := 0; i < 20; i++ { // SQS depths are approximate and lag
		d, _ = q.Depth(ctx)
		if d.Visible == 2 && d.InFlight == 1 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("depth %+v, want 2 visible 1 in flight", d)
}
