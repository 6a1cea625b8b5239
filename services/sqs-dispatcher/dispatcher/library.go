package dispatcher

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/history"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
)

// LibraryStatus is the library's side of status: its history (what was
// converted, saved, kept or failed) and its trash.
type LibraryStatus struct {
	Root        string          `json:"root"`
	HistoryFile string          `json:"history_file"`
	History     history.Summary `json:"history"`
	Trash       *TrashStatus    `json:"trash,omitempty"`
	// TrashError says why the trash could not be measured.
	TrashError string `json:"trash_error,omitempty"`
}

// TrashStatus is the trash's size (ORIGINALS=trash keeps replaced
// originals there for TRASH_DAYS) and how to get a file back.
type TrashStatus struct {
	Files   int       `json:"files"`
	Bytes   int64     `json:"bytes"`
	Oldest  time.Time `json:"oldest,omitzero"`
	Restore string    `json:"restore"`
}

// topJobs is how many slowest and largest jobs status lists.
const topJobs = 3

// CollectLibrary reads the history and measures the trash of the library
// at root; now is the end of the last-7-days window. A missing history is
// an empty one; an unreadable history is an error.
func CollectLibrary(root string, now time.Time) (*LibraryStatus, error) {
	ls := &LibraryStatus{Root: root, HistoryFile: history.Path(root)}
	entries, damaged, err := history.ReadFile(ls.HistoryFile)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	ls.History = history.Summarize(entries, damaged, now, topJobs)
	files, bytes, oldest, err := library.TrashUsage(root)
	if err != nil {
		ls.TrashError = err.Error()
	} else {
		ls.Trash = &TrashStatus{Files: files, Bytes: bytes, Oldest: oldest, Restore: library.RestoreHint}
	}
	return ls, nil
}

// writeLibrary writes the library section of the status table.
func (ls *LibraryStatus) writeTable(w io.Writer, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	h := ls.History
	fmt.Fprintf(tw, "LIBRARY %s\n", ls.Root)
	if h.AllTime.Files == 0 {
		fmt.Fprintf(tw, "history: nothing recorded yet (%s)\n", ls.HistoryFile)
	} else {
		fmt.Fprintf(tw, "history: %d file(s) since %s (%s)\n", h.AllTime.Files, h.First.Local().Format("2006-01-02"), ls.HistoryFile)
	}
	if h.DamagedLines > 0 {
		fmt.Fprintf(tw, "         %d damaged line(s) skipped (a write cut short)\n", h.DamagedLines)
	}
	fmt.Fprintln(tw, "\nPERIOD\tCONVERTED\tBEFORE\tAFTER\tSAVED\tRATIO\tNO GAIN\tFAILED\tNOT INSTALLED")
	for _, r := range []struct {
		name string
		t    history.Totals
	}{{"all time", h.AllTime}, {"last 7 days", h.Last7Days}} {
		ratio := "-"
		if r.t.BytesBefore > 0 {
			ratio = fmt.Sprintf("%.1f%%", 100*r.t.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", r.name, r.t.Converted, humanBytes(r.t.BytesBefore), humanBytes(r.t.BytesAfter),
			humanBytes(r.t.BytesSaved), ratio, r.t.NoGain, r.t.Failed, r.t.Rejected)
	}
	if len(h.AllTime.Failures) > 0 {
		week := map[string]int{}
		for _, f := range h.Last7Days.Failures {
			week[f.Group] = f.Count
		}
		fmt.Fprintln(tw, "\nFAILURES BY REASON\tALL TIME\tLAST 7 DAYS\tLATEST")
		for _, f := range h.AllTime.Failures {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", f.Group, f.Count, week[f.Group], shorten(f.Example, 100))
		}
	}
	if len(h.AllTime.Slowest) > 0 {
		fmt.Fprintln(tw, "\nSLOWEST\tENCODE\tSIZE\tWHEN\tFILE")
		for _, j := range h.AllTime.Slowest {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", j.Outcome, (time.Duration(j.EncodeSeconds * float64(time.Second))).Round(time.Second), humanBytes(j.BytesBefore), age(now, j.Time), j.Key)
		}
	}
	if len(h.AllTime.Largest) > 0 {
		fmt.Fprintln(tw, "\nLARGEST\tSIZE\tAFTER\tWHEN\tFILE")
		for _, j := range h.AllTime.Largest {
			after := "-"
			if j.Outcome == history.Converted {
				after = humanBytes(j.BytesAfter)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", j.Outcome, humanBytes(j.BytesBefore), after, age(now, j.Time), j.Key)
		}
	}
	switch {
	case ls.Trash != nil:
		line := fmt.Sprintf("\nTRASH %d file(s), %s", ls.Trash.Files, humanBytes(ls.Trash.Bytes))
		if !ls.Trash.Oldest.IsZero() {
			line += ", oldest " + age(now, ls.Trash.Oldest)
		}
		fmt.Fprintln(tw, line)
		fmt.Fprintln(tw, ls.Trash.Restore)
	case ls.TrashError != "":
		fmt.Fprintf(tw, "\nTRASH cannot be measured: %s\n", ls.TrashError)
	}
	tw.Flush()
}

// age says how long before now t was, coarsely ("3d ago").
func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case t.IsZero():
		return "-"
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// shorten keeps a reason on one table line.
func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
