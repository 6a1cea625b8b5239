package downloader

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/hevc-encoder/hevc-encoder/pkg/progress"
)

// OnceSummary is what RunOnce did.
type OnceSummary struct {
	Installed               int
	BytesBefore, BytesAfter int64
	// Problems lists "<key>: <outcome or error>" for results not installed.
	Problems []string
	// OriginalsKept lists "<key>: <why>" for results installed whose
	// original was kept in place: it changed since it was encoded, or it
	// could not be moved to the trash.
	OriginalsKept []string
}

// RunOnce installs every result DONE/ holds now (one reconcile pass) and
// returns; the error says how many were not installed. For cron jobs and
// benchmarks: no queue is needed.
func (d *Downloader) RunOnce(ctx context.Context) (OnceSummary, error) {
	var (
		mu  sync.Mutex
		sum OnceSummary
	)
	prev := d.OnResult
	d.OnResult = func(r Result) {
		mu.Lock()
		switch {
		case r.Outcome == Installed:
			if r.OriginalKept {
				sum.OriginalsKept = append(sum.OriginalsKept, fmt.Sprintf("%s: %s", r.Key, r.Reason))
			}
			sum.Installed++
			sum.BytesBefore += r.Before
			sum.BytesAfter += r.After
		case r.Outcome == Missing && r.Err == nil: // installed meanwhile by someone else
		case r.Err != nil:
			sum.Problems = append(sum.Problems, fmt.Sprintf("%s: %v", r.Key, r.Err))
		default:
			sum.Problems = append(sum.Problems, fmt.Sprintf("%s: %s: %s", r.Key, r.Outcome, r.Reason))
		}
		mu.Unlock()
		if prev != nil {
			prev(r)
		}
	}
	defer func() { d.OnResult = prev }()
	err := d.Reconcile(ctx)
	sort.Strings(sum.Problems)
	sort.Strings(sum.OriginalsKept)
	if ctx.Err() != nil {
		return sum, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if len(sum.Problems) > 0 {
		return sum, fmt.Errorf("%d result(s) not installed", len(sum.Problems))
	}
	return sum, err
}

// Print writes the summary for people.
func (s OnceSummary) Print(w io.Writer) {
	fmt.Fprintf(w, "installed %d result(s): %s → %s\n", s.Installed, progress.Bytes(s.BytesBefore), progress.Bytes(s.BytesAfter))
	if len(s.Problems) > 0 {
		fmt.Fprintf(w, "not installed %d:\n", len(s.Problems))
		for _, p := range s.Problems {
			fmt.Fprintln(w, "  "+p)
		}
	}
	if len(s.OriginalsKept) > 0 {
		fmt.Fprintf(w, "originals kept in place (changed since they were encoded, or the trash could not take them) %d:\n", len(s.OriginalsKept))
		for _, p := range s.OriginalsKept {
			fmt.Fprintln(w, "  "+p)
		}
	}
}
