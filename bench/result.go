package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/hevc-encoder/hevc-encoder/pkg/benchline"
)

// Result is one benchmark line (pkg/benchline). Source and Detail are
// this harness's additions; other benchmarks' lines keep whatever extra
// fields they carry in results.json.
type Result = benchline.Line

// Info is the Target of rows that are reported, not judged.
const Info = benchline.Info

// sink collects results: each line is printed, appended to $BENCH_OUT (when
// set) and kept, raw, for results.json.
type sink struct {
	mu    sync.Mutex
	out   io.Writer // progress print; may be nil
	file  string    // $BENCH_OUT
	lines []json.RawMessage
	rows  []Result
}

func (s *sink) emit(r Result) error {
	if r.Source == "" {
		r.Source = "bench"
	}
	if r.Target == Info {
		r.Pass = true // reported, not judged: nothing failed
	}
	b, err := benchline.Marshal(r)
	if err != nil {
		return err
	}
	s.add(b, r)
	out := s.out
	if out == nil {
		out = io.Discard
	}
	return benchline.WriteRaw(out, s.file, append(b, '\n'))
}

// add keeps a raw line (from us or from another benchmark).
func (s *sink) add(raw []byte, r Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, json.RawMessage(append([]byte(nil), raw...)))
	s.rows = append(s.rows, r)
}

// parseLines reads JSON lines written by another benchmark; lines that are
// not JSON objects are returned as errors (and skipped).
func parseLines(b []byte, source string) ([]json.RawMessage, []Result, []string) {
	var raws []json.RawMessage
	var rows []Result
	var bad []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var r Result
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Case == "" {
			bad = append(bad, fmt.Sprintf("%s: unreadable result line %q", source, clip(line, 200)))
			continue
		}
		if r.Source == "" {
			r.Source = source
			// Record where the line came from in the raw JSON as well.
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil {
				m["source"] = source
				if nb, err := json.Marshal(m); err == nil {
					line = string(nb)
				}
			}
		}
		raws = append(raws, json.RawMessage(line))
		rows = append(rows, r)
	}
	return raws, rows, bad
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// num formats a measurement compactly (3 significant digits, no exponent
// for everyday magnitudes).
func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "—"
	case math.Abs(v) >= 1000:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.2f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.4g", v)
}

func withUnit(v float64, unit string) string {
	if unit == "" {
		return num(v)
	}
	return num(v) + " " + unit
}

func ratioCell(r Result) string {
	if r.Ratio == 0 && r.Anchor == 0 {
		return "—"
	}
	return fmt.Sprintf("%.3f", r.Ratio)
}

func passCell(r Result) string {
	switch {
	case r.Target == Info || r.Target == "":
		return "info"
	case r.Pass:
		return "**pass**"
	}
	return "**FAIL**"
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}

// sortRows orders rows by issue, then keeps each source's own order.
func sortRows(rows []Result) []Result {
	out := append([]Result(nil), rows...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Issue < out[j].Issue })
	return out
}
