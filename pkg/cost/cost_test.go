package cost_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/cost"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage/fs"
)

func store(t *testing.T) storage.Store {
	t.Helper()
	st, err := fs.New(t.TempDir(), "costs")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

var size = cost.TaskSize{VCPU: 4, MemoryGiB: 8}

// A record bills at least Fargate's minute, and its key carries its
// figures.
func TestRecord(t *testing.T) {
	end := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	short := cost.NewRecord("TODO/a.mp4", "done", end, 20*time.Second, size, 1234)
	if !near(short.VCPUSeconds, 240) || !near(short.GBSeconds, 480) || short.Seconds != 20 {
		t.Errorf("20 s on 4 vCPU / 8 GiB: %+v, want the minute billed (240 vCPU-s, 480 GB-s)", short)
	}
	long := cost.NewRecord("TODO/a.mp4", "done", end, 150*time.Second+500*time.Millisecond, size, 0)
	if !near(long.VCPUSeconds, 602) || !near(long.GBSeconds, 1204) {
		t.Errorf("150.5 s: %+v", long)
	}
	k := short.ObjectKey()
	if !strings.HasPrefix(k, "COSTS/2026-12/20261204T030000.000Z-") || !strings.HasSuffix(k, ".v240000.g480000.b1234.json") {
		t.Errorf("key %s", k)
	}
	if k == short.ObjectKey() {
		t.Errorf("two records of the same instant share the key %s", k)
	}
}

// The month's estimate sums that month's records only, from their keys or,
// for a key that does not say, from the record itself.
func TestMonthEstimate(t *testing.T) {
	ctx := context.Background()
	st := store(t)
	dec := time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)
	for _, r := range []cost.Record{
		cost.NewRecord("TODO/a.mp4", "done", dec, 10*time.Minute, size, 2e9),
		cost.NewRecord("TODO/b.mp4", "failed", dec.Add(time.Hour), 30*time.Second, size, 0),
		cost.NewRecord("TODO/c.mp4", "done", dec.AddDate(0, -1, 0), time.Hour, size, 5e9), // November
	} {
		if _, err := cost.Write(ctx, st, r); err != nil {
			t.Fatal(err)
		}
	}
	// A record under a key without figures (written by hand, or by an
	// older version) is read.
	body := `{"key":"TODO/d.mp4","vcpu_seconds":100,"gb_seconds":200,"result_bytes":1000000000}`
	if _, err := st.Put(ctx, "COSTS/2026-12/by-hand.json", strings.NewReader(body), storage.PutOptions{Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	u, err := cost.MonthUsage(ctx, st, dec)
	if err != nil {
		t.Fatal(err)
	}
	want := cost.Usage{Jobs: 3, VCPUSeconds: 4*600 + 4*60 + 100, GBSeconds: 8*600 + 8*60 + 200, ResultBytes: 3e9}
	if u.Jobs != want.Jobs || !near(u.VCPUSeconds, want.VCPUSeconds) || !near(u.GBSeconds, want.GBSeconds) || u.ResultBytes != want.ResultBytes {
		t.Errorf("December: %+v, want %+v", u, want)
	}
	p := cost.Prices{VCPUHour: 0.036, GBHour: 0.0036, TransferOutGB: 0.1}
	e, err := cost.MonthEstimate(ctx, st, p, dec)
	if err != nil {
		t.Fatal(err)
	}
	compute := want.VCPUSeconds/3600*0.036 + want.GBSeconds/3600*0.0036
	if e.Month != "2026-12" || !near(e.Compute, compute) || !near(e.Transfer, 0.3) || !near(e.Total, compute+0.3) {
		t.Errorf("estimate %+v, want compute %.6f transfer 0.3", e, compute)
	}
	if u, _ := cost.MonthUsage(ctx, st, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)); u.Jobs != 0 {
		t.Errorf("January: %+v", u)
	}
}

// The budget is reached at the estimate, stays reached within the month,
// and clears when the (fake) clock enters the next month.
func TestBudgetMonthRollover(t *testing.T) {
	ctx := context.Background()
	st := store(t)
	now := time.Date(2026, 12, 31, 23, 58, 0, 0, time.UTC)
	p := cost.Prices{VCPUHour: 1, GBHour: 0, TransferOutGB: 0}
	b := &cost.Budget{Cfg: cost.BudgetConfig{USD: 1, Prices: p}, Store: st, Now: func() time.Time { return now }}
	if s, err := b.Check(ctx); err != nil || s.Reached {
		t.Fatalf("no records: %+v %v", s, err)
	}
	// 4 vCPU for 15 minutes at $1 per vCPU-hour: $1.
	if _, err := cost.Write(ctx, st, cost.NewRecord("TODO/a.mp4", "done", now, 15*time.Minute, size, 0)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(30 * time.Second) // within the minute: the last sum stands
	if s, _ := b.Check(ctx); s.Reached {
		t.Errorf("re-summed before a minute passed: %+v", s)
	}
	now = now.Add(30 * time.Second) // a minute after the first sum
	s, err := b.Check(ctx)
	if err != nil || !s.Reached || !near(s.Estimate.Total, 1) {
		t.Fatalf("at $1 of $1: %+v %v", s, err)
	}
	now = now.Add(61 * time.Second) // 2027-01-01T00:00:01Z
	if s, err := b.Check(ctx); err != nil || s.Reached || s.Estimate.Month != "2027-01" || s.Estimate.Usage.Jobs != 0 {
		t.Errorf("next month: %+v %v", s, err)
	}
}

func TestConfig(t *testing.T) {
	env := map[string]string{}
	parse := func() (cost.BudgetConfig, cost.TaskSize, error) {
		var b cost.BudgetConfig
		var ts cost.TaskSize
		set := config.New("t", "")
		set.SetGetenv(func(k string) string { return env[k] })
		b.Bind(set)
		ts.Bind(set)
		return b, ts, set.Parse(nil)
	}
	b, ts, err := parse()
	if err != nil || b.USD != 0 || b.Prices != cost.DefaultPrices() || ts.Known() {
		t.Errorf("defaults: %+v %+v %v", b, ts, err)
	}
	env = map[string]string{"BUDGET_USD": "25.5", "FARGATE_SPOT_VCPU_HOUR": "0.02", "TASK_VCPU": "4", "TASK_MEMORY_GIB": "8"}
	if b, ts, err = parse(); err != nil || b.USD != 25.5 || b.Prices.VCPUHour != 0.02 || ts != size {
		t.Errorf("set: %+v %+v %v", b, ts, err)
	}
	for k, v := range map[string]string{"BUDGET_USD": "lots", "FARGATE_SPOT_GB_HOUR": "-1", "TASK_VCPU": "4"} {
		env = map[string]string{k: v}
		if _, _, err := parse(); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v, want an error naming it", k, v, err)
		}
	}
}
