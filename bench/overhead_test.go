package bench

import (
	"math"
	"testing"
)

// A slow period that hits both sides of one run moves that run's ratio
// little; the ratio of the two medians takes it in full.
func TestPairedRatio(t *testing.T) {
	ours := []float64{90.76, 93.33, 82.9}
	bare := []float64{93.72, 81.87, 80.87}
	got := pairedRatio(ours, bare)
	if want := 82.9 / 80.87; math.Abs(got-want) > 1e-9 {
		t.Fatalf("pairedRatio = %v, want the middle run's %v", got, want)
	}
	if r := ratios(ours, bare[:2]); len(r) != 2 {
		t.Fatalf("ratios of unequal runs: %v, want 2 pairs", r)
	}
	if got := pairedRatio(nil, nil); got != 0 {
		t.Fatalf("pairedRatio of no runs = %v, want 0", got)
	}
}

// The equal-work anchor is each run's encode plus its decode, paired run
// by run; a failed decode (0 s) drops the row rather than flatter ours.
func TestEqualWorkRow(t *testing.T) {
	row, ok := equalWorkRow([]float64{4.6, 4.2, 4.4}, []float64{3.8, 3.6, 3.7}, []float64{0.5, 0.6, 0.5})
	if !ok {
		t.Fatal("no row for complete runs")
	}
	if want := 4.4 / 4.2; math.Abs(row.Ratio-want) > 1e-9 {
		t.Fatalf("ratio = %v, want the middle run's %v", row.Ratio, want)
	}
	if row.Anchor != 4.2 || row.Target != Info {
		t.Fatalf("anchor %v target %q, want 4.2 and info", row.Anchor, row.Target)
	}
	if _, ok := equalWorkRow([]float64{4.6}, []float64{3.8}, []float64{0}); ok {
		t.Fatal("a row although the decode failed")
	}
}
