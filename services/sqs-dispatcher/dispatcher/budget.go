package dispatcher

import (
	"context"
	"sync"

	"github.com/hevc-encoder/hevc-encoder/pkg/cost"
)

// Budget is the BUDGET_USD gate: the month's estimate (cost.Budget) and
// the state last logged, so that the log says when launching stops and
// resumes rather than at every check.
type Budget struct {
	cost.Budget

	mu      sync.Mutex
	known   bool
	reached bool
	failing bool
}

// budgetReached reports whether the month's estimated cost has reached
// BUDGET_USD. While it has, Run receives nothing (messages stay in the
// queue, untouched) until the month changes or the dispatcher is
// restarted with a higher BUDGET_USD.
func (d *Dispatcher) budgetReached(ctx context.Context) bool {
	b := d.Budget
	if b == nil || b.Cfg.USD <= 0 {
		return false
	}
	st, err := b.Check(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil && ctx.Err() == nil && !b.failing {
		d.Log.Error().Err(err).Bool("budget_reached", st.Reached).Msg("cannot sum this month's cost records; the last estimate stands")
	}
	b.failing = err != nil
	if !b.known || st.Reached != b.reached {
		ev := d.Log.Info()
		msg := "monthly budget not reached; launching"
		if st.Reached {
			ev = d.Log.Warn()
			msg = "monthly budget reached: launching stopped, messages stay in the queue until next month (or a restart with a higher BUDGET_USD)"
		}
		ev.Str("month", st.Estimate.Month).Float64("estimate_usd", round2(st.Estimate.Total)).Float64("budget_usd", st.Budget).
			Int("jobs", st.Estimate.Usage.Jobs).Msg(msg)
		b.known, b.reached = true, st.Reached
	}
	return st.Reached
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
