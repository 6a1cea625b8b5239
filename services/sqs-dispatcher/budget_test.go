package main

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/cost"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch/local"
	"github.com/hevc-encoder/hevc-encoder/services/sqs-dispatcher/dispatcher"
)

// fakeClock is the budget's clock; it counts its readings, one per pass of
// the dispatch loop, so that the test can let the loop go round without
// sleeping for a guessed time.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	reads atomic.Int64
}

func (c *fakeClock) Now() time.Time {
	c.reads.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// Point 5: once the month's estimate reaches BUDGET_USD the dispatcher
// launches nothing and leaves the messages in the queue, untouched (MinIO
// holds the cost records, local-aws-sqs the messages); it logs that once.
// When the (fake) clock enters the next month, it launches them.
func TestBudgetStopsLaunchingUntilNextMonth(t *testing.T) {
	env := awstest.Shared(t)
	ctx := context.Background()
	st := env.NewScratchStore(t)
	q := env.NewScratchQueue(t, 30*time.Second, 5)
	dec := time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: dec}

	// December so far: one 4-vCPU task for an hour at $1 per vCPU-hour.
	if _, err := cost.Write(ctx, st, cost.NewRecord("TODO/earlier.mp4", "done", dec.Add(-time.Hour), time.Hour, cost.TaskSize{VCPU: 4, MemoryGiB: 8}, 0)); err != nil {
		t.Fatal(err)
	}
	keys := []string{"TODO/budget/a.mp4", "TODO/budget/b.mp4"}
	b := clip(t, false)
	for _, k := range keys {
		put(t, st, k, b)
	}
	sendEvents(t, env, q.Name(), st.Bucket(), keys...)

	var mu sync.Mutex
	var launched []string
	rctx, cancel := context.WithCancel(ctx)
	l := local.New(rctx, func(ctx context.Context, j launch.Job) error {
		mu.Lock()
		launched = append(launched, j.Key)
		mu.Unlock()
		return q.Delete(ctx, j.Receipt) // the job is done
	}, 4, nil)
	logs := &syncBuffer{}
	d := &dispatcher.Dispatcher{Store: st, Queue: q, Launcher: l, Log: zerolog.New(logs),
		Cfg:    dispatcher.Config{Wait: time.Second, Busy: 100 * time.Millisecond, StartGrace: time.Minute},
		Budget: &dispatcher.Budget{Budget: cost.Budget{Cfg: cost.BudgetConfig{USD: 4, Prices: cost.Prices{VCPUHour: 1}}, Store: st, Now: clock.Now}}}
	done := make(chan error, 1)
	go func() { done <- d.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		l.Wait()
	})

	// The loop goes round many times while the budget holds.
	waitFor(t, time.Minute, "the dispatch loop checking the budget 20 times", func() (bool, error) { return clock.reads.Load() >= 20, nil })
	mu.Lock()
	n := len(launched)
	mu.Unlock()
	if n != 0 {
		t.Fatalf("launched %d job(s) over the budget", n)
	}
	if v, i := depth(t, env, q.Name()); v != 2 || i != 0 {
		t.Errorf("work queue: %d visible, %d in flight; want both messages left visible (never received)", v, i)
	}
	for _, k := range keys {
		if !exists(t, st, k) {
			t.Errorf("LOST: %s", k)
		}
	}

	clock.set(time.Date(2027, 1, 1, 0, 0, 1, 0, time.UTC))
	waitFor(t, time.Minute, "both jobs launched in January", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(launched) == 2, nil
	})
	waitDrained(t, env, q.Name())
	mu.Lock()
	got := append([]string(nil), launched...)
	mu.Unlock()
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(keys, ",") {
		t.Errorf("launched %v, want %v once each", got, keys)
	}

	// Logged once per change of state: reached (December), then not
	// reached (January).
	var states []string
	for _, e := range logs.entries(t) {
		if m, _ := e["message"].(string); strings.Contains(m, "monthly budget") {
			b, _ := json.Marshal(map[string]any{"month": e["month"], "estimate": e["estimate_usd"], "level": e["level"]})
			states = append(states, string(b))
		}
	}
	want := []string{`{"estimate":4,"level":"warn","month":"2026-12"}`, `{"estimate":0,"level":"info","month":"2027-01"}`}
	if strings.Join(states, " ") != strings.Join(want, " ") {
		t.Errorf("budget log lines %v, want %v", states, want)
	}
}

// status shows the month's estimate and, with BUDGET_USD, that it is
// reached.
func TestStatusShowsCost(t *testing.T) {
	env := awstest.Shared(t)
	ctx := context.Background()
	st := env.NewScratchStore(t)
	q := env.NewScratchQueue(t, 30*time.Second, 3)
	now := time.Now()
	// 2 vCPU for 30 minutes and a 2 GB result.
	if _, err := cost.Write(ctx, st, cost.NewRecord("TODO/a.mp4", "done", now, 30*time.Minute, cost.TaskSize{VCPU: 2, MemoryGiB: 4}, 2e9)); err != nil {
		t.Fatal(err)
	}
	m := vars(env, st.Bucket(), q.Name(), nil, map[string]string{
		"FARGATE_SPOT_VCPU_HOUR": "1", "FARGATE_SPOT_GB_HOUR": "0", "S3_TRANSFER_OUT_GB": "0.5", "BUDGET_USD": "2",
	})
	delete(m, "ECS_CLUSTER")
	out, err := command(t, m, "status", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Cost struct {
			Month         string  `json:"month"`
			Total         float64 `json:"total_usd"`
			Budget        float64 `json:"budget_usd"`
			BudgetReached bool    `json:"budget_reached"`
			Usage         struct {
				Jobs int `json:"jobs"`
			} `json:"usage"`
		} `json:"cost"`
	}
	jsonField(t, out, &s)
	// $1 of compute, $1 of transfer out.
	if s.Cost.Month != now.UTC().Format("2006-01") || s.Cost.Total != 2 || s.Cost.Budget != 2 || !s.Cost.BudgetReached || s.Cost.Usage.Jobs != 1 {
		t.Errorf("cost section %+v\n%s", s.Cost, out)
	}
	if bad := nonSnakeKeys(jsonAny(t, out), ""); len(bad) > 0 {
		t.Errorf("non-snake_case keys %v", bad)
	}
	table, err := command(t, m, "status")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("status:\n%s", table)
	if !strings.Contains(table, "COST "+s.Cost.Month) || !strings.Contains(table, "$2.00") || !strings.Contains(table, "REACHED") {
		t.Errorf("status table:\n%s", table)
	}
}

func jsonAny(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}
