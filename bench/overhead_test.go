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
