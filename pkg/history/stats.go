package history

import (
	"sort"
	"strings"
	"time"
)

// Totals sum a set of history lines. JSON keys are snake_case (status --json).
type Totals struct {
	Files     int `json:"files"` // lines counted, every outcome
	Converted int `json:"converted"`
	NoGain    int `json:"no_gain"`
	Failed    int `json:"failed"`
	Rejected  int `json:"rejected"`
	Skipped   int `json:"skipped"`
	// BytesBefore and BytesAfter are the converted files' sizes before and
	// after; BytesSaved their difference; Ratio after/before (0: none).
	BytesBefore   int64   `json:"bytes_before"`
	BytesAfter    int64   `json:"bytes_after"`
	BytesSaved    int64   `json:"bytes_saved"`
	Ratio         float64 `json:"ratio"`
	EncodeSeconds float64 `json:"encode_seconds"`
	VCPUSeconds   float64 `json:"vcpu_seconds"`
	GBSeconds     float64 `json:"gb_seconds"`
	// Failures groups failed and rejected files by the kind of reason,
	// most frequent first.
	Failures []ReasonCount `json:"failures"`
	// Slowest (by encode seconds) and Largest (by bytes before) jobs.
	Slowest []Job `json:"slowest"`
	Largest []Job `json:"largest"`
}

// ReasonCount is one group of failures.
type ReasonCount struct {
	Group string `json:"group"`
	Count int    `json:"count"`
	// Example is the most recent full reason of the group.
	Example string `json:"example"`
}

// Job is one line in the slowest or largest list.
type Job struct {
	Key           string    `json:"key"`
	Outcome       string    `json:"outcome"`
	Time          time.Time `json:"time"`
	BytesBefore   int64     `json:"bytes_before"`
	BytesAfter    int64     `json:"bytes_after"`
	EncodeSeconds float64   `json:"encode_seconds"`
}

// Summary is the history over all time and over the last 7 days.
type Summary struct {
	AllTime   Totals `json:"all_time"`
	Last7Days Totals `json:"last_7_days"`
	// DamagedLines counts lines that could not be read (a torn last line).
	DamagedLines int       `json:"damaged_lines"`
	First        time.Time `json:"first,omitzero"`
	Last         time.Time `json:"last,omitzero"`
}

// Week is the span of Summary.Last7Days.
const Week = 7 * 24 * time.Hour

// Summarize totals entries over all time and over the week before now,
// listing the top slowest and largest jobs of each.
func Summarize(entries []Entry, damaged int, now time.Time, top int) Summary {
	s := Summary{DamagedLines: damaged}
	var week []Entry
	for _, e := range entries {
		if s.First.IsZero() || e.Time.Before(s.First) {
			s.First = e.Time
		}
		if e.Time.After(s.Last) {
			s.Last = e.Time
		}
		if !e.Time.Before(now.Add(-Week)) {
			week = append(week, e)
		}
	}
	s.AllTime = Total(entries, top)
	s.Last7Days = Total(week, top)
	return s
}

// Total sums entries.
func Total(entries []Entry, top int) Totals {
	t := Totals{Failures: []ReasonCount{}, Slowest: []Job{}, Largest: []Job{}}
	groups := map[string]*ReasonCount{}
	latest := map[string]time.Time{}
	var jobs []Job
	for _, e := range entries {
		t.Files++
		t.EncodeSeconds += e.EncodeSeconds
		t.VCPUSeconds += e.VCPUSeconds
		t.GBSeconds += e.GBSeconds
		switch e.Outcome {
		case Converted:
			t.Converted++
			t.BytesBefore += e.BytesBefore
			t.BytesAfter += e.BytesAfter
		case NoGain:
			t.NoGain++
		case Failed:
			t.Failed++
		case Rejected:
			t.Rejected++
		case Skipped:
			t.Skipped++
		}
		if e.Outcome == Failed || e.Outcome == Rejected {
			g := ReasonGroup(e.Reason)
			rc := groups[g]
			if rc == nil {
				rc = &ReasonCount{Group: g}
				groups[g] = rc
			}
			rc.Count++
			if !e.Time.Before(latest[g]) {
				latest[g], rc.Example = e.Time, e.Reason
			}
		}
		jobs = append(jobs, Job{Key: e.Key, Outcome: e.Outcome, Time: e.Time, BytesBefore: e.BytesBefore, BytesAfter: e.BytesAfter, EncodeSeconds: e.EncodeSeconds})
	}
	t.BytesSaved = t.BytesBefore - t.BytesAfter
	if t.BytesBefore > 0 {
		t.Ratio = float64(t.BytesAfter) / float64(t.BytesBefore)
	}
	for _, rc := range groups {
		t.Failures = append(t.Failures, *rc)
	}
	sort.Slice(t.Failures, func(i, j int) bool {
		a, b := t.Failures[i], t.Failures[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Group < b.Group
	})
	t.Slowest = topJobs(jobs, top, func(j Job) float64 { return j.EncodeSeconds })
	t.Largest = topJobs(jobs, top, func(j Job) float64 { return float64(j.BytesBefore) })
	return t
}

// topJobs returns the n jobs with the largest positive by, largest first.
func topJobs(jobs []Job, n int, by func(Job) float64) []Job {
	out := []Job{}
	for _, j := range jobs {
		if by(j) > 0 {
			out = append(out, j)
		}
	}
	sort.SliceStable(out, func(i, k int) bool {
		if by(out[i]) != by(out[k]) {
			return by(out[i]) > by(out[k])
		}
		return out[i].Key < out[k].Key
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// reasonGroups map the phrases the processor and the downloader use in
// their reasons to short groups; the first match wins.
var reasonGroups = []struct{ phrase, group string }{
	{"is empty (0 bytes)", "empty file"},
	{"ran out of scratch space", "out of scratch space"},
	{"not smaller than the input", "no gain"},
	{"is not a readable video", "not a readable video"},
	{"truncated", "truncated input"},
	{"cannot be decoded", "cannot be decoded"},
	{"cannot be encoded", "cannot be encoded"},
	{"does not match its input", "encode failed verification"},
	{"does not match its original", "result differs from its original"},
	{"different version of the original", "original changed since upload"},
	{"cannot be told", "ambiguous original"},
	{"original does not probe", "original unreadable"},
	{"recorded checksum", "download corrupt"},
	{"recorded size", "download corrupt"},
	{"no recorded sha-256", "result unverifiable"},
	{"already exists", "name taken"},
	{"unsafe library path", "invalid key"},
	{"unreadable failure record", "unreadable failure record"},
}

// ReasonGroup is the short group a failure reason belongs to ("other"
// when none fits).
func ReasonGroup(reason string) string {
	r := strings.ToLower(reason)
	for _, g := range reasonGroups {
		if strings.Contains(r, g.phrase) {
			return g.group
		}
	}
	if strings.TrimSpace(r) == "" {
		return "no reason given"
	}
	return "other"
}
