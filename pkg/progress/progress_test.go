package progress

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestTerminalBars(t *testing.T) {
	var out bytes.Buffer
	on := true
	p := New(&out, Options{Terminal: &on, Interval: -1, Width: 100})
	a := p.Start("Smartphones/alice/VID_0001.mp4", 1000)
	b := p.Start("b.mp4", 4<<20)
	io.Copy(io.Discard, a.Reader(strings.NewReader(strings.Repeat("x", 500))))
	b.Writer(io.Discard).Write(make([]byte, 1<<20))
	p.Render()
	lines := p.Lines()
	if len(lines) != 3 {
		t.Fatalf("lines %q", lines)
	}
	if !strings.Contains(lines[0], "VID_0001.mp4") || !strings.Contains(lines[0], " 50%") || !strings.Contains(lines[0], "[") {
		t.Errorf("bar 1: %q", lines[0])
	}
	if !strings.Contains(lines[1], " 25%") || !strings.Contains(lines[1], "1.0 MiB/4.0 MiB") {
		t.Errorf("bar 2: %q", lines[1])
	}
	if !strings.HasPrefix(lines[2], "overall") || !strings.Contains(lines[2], "0/2 files") {
		t.Errorf("overall: %q", lines[2])
	}
	for _, l := range lines {
		if len([]rune(l)) > 100 {
			t.Errorf("line wider than the terminal: %q", l)
		}
	}
	drawn := out.String()
	if !strings.Contains(drawn, lines[0]) {
		t.Errorf("not drawn: %q", drawn)
	}

	// A log line clears the bars, is printed, and the bars come back below.
	out.Reset()
	io.WriteString(p.LogWriter(), "a log line\n")
	s := out.String()
	if !strings.HasPrefix(s, "\x1b[3F\x1b[J") || !strings.Contains(s, "a log line\n") || strings.Index(s, "a log line") > strings.Index(s, "overall") {
		t.Errorf("log write: %q", s)
	}

	a.Done(false)
	b.Done(true)
	p.SetStatus("queued 1 · processing 2 · done 3 · failed 0", 3, 6, nil)
	lines = p.Lines()
	if len(lines) != 1 || !strings.Contains(lines[0], " 50%") || !strings.Contains(lines[0], "queued 1") {
		t.Errorf("status: %q", lines)
	}
	out.Reset()
	p.Close()
	if out.String() != "\x1b[3F\x1b[J" {
		t.Errorf("close should clear the bars: %q", out.String())
	}
	p.Render() // no-op after Close
}

func TestManyTransfersSummarised(t *testing.T) {
	on := true
	p := New(io.Discard, Options{Terminal: &on, Interval: -1, MaxBars: 2, Width: 60})
	for i := 0; i < 5; i++ {
		p.Start("f", 0).Add(10)
	}
	lines := p.Lines()
	if len(lines) != 4 || !strings.Contains(lines[2], "3 more") {
		t.Errorf("lines %q", lines)
	}
}

func TestPlainLogLines(t *testing.T) {
	var out, logs bytes.Buffer
	off := false
	p := New(&out, Options{Terminal: &off, Interval: -1})
	p.SetLogger(zerolog.New(&logs))
	if p.LogWriter() != io.Writer(&out) {
		t.Errorf("plain mode must log straight to out")
	}
	tr := p.Start("x.mp4", 200)
	tr.Add(50)
	p.Render()
	p.Render() // no movement: no second line
	tr.Add(50)
	p.Render()
	p.SetStatus("queued 2", 0, 2, map[string]int64{"queued": 2, "done": 0})
	p.SetStatus("queued 2", 0, 2, map[string]int64{"queued": 2, "done": 0}) // unchanged: not logged
	p.SetStatus("queued 1", 1, 2, map[string]int64{"queued": 1, "done": 1})
	tr.Done(false)
	p.Close()
	if out.Len() != 0 {
		t.Errorf("plain mode drew on out: %q", out.String())
	}
	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		recs = append(recs, m)
	}
	if len(recs) != 4 {
		t.Fatalf("log lines: %s", logs.String())
	}
	if recs[0]["message"] != "transfer" || recs[0]["file"] != "x.mp4" || recs[0]["percent"] != 25.0 || recs[1]["percent"] != 50.0 {
		t.Errorf("transfer lines: %v %v", recs[0], recs[1])
	}
	if recs[2]["message"] != "progress" || recs[2]["queued"] != 2.0 || recs[3]["done"] != 1.0 {
		t.Errorf("progress lines: %v %v", recs[2], recs[3])
	}
}

func TestNilIsNoop(t *testing.T) {
	var p *Progress
	tr := p.Start("x", 10)
	tr.Add(5)
	r := tr.Reader(strings.NewReader("abc"))
	if b, _ := io.ReadAll(r); string(b) != "abc" {
		t.Errorf("reader: %q", b)
	}
	tr.Done(false)
	p.SetStatus("x", 0, 0, nil)
	p.Render()
	p.Close()
	if p.Terminal() || p.Lines() != nil {
		t.Errorf("nil progress")
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.00 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
