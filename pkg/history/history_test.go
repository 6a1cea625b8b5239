package history_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/history"
)

// TestMain lets the test binary act as another process appending to a
// history (TestAppendFromSeveralProcesses).
func TestMain(m *testing.M) {
	if root := os.Getenv("HISTORY_TEST_CHILD_ROOT"); root != "" {
		os.Exit(child(root, os.Getenv("HISTORY_TEST_CHILD_NAME")))
	}
	os.Exit(m.Run())
}

const perWriter = 60

// child appends perWriter lines of its own, and the one shared event
// every writer tries to record.
func child(root, name string) int {
	l := history.Open(root, 0)
	for i := 0; i < perWriter; i++ {
		if _, err := l.Append(history.Entry{Key: fmt.Sprintf("%s/%03d.mp4", name, i), Outcome: history.Converted, BytesBefore: 100, BytesAfter: 40}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if i == perWriter/2 {
			if _, err := l.Append(shared); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	}
	return 0
}

// shared is one event (a FAILED/ record) that every writer meets.
var shared = history.Entry{Time: time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC), Key: "bad/zero.mp4", Outcome: history.Failed,
	Reason: "bad/zero.mp4 is empty (0 bytes)", Ref: "record 2026-11-01T10:00:00Z"}

// checkLines reads the file and checks every line is whole: want
// entries, no damaged line, each writer's lines all there.
func checkLines(t *testing.T, path string, writers []string) {
	t.Helper()
	entries, damaged, err := history.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if damaged != 0 {
		t.Errorf("%d damaged lines", damaged)
	}
	if want := len(writers)*perWriter + 1; len(entries) != want {
		t.Errorf("%d lines, want %d (every writer's lines and the shared event once)", len(entries), want)
	}
	seen := map[string]int{}
	for _, e := range entries {
		seen[e.Key]++
	}
	if seen[shared.Key] != 1 {
		t.Errorf("shared event recorded %d times, want once", seen[shared.Key])
	}
	for _, w := range writers {
		for i := 0; i < perWriter; i++ {
			if k := fmt.Sprintf("%s/%03d.mp4", w, i); seen[k] != 1 {
				t.Errorf("%s: %d lines", k, seen[k])
			}
		}
	}
	b, _ := os.ReadFile(path)
	if len(b) == 0 || b[len(b)-1] != '\n' {
		t.Errorf("file does not end with a newline")
	}
}

// Several goroutines, each with its own Log (as separate services would
// have) and two sharing one, append at once: every line is whole and the
// shared event is recorded once.
func TestAppendConcurrently(t *testing.T) {
	root := t.TempDir()
	one := history.Open(root, 0)
	var writers []string
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 6; i++ {
		name := "g" + strconv.Itoa(i)
		writers = append(writers, name)
		l := one
		if i >= 2 {
			l = history.Open(root, 0)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < perWriter; k++ {
				if _, err := l.Append(history.Entry{Key: fmt.Sprintf("%s/%03d.mp4", name, k), Outcome: history.Converted}); err != nil {
					errs <- err
					return
				}
				if _, err := l.Append(shared); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkLines(t, history.Path(root), writers)
	fi, err := os.Stat(history.Path(root))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("history file: %v %v", fi.Mode(), err)
	}
}

// Several processes append to one history at once (flock): every line is
// whole, none is lost, and the event every process meets is written once.
func TestAppendFromSeveralProcesses(t *testing.T) {
	root := t.TempDir()
	var writers []string
	var cmds []*exec.Cmd
	for i := 0; i < 4; i++ {
		name := "p" + strconv.Itoa(i)
		writers = append(writers, name)
		c := exec.Command(os.Args[0], "-test.run=^$")
		c.Env = append(os.Environ(), "HISTORY_TEST_CHILD_ROOT="+root, "HISTORY_TEST_CHILD_NAME="+name)
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("child: %v", err)
		}
	}
	checkLines(t, history.Path(root), writers)
}

// A line torn by a crash mid-write is skipped by the reader and does not
// spoil the next line appended.
func TestTornLastLine(t *testing.T) {
	root := t.TempDir()
	l := history.Open(root, 0)
	if _, err := l.Append(history.Entry{Key: "a.mp4", Outcome: history.Converted, BytesBefore: 10, BytesAfter: 5}); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(l.Path(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"time":"2026-12-01T00:00:00Z","key":"torn.mp4","outc`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	entries, damaged, err := history.ReadFile(l.Path())
	if err != nil || len(entries) != 1 || damaged != 1 || entries[0].Key != "a.mp4" {
		t.Fatalf("read with a torn last line: %+v, damaged %d, %v", entries, damaged, err)
	}
	// A new process (a fresh Log) appends after the torn line.
	for _, l := range []*history.Log{history.Open(root, 0), l} {
		if _, err := l.Append(history.Entry{Key: "b.mp4", Outcome: history.NoGain, Ref: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	entries, damaged, err = history.ReadFile(l.Path())
	if err != nil || len(entries) != 2 || damaged != 1 || entries[1].Key != "b.mp4" || entries[1].Outcome != history.NoGain {
		t.Fatalf("after the append: %+v, damaged %d, %v", entries, damaged, err)
	}
	b, _ := os.ReadFile(l.Path())
	if lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"); len(lines) != 3 {
		t.Errorf("file:\n%s", b)
	}
}

// A missing history is an empty one; an Append creates the state
// directory. Lines are snake_case JSON and long reasons are clipped.
func TestMissingHistoryAndLineFormat(t *testing.T) {
	root := t.TempDir()
	entries, damaged, err := history.ReadFile(history.Path(root))
	if err != nil || len(entries) != 0 || damaged != 0 {
		t.Fatalf("missing history: %v %d %v", entries, damaged, err)
	}
	l := history.Open(root, 0o750)
	l.Run = "run-1"
	l.Now = func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600)) }
	if _, err := l.Append(history.Entry{Key: "a b/é.mp4", Outcome: history.Failed, BytesBefore: 7, EncodeSeconds: 1.5,
		VCPUSeconds: 3, GBSeconds: 6, Reason: strings.Repeat("é", 2000)}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, ".hevc-encoder", "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"time":"2026-12-01T11:00:00Z"`, `"key":"a b/é.mp4"`, `"outcome":"failed"`, `"bytes_before":7`, `"bytes_after":0`,
		`"encode_seconds":1.5`, `"vcpu_seconds":3`, `"gb_seconds":6`, `"run":"run-1"`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("line lacks %s:\n%s", k, b)
		}
	}
	if len(b) > 1500 {
		t.Errorf("line of %d bytes: the reason is not clipped", len(b))
	}
	entries, _, _ = history.ReadFile(l.Path())
	if len(entries) != 1 || !strings.HasSuffix(entries[0].Reason, "…") {
		t.Errorf("entries %+v", entries)
	}
}

// Summarize over all time and the last 7 days, with an injected now.
func TestSummarizeAllTimeAndLastWeek(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	entries := []history.Entry{
		{Time: now.Add(-40 * day), Key: "old/big.mp4", Outcome: history.Converted, BytesBefore: 1000, BytesAfter: 400, EncodeSeconds: 300},
		{Time: now.Add(-8 * day), Key: "old/b.mp4", Outcome: history.Failed, BytesBefore: 50, Reason: "old/b.mp4 is not a readable video: Invalid data found"},
		{Time: now.Add(-7*day + time.Minute), Key: "new/a.mp4", Outcome: history.Converted, BytesBefore: 200, BytesAfter: 100, EncodeSeconds: 20, VCPUSeconds: 40, GBSeconds: 80},
		{Time: now.Add(-2 * day), Key: "new/c.mp4", Outcome: history.Converted, BytesBefore: 300, BytesAfter: 150, EncodeSeconds: 90},
		{Time: now.Add(-day), Key: "new/d.mp4", Outcome: history.NoGain, BytesBefore: 80, BytesAfter: 90, EncodeSeconds: 5},
		{Time: now.Add(-time.Hour), Key: "new/e.mp4", Outcome: history.Failed, BytesBefore: 0, Reason: "new/e.mp4 is empty (0 bytes)"},
		{Time: now.Add(-time.Minute), Key: "new/f.mp4", Outcome: history.Failed, Reason: "new/f.mp4 is not a readable video: moov atom not found"},
		{Time: now.Add(-time.Second), Key: "new/g.mp4", Outcome: history.Rejected, BytesBefore: 60, BytesAfter: 30, Reason: "result does not match its original: duration 1.0s, want 3.0s"},
	}
	s := history.Summarize(entries, 2, now, 2)
	a, w := s.AllTime, s.Last7Days
	if a.Files != 8 || a.Converted != 3 || a.BytesBefore != 1500 || a.BytesAfter != 650 || a.BytesSaved != 850 || a.NoGain != 1 || a.Failed != 3 || a.Rejected != 1 {
		t.Errorf("all time %+v", a)
	}
	if a.Ratio < 0.433 || a.Ratio > 0.434 || a.EncodeSeconds != 415 || a.VCPUSeconds != 40 || a.GBSeconds != 80 {
		t.Errorf("all time ratio %v, encode %v, vcpu %v, gb %v", a.Ratio, a.EncodeSeconds, a.VCPUSeconds, a.GBSeconds)
	}
	if w.Files != 6 || w.Converted != 2 || w.BytesBefore != 500 || w.BytesSaved != 250 || w.Ratio != 0.5 || w.Failed != 2 || w.Rejected != 1 {
		t.Errorf("last 7 days %+v", w)
	}
	groups := func(rs []history.ReasonCount) string {
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s=%d", r.Group, r.Count))
		}
		return strings.Join(out, ",")
	}
	if g := groups(a.Failures); g != "not a readable video=2,empty file=1,result differs from its original=1" {
		t.Errorf("all-time failures %s", g)
	}
	if g := groups(w.Failures); g != "empty file=1,not a readable video=1,result differs from its original=1" {
		t.Errorf("last-7-days failures %s", g)
	}
	if a.Failures[0].Example != "new/f.mp4 is not a readable video: moov atom not found" {
		t.Errorf("example is not the latest: %q", a.Failures[0].Example)
	}
	keys := func(js []history.Job) string {
		var out []string
		for _, j := range js {
			out = append(out, j.Key)
		}
		return strings.Join(out, ",")
	}
	if k := keys(a.Slowest); k != "old/big.mp4,new/c.mp4" {
		t.Errorf("slowest all time %s", k)
	}
	if k := keys(w.Slowest); k != "new/c.mp4,new/a.mp4" {
		t.Errorf("slowest last week %s", k)
	}
	if k := keys(a.Largest); k != "old/big.mp4,new/c.mp4" {
		t.Errorf("largest all time %s", k)
	}
	if s.DamagedLines != 2 || !s.First.Equal(now.Add(-40*day)) || !s.Last.Equal(now.Add(-time.Second)) {
		t.Errorf("summary %d %v %v", s.DamagedLines, s.First, s.Last)
	}
	// Nothing at all: zero totals, empty lists (JSON [] rather than null).
	e := history.Summarize(nil, 0, now, 3)
	if e.AllTime.Files != 0 || e.AllTime.Failures == nil || e.Last7Days.Slowest == nil || e.AllTime.Ratio != 0 {
		t.Errorf("empty summary %+v", e)
	}
}

func TestReasonGroup(t *testing.T) {
	for reason, want := range map[string]string{
		"bad/zero.mp4 is empty (0 bytes)":                                                                              "empty file",
		"bad/notes.mp4 is not a readable video: Invalid data found when processing input":                              "not a readable video",
		"bad/t.mp4 is truncated: 1234 of 5678 bytes":                                                                   "truncated input",
		"encoded a.mp4 does not match its input: duration 1s, want 3s":                                                 "encode failed verification",
		"ran out of scratch space encoding a.mp4 (attempt 3): about 2 GiB needed":                                      "out of scratch space",
		"HEVC output (10 bytes) is not smaller than the input (5 bytes); original kept":                                "no gain",
		"result does not match its original: frame rate 25, want 30":                                                   "result differs from its original",
		"the result was made from a different version of the original (a.mp4 has 5 bytes, the result was made from 6)": "original changed since upload",
		"download does not match its recorded checksum: checksum mismatch":                                             "download corrupt",
		"/lib/x-hevc.mp4 already exists and has different content; the result stays in DONE/x-hevc.mp4":                "name taken",
		"something new": "other",
		"":              "no reason given",
	} {
		if got := history.ReasonGroup(reason); got != want {
			t.Errorf("ReasonGroup(%q) = %q, want %q", reason, got, want)
		}
	}
}
