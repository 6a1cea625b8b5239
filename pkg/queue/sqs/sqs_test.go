package sqs_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue/queuetest"
	sqsqueue "github.com/hevc-encoder/hevc-encoder/pkg/queue/sqs"
)

func TestMain(m *testing.M) { awstest.Main(m) }

var ctx = context.Background()

func TestContract(t *testing.T) {
	env := awstest.Shared(t)
	queuetest.Run(t, func(t *testing.T, visibility time.Duration, maxReceives int) queue.Queue {
		return env.NewScratchQueue(t, visibility, maxReceives)
	})
}

// receiveAll receives until n messages arrived or nothing more comes.
func receiveAll(t *testing.T, q queue.Queue, n int) []queue.Message {
	t.Helper()
	var out []queue.Message
	for empty := 0; len(out) < n && empty < 3; {
		ms, err := q.Receive(ctx, 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			empty++
		}
		out = append(out, ms...)
	}
	return out
}

func TestResolveByNameAndDeadLetterFromPolicy(t *testing.T) {
	env := awstest.Shared(t)
	cfg := env.QueueConfig("work")
	q, err := sqsqueue.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if q.Name() != env.WorkQueueURL || q.DeadLetterURL() != env.WorkDLQURL {
		t.Fatalf("resolved %q (DLQ %q), want %q (%q)", q.Name(), q.DeadLetterURL(), env.WorkQueueURL, env.WorkDLQURL)
	}
	// A local queue URL names its endpoint.
	q, err = sqsqueue.New(ctx, sqsqueue.Config{QueueURLOrName: env.ResultsQueueURL, DLQURLOrName: "results-dlq"})
	if err != nil {
		t.Fatal(err)
	}
	if q.DeadLetterURL() != env.ResultsDLQURL {
		t.Fatalf("DLQ %q, want %q", q.DeadLetterURL(), env.ResultsDLQURL)
	}
	if _, err := q.Depth(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sqsqueue.New(ctx, env.QueueConfig("no-such-queue")); err == nil || !strings.Contains(err.Error(), "no-such-queue") {
		t.Fatalf("want an error naming the queue, got %v", err)
	}
}

func TestSendBatchOf25AndDeleteBatch(t *testing.T) {
	env := awstest.Shared(t)
	q := env.NewScratchQueue(t, 30*time.Second, 0)
	var bodies []string
	for i := range 25 {
		bodies = append(bodies, fmt.Sprintf(`{"n":%d}`, i))
	}
	if err := q.Send(ctx, bodies...); err != nil {
		t.Fatal(err)
	}
	ms := receiveAll(t, q, 25)
	seen := map[string]bool{}
	var receipts []string
	for _, m := range ms {
		seen[m.Body] = true
		receipts = append(receipts, m.Receipt)
	}
	if len(ms) != 25 || len(seen) != 25 {
		t.Fatalf("received %d messages, %d distinct", len(ms), len(seen))
	}
	if err := q.DeleteBatch(ctx, receipts...); err != nil {
		t.Fatal(err)
	}
	d, err := q.Depth(ctx)
	if err != nil || d.Visible != 0 || d.InFlight != 0 {
		t.Fatalf("depth after delete: %+v %v", d, err)
	}
}

func TestSendReportsRejectedMessages(t *testing.T) {
	env := awstest.Shared(t)
	q := env.NewScratchQueue(t, 30*time.Second, 0)
	// An empty body is refused per entry (a partial batch failure).
	err := q.Send(ctx, "ok-1", "", "ok-2")
	if err == nil || !strings.Contains(err.Error(), "message 1") {
		t.Fatalf("want an error naming message 1, got %v", err)
	}
	ms := receiveAll(t, q, 2)
	if len(ms) != 2 {
		t.Fatalf("the valid messages of a partly failed send: got %d (%v)", len(ms), err)
	}
}

func TestRetriesThrottlingAndServerErrors(t *testing.T) {
	env := awstest.Shared(t)
	proxy := awstest.NewFaultProxy(t, env.SQSEndpoint)
	scratch := env.NewScratchQueue(t, 30*time.Second, 0)
	cfg := env.QueueConfig(scratch.Name())
	cfg.Endpoint = proxy.URL
	q, err := sqsqueue.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Fail(2, awstest.ServiceUnavailable, awstest.MatchTarget("SendMessageBatch"))
	proxy.Fail(2, awstest.InternalError, awstest.MatchTarget("ReceiveMessage"))
	proxy.Fail(1, awstest.ServiceUnavailable, awstest.MatchTarget("DeleteMessage"))
	proxy.Fail(1, awstest.InternalError, awstest.MatchTarget("ChangeMessageVisibility"))
	if err := q.Send(ctx, "a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	ms := receiveAll(t, q, 3)
	if len(ms) != 3 {
		t.Fatalf("received %d of 3", len(ms))
	}
	if err := q.ChangeVisibility(ctx, ms[0].Receipt, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if err := q.Delete(ctx, m.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	if n := proxy.Injected(); n != 6 {
		t.Fatalf("injected %d faults, want 6", n)
	}
}

func TestRedriveWithoutDLQ(t *testing.T) {
	env := awstest.Shared(t)
	dlq := env.WorkDLQURL // a queue without a RedrivePolicy
	q, err := sqsqueue.New(ctx, env.QueueConfig(dlq))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Redrive(ctx, 0); !errors.Is(err, sqsqueue.ErrNoDeadLetterQueue) {
		t.Fatalf("want ErrNoDeadLetterQueue, got %v", err)
	}
}

func TestRedriveLimit(t *testing.T) {
	env := awstest.Shared(t)
	q := env.NewScratchQueue(t, 30*time.Second, 0)
	dlq, err := sqsqueue.New(ctx, env.QueueConfig(q.DeadLetterURL()))
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for i := range 13 {
		bodies = append(bodies, fmt.Sprint("dead-", i))
	}
	if err := dlq.Send(ctx, bodies...); err != nil {
		t.Fatal(err)
	}
	n, err := q.Redrive(ctx, 12)
	if err != nil || n != 12 {
		t.Fatalf("redrive 12: %d %v", n, err)
	}
	n, err = q.Redrive(ctx, 0)
	if err != nil || n != 1 {
		t.Fatalf("redrive rest: %d %v", n, err)
	}
	if ms := receiveAll(t, q, 13); len(ms) != 13 {
		t.Fatalf("%d of 13 messages back on the queue", len(ms))
	}
}

// TestNoDeadLetterAndCheck: NoDeadLetter opens a queue without reading its
// attributes (hevc-processor's role may only heartbeat and delete); Check
// answers the SQS error of a queue that does not exist.
func TestNoDeadLetterAndCheck(t *testing.T) {
	env := awstest.Shared(t)
	cfg := env.QueueConfig(env.WorkQueueURL)
	cfg.NoDeadLetter = true
	q, err := sqsqueue.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.DeadLetterDepth(ctx); q.DeadLetterURL() != "" || !errors.Is(err, sqsqueue.ErrNoDeadLetterQueue) {
		t.Errorf("NoDeadLetter: DLQ %q, depth error %v", q.DeadLetterURL(), err)
	}
	if err := sqsqueue.Check(ctx, env.QueueConfig(env.WorkQueueURL)); err != nil {
		t.Errorf("check of the work queue: %v", err)
	}
	missing := env.QueueConfig(strings.TrimSuffix(env.SQSEndpoint, "/") + "/000000000000/no-such-queue")
	if err := sqsqueue.Check(ctx, missing); err == nil || !strings.Contains(err.Error(), "NonExistentQueue") {
		t.Errorf("check of a missing queue: %v", err)
	}
}
