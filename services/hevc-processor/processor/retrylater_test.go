package processor

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	sqsqueue "github.com/hevc-encoder/hevc-encoder/pkg/queue/sqs"
)

// A hand-back that fails for longer than the SDK's own retries (the stack
// test saw SQS out of reach for seconds from a job container that had just
// started) is tried again, so the message reappears after the backoff
// rather than after START_GRACE.
func TestRetryLaterOutlastsABriefOutage(t *testing.T) {
	e := awstest.Shared(t)
	ctx := context.Background()
	q := e.NewScratchQueue(t, 5*time.Minute, 5) // not handed back, it would stay hidden 5 min
	if err := q.Send(ctx, `{"Records":[]}`); err != nil {
		t.Fatal(err)
	}
	msgs, err := q.Receive(ctx, 1, time.Second)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive: %v, %d messages", err, len(msgs))
	}
	proxy := awstest.NewFaultProxy(t, e.SQSEndpoint)
	// More failures than one call's attempts: only a second call succeeds.
	proxy.Fail(2*sqsqueue.DefaultMaxAttempts, awstest.InternalError, awstest.MatchTarget("ChangeMessageVisibility"))
	cfg := e.QueueConfig(q.Name())
	cfg.Endpoint = proxy.URL
	pq, err := sqsqueue.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	handBackPause = 100 * time.Millisecond
	t.Cleanup(func() { handBackPause = 2 * time.Second })

	RetryLater(ctx, pq, launch.Job{Key: "TODO/a.mp4", Receipt: msgs[0].Receipt, ReceiveCount: 1}, zerolog.New(zerolog.NewTestWriter(t)))
	if proxy.Injected() != 2*sqsqueue.DefaultMaxAttempts {
		t.Fatalf("%d failures injected, want %d", proxy.Injected(), 2*sqsqueue.DefaultMaxAttempts)
	}
	// Handed back for the first backoff: hidden now, visible again after it.
	delay := queue.RetryDelay(1)
	waitVisible := time.Now().Add(delay + 20*time.Second)
	for {
		got, err := q.Receive(ctx, 1, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 {
			return
		}
		if time.Now().After(waitVisible) {
			t.Fatalf("the message did not come back within the %s backoff (+20 s)", delay)
		}
	}
}
