// Package queue is the message-queue port: the SQS subset the pipeline needs.
// Adapters: local (in-process; the embedded default) and sqs.
package queue

import (
	"context"
	"time"
)

// Message is one received message.
type Message struct {
	ID   string
	Body string
	// Receipt identifies this delivery for Delete and ChangeVisibility.
	Receipt string
	// ReceiveCount counts deliveries, this one included.
	ReceiveCount int
	// Sent is when the message was first sent to the queue (SQS's
	// SentTimestamp); zero when unknown.
	Sent time.Time
}

// Depth is the approximate size of a queue.
type Depth struct {
	Visible  int // waiting to be received
	InFlight int // received, not yet deleted, still invisible
	Delayed  int // sent, not yet visible (a delivery delay)
}

// Queue is the message-queue port. Delivery is at-least-once.
type Queue interface {
	// Name identifies the queue (its URL on SQS) for jobs and logs.
	Name() string
	// Receive waits up to wait for at most max messages (1..10) and hides
	// them for the queue's visibility timeout.
	Receive(ctx context.Context, max int, wait time.Duration) ([]Message, error)
	Delete(ctx context.Context, receipt string) error
	// ChangeVisibility hides the message for timeout from now; 0 makes it
	// visible again at once.
	ChangeVisibility(ctx context.Context, receipt string, timeout time.Duration) error
	// Send enqueues bodies (SQS batches of 10 are the adapter's business).
	Send(ctx context.Context, bodies ...string) error
	Depth(ctx context.Context) (Depth, error)
}

// Redriver is implemented by queues with a dead-letter queue whose messages
// can be moved back (trigger --redrive).
type Redriver interface {
	// Redrive moves up to max messages (max <= 0: all) from the DLQ back to
	// this queue and returns how many moved.
	Redrive(ctx context.Context, max int) (int, error)
	DeadLetterDepth(ctx context.Context) (Depth, error)
}
