package bench

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Issue 18: the fixed cost per job is split by the processor's log stamps,
// and the row reports the median of the runs against bare ffmpeg's
// one-frame run.
func TestFixedCostRow(t *testing.T) {
	start := time.Date(2026, 12, 3, 23, 0, 0, 0, time.UTC)
	log := strings.Join([]string{
		`{"level":"debug","time":"2026-12-03T23:00:00.100Z","message":"head"}`,
		`{"level":"debug","time":"2026-12-03T23:00:00.300Z","message":"probed input"}`,
		`{"level":"info","time":"2026-12-03T23:00:01.000Z","message":"encoding"}`,
		`{"level":"info","time":"2026-12-03T23:00:04.300Z","message":"encoded; video decoded during the encode"}`,
		`{"level":"debug","time":"2026-12-03T23:00:04.700Z","message":"output verified"}`,
		`{"level":"debug","time":"2026-12-03T23:00:04.720Z","message":"verified and uploaded"}`,
		"not json",
	}, "\n")
	p := filepath.Join(t.TempDir(), "p.log")
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := fixedSteps(p, start, start.Add(4800*time.Millisecond))
	want := map[string]float64{"start_to_head": 0.1, "probe_after_head": 0.2, "verify_after_encode": 0.4, "commit": 0.02, "deletes_and_exit": 0.08}
	for k, v := range want {
		if got, ok := steps[k]; !ok || got < v-1e-9 || got > v+1e-9 {
			t.Errorf("step %s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	enc, ok := encodePhase(p)
	if !ok || enc < 3.999 || enc > 4.001 {
		t.Fatalf("encode phase %v %v, want 4 s", enc, ok)
	}
	runs := []procRun{{Encode: 4, Around: 0.8, Steps: steps}, {Encode: 4, Around: 0.6, Steps: steps}, {Encode: 4, Around: 0.7, Steps: steps}}
	r, ok := fixedCostRow(overheadClip(quick), runs, []float64{0.3, 0.35, 0.4})
	if !ok || r.Issue != 18 || r.Ours != 0.7 || r.Unit != "s" || r.Target != Info || r.Anchor != 0.35 {
		t.Fatalf("row %+v, want issue 18, 0.7 s against 0.35 s, reported", r)
	}
	if !strings.Contains(r.Notes, "verify after encode 0.400") {
		t.Errorf("notes lack the step medians: %s", r.Notes)
	}
	if _, ok := fixedCostRow(overheadClip(quick), []procRun{{}}, []float64{0.3}); ok {
		t.Error("a row without the log stamps")
	}
	args := seedOneFrame("in.mp4", "out.mp4")
	if i := slices.Index(args, "-frames:v"); i < 0 || args[i+1] != "1" || args[len(args)-1] != "out.mp4" || slices.Index(args, "out.mp4") != len(args)-1 {
		t.Errorf("seedOneFrame = %q", args)
	}
}
