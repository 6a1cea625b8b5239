package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/procstat"
)

// seedOneFrame is SeedCommand stopped after one video frame: what bare
// ffmpeg costs per file whatever the file's length (process start, the
// input's probe, x265's set-up, the trailer).
func seedOneFrame(in, out string) []string {
	args := SeedCommand(in, out)
	return append(args[:len(args)-1:len(args)-1], "-frames:v", "1", out)
}

// fixedStepNames are fixedSteps' keys in the order of a job.
var fixedStepNames = []string{"start_to_head", "probe_after_head", "verify_after_encode", "commit", "deletes_and_exit"}

// fixedSteps splits a job's time outside the encode phase by the
// processor's millisecond log stamps: from its start to the HEAD's
// answer, the probe's remainder after it, the verification's remainder
// after the encode (it overlaps the upload), the commit of DONE/ once
// verified, and the TODO/ and message deletes to the exit.
func fixedSteps(logPath string, start, end time.Time) map[string]float64 {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return nil
	}
	at := map[string]time.Time{}
	for _, line := range strings.Split(string(b), "\n") {
		var l struct {
			Time    time.Time `json:"time"`
			Message string    `json:"message"`
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		m := l.Message
		if strings.HasPrefix(m, "encoded") {
			m = "encoded"
		}
		if _, seen := at[m]; !seen {
			at[m] = l.Time
		}
	}
	span := func(from, to time.Time) float64 {
		if from.IsZero() || to.IsZero() {
			return -1
		}
		return round(to.Sub(from).Seconds(), 3)
	}
	steps := map[string]float64{
		"start_to_head":       span(start, at["head"]),
		"probe_after_head":    span(at["head"], at["probed input"]),
		"verify_after_encode": span(at["encoded"], at["output verified"]),
		"commit":              span(at["output verified"], at["verified and uploaded"]),
		"deletes_and_exit":    span(at["verified and uploaded"], end),
	}
	for k, v := range steps {
		if v < 0 {
			delete(steps, k)
		}
	}
	return steps
}

// fixedCostRow is issue 18's row: what one job costs besides its encode
// (median of the runs' wall time outside the encode phase), against bare
// ffmpeg's own cost per file (the seed command on one frame). The encode
// phase starts when the processor starts ffmpeg, so ffmpeg's own start-up
// is in it on our side too: the row is what the pipeline adds per job, in
// proportion to what ffmpeg alone pays per file, and it does not shrink
// with the clip as the overhead ratio's share of it does.
func fixedCostRow(c Clip, ours []procRun, bareFixed []float64) (Result, bool) {
	around := aroundEncode(ours)
	if around <= 0 || len(bareFixed) == 0 {
		return Result{}, false
	}
	anchor := median(bareFixed)
	var parts []string
	for _, name := range fixedStepNames {
		v := make([]float64, 0, len(ours))
		for _, r := range ours {
			if s, ok := r.Steps[name]; ok {
				v = append(v, s)
			}
		}
		if len(v) > 0 {
			parts = append(parts, fmt.Sprintf("%s %.3f", strings.ReplaceAll(name, "_", " "), median(v)))
		}
	}
	arounds := make([]float64, len(ours))
	for i, r := range ours {
		arounds[i] = r.Around
	}
	return Result{
		Issue: 18,
		Case:  fmt.Sprintf("processor fixed cost per job (wall time outside the encode phase): %s %gs", c.Title, c.Secs),
		Ours:  round(around, 2), Anchor: round(anchor, 2), Unit: "s",
		AnchorName: "ffmpeg seed command on one frame (its own start-up, probe, x265 set-up, trailer)",
		Ratio:      around / anchor, Target: Info,
		Notes: fmt.Sprintf("median of %d runs (%s s): the hevc-processor's wall time minus its encode phase (\"probed input\" → \"encoded\", which holds "+
			"our ffmpeg's own start-up, so the anchor's counterpart is inside it): process start and preflight, HEAD, input probe, "+
			"verification after the encode, DONE/ commit, TODO/ and message deletes; median seconds by step: %s. Anchor: the seed command "+
			"stopped after one frame, median of %d (%s s). Reported, not judged: it does not grow with the clip, so it is the "+
			"overhead ratio's floor on short clips; load %.1f",
			len(ours), joinP(arounds, 3), strings.Join(parts, ", "), len(bareFixed), joinP(bareFixed, 3), procstat.LoadAvg()),
	}, true
}
