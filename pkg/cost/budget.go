package cost

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// BudgetConfig is BUDGET_USD and the prices it is compared at.
type BudgetConfig struct {
	USD    float64 // per calendar month (UTC); 0: no budget
	Prices Prices
}

// Bind registers BUDGET_USD and the prices.
func (c *BudgetConfig) Bind(s *config.Set) {
	var raw string
	s.String(&raw, "BUDGET_USD", "0", "estimated AWS spend per calendar month (UTC) at which the dispatcher stops launching processors (messages stay in the queue) until the next month; 0: no budget")
	s.Check(func() error {
		f, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("BUDGET_USD must be an amount in USD (0 for none), got %q", raw)
		}
		c.USD = f
		return nil
	})
	c.Prices.Bind(s)
}

// Budget tells whether the month's estimate has reached the budget. It
// sums the month's records at most every Every (default a minute), and at
// once when the month changes. Safe for concurrent use.
type Budget struct {
	Cfg   BudgetConfig
	Store storage.Store
	// Now is the clock (tests set a fake one); default time.Now.
	Now   func() time.Time
	Every time.Duration

	mu      sync.Mutex
	checked time.Time // when last summed, by Now
	month   string
	est     Estimate
	err     error
}

// State is the outcome of a check.
type State struct {
	Estimate Estimate
	Budget   float64
	Reached  bool // the estimate is at or over the budget: do not launch
}

// Check returns the state, summing the records again when due. After a
// failed sum the last state stands (the error is returned with it); with
// none yet, the budget counts as not reached: a store outage stops the
// dispatcher's work by itself.
func (b *Budget) Check(ctx context.Context) (State, error) {
	now := time.Now()
	if b.Now != nil {
		now = b.Now()
	}
	every := b.Every
	if every <= 0 {
		every = time.Minute
	}
	month := now.UTC().Format("2006-01")
	b.mu.Lock()
	defer b.mu.Unlock()
	if month != b.month || b.checked.IsZero() || now.Sub(b.checked) >= every || now.Before(b.checked) {
		est, err := MonthEstimate(ctx, b.Store, b.Cfg.Prices, now)
		b.checked, b.err = now, err
		switch {
		case err == nil:
			b.est, b.month = est, month
		case month != b.month:
			b.est, b.month = b.Cfg.Prices.Price(month, Usage{}), month
		}
	}
	st := State{Estimate: b.est, Budget: b.Cfg.USD}
	st.Reached = b.Cfg.USD > 0 && b.est.Total >= b.Cfg.USD
	return st, b.err
}
