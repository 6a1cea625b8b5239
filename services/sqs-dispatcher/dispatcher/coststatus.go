package dispatcher

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/cost"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// CostStatus is status's cost section: the month's estimate from the
// COSTS/ records, and BUDGET_USD when set.
type CostStatus struct {
	cost.Estimate
	BudgetUSD float64 `json:"budget_usd,omitempty"`
	// BudgetReached: the dispatcher (with the same BUDGET_USD) launches
	// nothing until next month; messages wait in the queue.
	BudgetReached bool   `json:"budget_reached"`
	PricesRead    string `json:"prices_note"`
}

// CollectCost sums now's month of cost records at cfg's prices.
func CollectCost(ctx context.Context, st storage.Store, cfg cost.BudgetConfig, now time.Time) (*CostStatus, error) {
	est, err := cost.MonthEstimate(ctx, st, cfg.Prices, now)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	cs := &CostStatus{Estimate: est, BudgetUSD: cfg.USD, PricesRead: "prices from configuration; defaults: " + cost.PricesRead}
	cs.BudgetReached = cfg.USD > 0 && est.Total >= cfg.USD
	return cs, nil
}

func (c *CostStatus) writeTable(w io.Writer) {
	if c == nil {
		return
	}
	u := c.Usage
	fmt.Fprintf(w, "\nCOST %s (estimate, UTC month)\t$%.2f\n", c.Month, c.Total)
	fmt.Fprintf(w, "  compute: %d job(s), %.0f vCPU-s, %.0f GB-s\t$%.2f\n", u.Jobs, u.VCPUSeconds, u.GBSeconds, c.Compute)
	fmt.Fprintf(w, "  transfer out: results %s\t$%.2f\n", humanBytes(u.ResultBytes), c.Transfer)
	fmt.Fprintf(w, "  prices: $%g per vCPU-hour, $%g per GB-hour, $%g per GB out (FARGATE_SPOT_VCPU_HOUR, FARGATE_SPOT_GB_HOUR, S3_TRANSFER_OUT_GB)\n",
		c.Prices.VCPUHour, c.Prices.GBHour, c.Prices.TransferOutGB)
	switch {
	case c.BudgetUSD <= 0:
		fmt.Fprintln(w, "  budget: none (BUDGET_USD)")
	case c.BudgetReached:
		fmt.Fprintf(w, "  budget: $%.2f REACHED: the dispatcher launches nothing until next month (or a restart with a higher BUDGET_USD); messages wait in the queue\n", c.BudgetUSD)
	default:
		fmt.Fprintf(w, "  budget: $%.2f (%.0f %% used)\n", c.BudgetUSD, 100*c.Total/c.BudgetUSD)
	}
}
