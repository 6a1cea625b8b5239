package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/history"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

// TestSummaryFromHistory: every file the embedded pipeline finishes
// (converted, failed, no gain) leaves one line in the library's history,
// and the end-of-run summary counts this run's lines, with the whole
// history's totals under the table. A second run (lossless settings, so
// its one new file gains nothing) counts only its own line.
func TestSummaryFromHistory(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	root := t.TempDir()
	clips := []clip{
		{rel: "a/one.mp4", opts: meta, want: "converted"},
		{rel: "a/two.mp4", opts: meta, want: "converted"},
		{rel: "bad/zero.mp4", make: func(t *testing.T, p string) { mediatest.ZeroBytes(t, p) }, want: "failed"},
	}
	sums := makeLibrary(t, root, clips)
	sizes := map[string]int64{}
	for _, c := range clips {
		fi, _ := os.Stat(filepath.Join(root, filepath.FromSlash(c.rel)))
		sizes[c.rel] = fi.Size()
	}

	sum := run(t, root)
	var b strings.Builder
	sum.Print(&b)
	t.Logf("first run:\n%s", b.String())
	lines, damaged, err := history.ReadFile(history.Path(root))
	if err != nil || damaged != 0 || len(lines) != 3 {
		t.Fatalf("history after the first run: %d lines, %d damaged, %v: %+v", len(lines), damaged, err, lines)
	}
	by := map[string]history.Entry{}
	var before, after int64
	for _, e := range lines {
		by[e.Key] = e
		if e.Outcome == history.Converted {
			before += e.BytesBefore
			after += e.BytesAfter
		}
		if e.Run == "" || e.Time.IsZero() {
			t.Errorf("line without run or time: %+v", e)
		}
	}
	for _, rel := range []string{"a/one.mp4", "a/two.mp4"} {
		e := by[rel]
		if e.Outcome != history.Converted || e.BytesBefore != sizes[rel] || e.BytesAfter <= 0 || e.EncodeSeconds <= 0 {
			t.Errorf("%s: %+v", rel, e)
		}
		checkConverted(t, root, rel, probe(t, filepath.Join(root, filepath.FromSlash(library.HevcRel(rel)))))
	}
	if e := by["bad/zero.mp4"]; e.Outcome != history.Failed || !strings.Contains(e.Reason, "empty") {
		t.Errorf("bad/zero.mp4: %+v", e)
	}
	if got := sha(t, filepath.Join(root, "bad", "zero.mp4")); got != sums["bad/zero.mp4"] {
		t.Errorf("failed original changed")
	}
	if sum.Converted != 2 || sum.BytesBefore != before || sum.BytesAfter != after || len(sum.Failed) != 1 || !strings.HasPrefix(sum.Failed[0], "bad/zero.mp4: ") {
		t.Errorf("first summary %+v, want the history's 2 converted (%d → %d) and 1 failed", sum, before, after)
	}
	if !strings.Contains(b.String(), "library, all runs: 2 converted") || !strings.Contains(b.String(), "0 no gain, 1 failed") {
		t.Errorf("first summary lacks the totals:\n%s", b.String())
	}

	// Second run: a new file, encoded losslessly, gains nothing.
	extra := clip{rel: "c/same.mp4", opts: meta, want: "intact"}
	sums2 := makeLibrary(t, root, []clip{extra})
	o := Options{Library: root, Processor: fastSettings(), Jobs: 1, Logger: testLogger(t)}
	o.Processor.Settings.CRF = 0
	o.Processor.Settings.X265Params = "lossless=1"
	sum2, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	b.Reset()
	sum2.Print(&b)
	t.Logf("second run:\n%s", b.String())
	if sum2.Converted != 0 || len(sum2.Failed) != 0 || sum2.Skipped["no-gain"] != 1 || sum2.BytesBefore != 0 {
		t.Errorf("second summary %+v, want only its no-gain file", sum2)
	}
	if sum2.Total.Converted != 2 || sum2.Total.NoGain != 1 || sum2.Total.Failed != 1 || sum2.Total.BytesSaved != before-after {
		t.Errorf("totals %+v", sum2.Total)
	}
	if !strings.Contains(b.String(), "library, all runs: 2 converted") || !strings.Contains(b.String(), "1 no gain, 1 failed") {
		t.Errorf("second summary lacks the totals:\n%s", b.String())
	}
	if got := sha(t, filepath.Join(root, "c", "same.mp4")); got != sums2["c/same.mp4"] {
		t.Errorf("no-gain original changed")
	}
	lines, _, _ = history.ReadFile(history.Path(root))
	if len(lines) != 4 || lines[3].Key != "c/same.mp4" || lines[3].Outcome != history.NoGain || lines[3].BytesAfter <= lines[3].BytesBefore {
		t.Errorf("history after the second run: %+v", lines)
	}
	checkNoTemps(t, root)
}
