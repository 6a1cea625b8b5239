package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/history"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/services/sqs-dispatcher/dispatcher"
)

// statusLibrary makes a library with a history (two files converted this
// week, one a month ago, failures of two kinds, a no-gain file, a torn
// last line) and one original in the trash.
func statusLibrary(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	now := time.Now()
	day := 24 * time.Hour
	l := history.Open(root, 0)
	for _, e := range []history.Entry{
		{Time: now.Add(-30 * day), Key: "old/big.mp4", Outcome: history.Converted, BytesBefore: 300 << 20, BytesAfter: 100 << 20, EncodeSeconds: 900},
		{Time: now.Add(-2 * day), Key: "Smartphones/alice/a.mp4", Outcome: history.Converted, BytesBefore: 40 << 20, BytesAfter: 10 << 20, EncodeSeconds: 60},
		{Time: now.Add(-time.Hour), Key: "Smartphones/alice/b.mp4", Outcome: history.Converted, BytesBefore: 60 << 20, BytesAfter: 30 << 20, EncodeSeconds: 120},
		{Time: now.Add(-time.Hour), Key: "bad/zero.mp4", Outcome: history.Failed, Reason: "bad/zero.mp4 is empty (0 bytes)"},
		{Time: now.Add(-20 * day), Key: "bad/notes.mp4", Outcome: history.Failed, Reason: "bad/notes.mp4 is not a readable video: Invalid data found when processing input"},
		{Time: now.Add(-time.Minute), Key: "bad/again.mp4", Outcome: history.Failed, Reason: "bad/again.mp4 is not a readable video: moov atom not found"},
		{Time: now.Add(-day), Key: "tiny/same.mp4", Outcome: history.NoGain, BytesBefore: 1 << 20, BytesAfter: 2 << 20, EncodeSeconds: 3},
	} {
		if _, err := l.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(l.Path(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2026-`) // a write cut short
	f.Close()

	// One original in the trash, the way result-downloader puts it there.
	orig := filepath.Join(root, "Smartphones", "alice", "c.mp4")
	if err := os.MkdirAll(filepath.Dir(orig), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orig, make([]byte, 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := library.PrepareTrash(r, "Smartphones/alice/c.mp4", library.TrashRecord{Rel: "Smartphones/alice/c.mp4", Trashed: now.Add(-3 * day), Size: 5000}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Commit(); err != nil {
		t.Fatal(err)
	}
	return root
}

func checkLibraryStatus(t *testing.T, ls *dispatcher.LibraryStatus, root string) {
	t.Helper()
	if ls == nil {
		t.Fatal("no library section")
	}
	a, w := ls.History.AllTime, ls.History.Last7Days
	if ls.Root != root || a.Converted != 3 || a.BytesSaved != 260<<20 || a.Failed != 3 || a.NoGain != 1 || ls.History.DamagedLines != 1 {
		t.Errorf("all time %+v (damaged %d)", a, ls.History.DamagedLines)
	}
	if w.Converted != 2 || w.BytesBefore != 100<<20 || w.BytesAfter != 40<<20 || w.Ratio != 0.4 || w.Failed != 2 {
		t.Errorf("last 7 days %+v", w)
	}
	if len(a.Failures) != 2 || a.Failures[0].Group != "not a readable video" || a.Failures[0].Count != 2 || a.Failures[1].Group != "empty file" {
		t.Errorf("failures %+v", a.Failures)
	}
	if len(a.Slowest) != 3 || a.Slowest[0].Key != "old/big.mp4" || len(w.Largest) != 3 || w.Largest[0].Key != "Smartphones/alice/b.mp4" {
		t.Errorf("slowest %+v, largest this week %+v", a.Slowest, w.Largest)
	}
	if ls.Trash == nil || ls.Trash.Files != 1 || ls.Trash.Bytes != 5000 || ls.Trash.Oldest.IsZero() || !strings.Contains(ls.Trash.Restore, "result-downloader restore") {
		t.Errorf("trash %+v (%s)", ls.Trash, ls.TrashError)
	}
}

// status with LIBRARY_ROOT and no bucket shows the library alone (no AWS
// settings at all); without either it names S3_BUCKET; a LIBRARY_ROOT
// that is not a directory is named.
func TestStatusLibraryOnly(t *testing.T) {
	root := statusLibrary(t)
	env := map[string]string{"LIBRARY_ROOT": root}
	out, err := command(t, env, "status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"LIBRARY " + root, "history: 7 file(s) since", "1 damaged line(s) skipped",
		"all time", "last 7 days", "60.0 MiB", "40.0%", // this week: 100 MiB → 40 MiB
		"FAILURES BY REASON", "not a readable video  2", "empty file",
		"SLOWEST", "old/big.mp4", "LARGEST", "TRASH 1 file(s), 4.9 KiB, oldest 3d ago", "result-downloader restore <rel>",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "BUCKET") || strings.Contains(out, "QUEUE") {
		t.Errorf("library-only status shows AWS parts:\n%s", out)
	}
	t.Logf("\n%s", out)

	out, err = command(t, env, "status", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	jsonField(t, out, &doc)
	if bad := nonSnakeKeys(doc, ""); len(bad) > 0 {
		t.Errorf("keys not snake_case: %v\n%s", bad, out)
	}
	if _, ok := doc["bucket"]; ok || doc["library"] == nil || doc["time"] == nil || len(doc) != 2 {
		t.Errorf("library-only JSON has keys %v", doc)
	}
	var s dispatcher.Status
	jsonField(t, out, &s)
	checkLibraryStatus(t, s.Library, root)

	// An empty library: nothing recorded yet, no trash.
	empty := t.TempDir()
	if out, err := command(t, map[string]string{"LIBRARY_ROOT": empty}, "status"); err != nil || !strings.Contains(out, "nothing recorded yet") || !strings.Contains(out, "TRASH 0 file(s)") {
		t.Errorf("empty library: %v\n%s", err, out)
	}
	if _, err := command(t, map[string]string{}, "status"); err == nil || !strings.Contains(err.Error(), "S3_BUCKET is required") || !strings.Contains(err.Error(), "LIBRARY_ROOT") {
		t.Errorf("neither bucket nor library: %v", err)
	}
	if _, err := command(t, map[string]string{"LIBRARY_ROOT": filepath.Join(empty, "nope")}, "status"); err == nil || !strings.Contains(err.Error(), "LIBRARY_ROOT") {
		t.Errorf("missing library: %v", err)
	}
	// A bucket without a work queue is still an error naming it.
	if _, err := command(t, map[string]string{"LIBRARY_ROOT": root, "S3_BUCKET": "b"}, "status"); err == nil || !strings.Contains(err.Error(), "WORK_QUEUE_URL") {
		t.Errorf("bucket without work queue: %v", err)
	}
}
