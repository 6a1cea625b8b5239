package pipeline

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/history"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/services/hevc-processor/processor"
)

// fromHistory fills the summary from the library's history: this run's
// lines (written by h, at or after start) give the files converted, their
// bytes, the no-gain count and the failures; the whole history gives
// Total. stuck lists the results that could not be installed in this run
// (DONE/ key → why): the history holds one line per version of a result,
// so one rejected by an earlier run is reported from here.
func (s *Summary) fromHistory(h *history.Log, start time.Time, stuck map[string]string) {
	entries, _, err := history.ReadFile(h.Path())
	if err != nil {
		s.HistoryErr = err
		s.Failed = append(s.Failed, "history: "+err.Error())
	}
	var mine []history.Entry
	for _, e := range entries {
		if e.Run == h.Run && !e.Time.Before(start) {
			mine = append(mine, e)
		}
	}
	t := history.Total(mine, 0)
	s.Converted, s.BytesBefore, s.BytesAfter = t.Converted, t.BytesBefore, t.BytesAfter
	if t.NoGain > 0 {
		s.Skipped[string(processor.NoGain)] += t.NoGain
	}
	reported := map[string]bool{}
	for _, e := range mine {
		if e.Outcome == history.Failed || e.Outcome == history.Rejected {
			s.Failed = append(s.Failed, e.Key+": "+e.Reason)
			reported[e.Key] = true
		}
	}
	var keys []string
	for k := range stuck {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		orig := k
		if d, err := library.ParseDone(k); err == nil {
			orig = d.Orig
		}
		if !reported[orig] {
			s.Failed = append(s.Failed, k+": "+stuck[k])
		}
	}
	s.Total = history.Total(entries, 0)
}

// printTotal writes the whole history's line under the run's table.
func (s Summary) printTotal(w io.Writer) {
	t := s.Total
	if s.HistoryErr != nil || t.Files == 0 {
		return
	}
	line := fmt.Sprintf("library, all runs: %d converted", t.Converted)
	if t.BytesBefore > 0 {
		line += fmt.Sprintf(", %s → %s (%.1f%%), %s saved", human(t.BytesBefore), human(t.BytesAfter), 100*t.Ratio, human(t.BytesSaved))
	}
	line += fmt.Sprintf("; %d no gain, %d failed, %d not installed", t.NoGain, t.Failed, t.Rejected)
	fmt.Fprintln(w, line)
	fmt.Fprintln(w, "(history: <library>/.hevc-encoder/history.jsonl; more with `go run ./services/sqs-dispatcher status --library-root <library>`)")
}
