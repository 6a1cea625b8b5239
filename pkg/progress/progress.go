// Package progress shows what long transfers are doing. On a terminal it
// draws a bar per transfer and an overall line below the log, redrawn in
// place; anywhere else (a container's log, a pipe) it writes plain
// structured log lines instead: one per transfer every Interval and one per
// change of the overall status.
//
// A nil *Progress is valid and does nothing, so services take one as an
// optional field.
package progress

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/hevc-encoder/hevc-encoder/pkg/logging"
)

// Options tune New.
type Options struct {
	// Terminal forces the drawing mode on or off; nil detects it from the
	// writer (a character device is a terminal).
	Terminal *bool
	// Interval is how often bars are redrawn (terminal, default 200 ms) or
	// transfer lines logged (otherwise, default 30 s). A negative value
	// disables the ticker (tests call Render).
	Interval time.Duration
	// Width is the terminal width; 0 asks the terminal (else $COLUMNS, else 100).
	Width int
	// MaxBars caps the transfers drawn at once (default 8); the rest are
	// summarised as "+N more".
	MaxBars int
}

// Progress tracks transfers and an overall status.
type Progress struct {
	out      io.Writer
	term     bool
	width    int
	maxBars  int
	interval time.Duration
	log      zerolog.Logger

	mu        sync.Mutex
	active    []*Transfer
	drawn     int // lines currently on screen (terminal)
	started   int
	finished  int
	failed    int
	bytesDone int64
	bytesAll  int64
	status    string
	statusN   [2]int64 // done, total of the overall status bar
	hasStatus bool
	stop      chan struct{}
	stopped   chan struct{}
	closed    bool
}

// New starts a progress display on out (normally os.Stderr). Log lines of
// the non-terminal mode go to log (set it with SetLogger when the logger is
// built on LogWriter).
func New(out io.Writer, opts Options) *Progress {
	p := &Progress{out: out, maxBars: opts.MaxBars, width: opts.Width, log: zerolog.Nop()}
	if opts.Terminal != nil {
		p.term = *opts.Terminal
	} else {
		p.term = logging.IsTerminal(out)
	}
	if p.maxBars <= 0 {
		p.maxBars = 8
	}
	if p.width <= 0 {
		p.width = termWidth(out)
	}
	p.interval = opts.Interval
	if p.interval == 0 {
		p.interval = 30 * time.Second
		if p.term {
			p.interval = 200 * time.Millisecond
		}
	}
	if p.interval > 0 {
		p.stop, p.stopped = make(chan struct{}), make(chan struct{})
		go p.loop()
	}
	return p
}

func termWidth(out io.Writer) int {
	if f, ok := out.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 20 {
			return int(ws.Col)
		}
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 20 {
		return n
	}
	return 100
}

// Terminal reports whether bars are drawn.
func (p *Progress) Terminal() bool { return p != nil && p.term }

// SetLogger sets the logger of the non-terminal mode's lines.
func (p *Progress) SetLogger(l zerolog.Logger) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.log = l
	p.mu.Unlock()
}

// LogWriter is where a logger should write so that its lines and the bars
// do not garble each other: on a terminal each write clears the bars,
// prints the line and redraws them. Otherwise it is out itself.
func (p *Progress) LogWriter() io.Writer {
	if p == nil {
		return os.Stderr
	}
	if !p.term {
		return p.out
	}
	return logWriter{p}
}

type logWriter struct{ p *Progress }

func (w logWriter) Write(b []byte) (int, error) {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	n, err := p.out.Write(b)
	if !p.closed {
		p.drawLocked()
	}
	return n, err
}

// NewLogger builds a service logger that cooperates with p (see LogWriter):
// console format on a terminal unless LOG_FORMAT says otherwise, JSON lines
// elsewhere; level from LOG_LEVEL. It also becomes p's logger.
func (p *Progress) NewLogger(service string) zerolog.Logger {
	format := os.Getenv("LOG_FORMAT")
	if format == "" && p.Terminal() {
		format = "console"
	}
	l := logging.NewTo(p.LogWriter(), service, os.Getenv("LOG_LEVEL"), format)
	p.SetLogger(l)
	return l
}

// SetStatus sets the overall line: text (e.g. "queued 3 · processing 1 ·
// done 2 · failed 0") and a bar of done out of total (total 0: no bar). In
// the non-terminal mode a changed status is logged at once with fields.
func (p *Progress) SetStatus(text string, done, total int64, fields map[string]int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := text != p.status || !p.hasStatus
	p.status, p.statusN, p.hasStatus = text, [2]int64{done, total}, true
	if p.term || !changed {
		return
	}
	ev := p.log.Info()
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ev = ev.Int64(k, fields[k])
	}
	ev.Msg("progress")
}

// Transfer is one file moving; count its bytes with Add, Reader or Writer
// and end it with Done.
type Transfer struct {
	p       *Progress
	name    string
	total   int64
	start   time.Time
	n       int64 // guarded by p.mu
	done    bool
	lastLog int64
}

// Start begins a transfer of total bytes (<= 0 when unknown) named name.
func (p *Progress) Start(name string, total int64) *Transfer {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := &Transfer{p: p, name: name, total: total, start: time.Now()}
	p.active = append(p.active, t)
	p.started++
	if total > 0 {
		p.bytesAll += total
	}
	return t
}

// Add counts n more bytes.
func (t *Transfer) Add(n int64) {
	if t == nil || n == 0 {
		return
	}
	t.p.mu.Lock()
	t.n += n
	t.p.bytesDone += n
	if t.total <= 0 {
		t.p.bytesAll += n
	}
	t.p.mu.Unlock()
}

// Reader counts what is read through r.
func (t *Transfer) Reader(r io.Reader) io.Reader {
	if t == nil {
		return r
	}
	return &countReader{r: r, t: t}
}

type countReader struct {
	r io.Reader
	t *Transfer
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.t.Add(int64(n))
	return n, err
}

// Writer counts what is written through w.
func (t *Transfer) Writer(w io.Writer) io.Writer {
	if t == nil {
		return w
	}
	return &countWriter{w: w, t: t}
}

type countWriter struct {
	w io.Writer
	t *Transfer
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.t.Add(int64(n))
	return n, err
}

// Done ends the transfer; failed counts it as failed in the overall line.
func (t *Transfer) Done(failed bool) {
	if t == nil {
		return
	}
	p := t.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if t.done {
		return
	}
	t.done = true
	if t.total > 0 && t.n != t.total { // a retried or aborted transfer
		p.bytesAll += t.n - t.total
		if p.bytesAll < p.bytesDone {
			p.bytesAll = p.bytesDone
		}
	}
	for i, a := range p.active {
		if a == t {
			p.active = append(p.active[:i], p.active[i+1:]...)
			break
		}
	}
	p.finished++
	if failed {
		p.failed++
	}
}

// Render draws the bars now (terminal) or logs the transfer lines now
// (otherwise). The ticker calls it; tests may too.
func (p *Progress) Render() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.term {
		p.clearLocked()
		p.drawLocked()
		return
	}
	p.logLocked()
}

func (p *Progress) loop() {
	defer close(p.stopped)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.Render()
		}
	}
}

// Close stops redrawing and removes the bars from the screen.
func (p *Progress) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.clearLocked()
	p.mu.Unlock()
	if p.stop != nil {
		close(p.stop)
		<-p.stopped
	}
}

// Lines returns what the terminal mode would draw now, one string per line
// (tests and the final summary use it).
func (p *Progress) Lines() []string {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.linesLocked()
}

func (p *Progress) linesLocked() []string {
	var lines []string
	shown := p.active
	if len(shown) > p.maxBars {
		shown = shown[:p.maxBars]
	}
	now := time.Now()
	for _, t := range shown {
		lines = append(lines, p.barLine(t.name, t.n, t.total, now.Sub(t.start)))
	}
	if more := len(p.active) - len(shown); more > 0 {
		lines = append(lines, fmt.Sprintf("  … and %d more", more))
	}
	if p.hasStatus {
		lines = append(lines, p.overallLine(p.status, p.statusN[0], p.statusN[1]))
	} else if p.started > 0 {
		text := fmt.Sprintf("%d/%d files · %s/%s", p.finished, p.started, Bytes(p.bytesDone), Bytes(p.bytesAll))
		if p.failed > 0 {
			text += fmt.Sprintf(" · %d failed", p.failed)
		}
		lines = append(lines, p.overallLine(text, p.bytesDone, p.bytesAll))
	}
	return lines
}

func (p *Progress) barLine(name string, n, total int64, elapsed time.Duration) string {
	rate := ""
	if s := elapsed.Seconds(); s > 0.5 {
		rate = fmt.Sprintf(" %s/s", Bytes(int64(float64(n)/s)))
	}
	amount := Bytes(n)
	pct := "   "
	frac := -1.0
	if total > 0 {
		frac = min(1, float64(n)/float64(total))
		amount += "/" + Bytes(total)
		pct = fmt.Sprintf("%3.0f%%", 100*frac)
	}
	tail := fmt.Sprintf(" %s %s%s", pct, amount, rate)
	nameW := min(40, max(10, p.width/3))
	barW := p.width - nameW - len([]rune(tail)) - 4
	return fmt.Sprintf("%-*s %s%s", nameW, clip(name, nameW), bar(frac, barW), tail)
}

func (p *Progress) overallLine(text string, done, total int64) string {
	if total <= 0 {
		return clip("overall: "+text, p.width-1)
	}
	frac := min(1, float64(done)/float64(total))
	barW := min(30, max(10, p.width/4))
	return clip(fmt.Sprintf("overall %s %3.0f%% %s", bar(frac, barW), 100*frac, text), p.width-1)
}

func bar(frac float64, w int) string {
	if w < 5 {
		return ""
	}
	inner := w - 2
	if frac < 0 {
		return "[" + strings.Repeat("·", inner) + "]"
	}
	full := int(frac * float64(inner))
	return "[" + strings.Repeat("=", full) + strings.Repeat(" ", inner-full) + "]"
}

// clip shortens s to w runes, keeping the end (file names differ at the end).
func clip(s string, w int) string {
	r := []rune(s)
	if len(r) <= w || w < 2 {
		return s
	}
	return "…" + string(r[len(r)-w+1:])
}

func (p *Progress) clearLocked() {
	if !p.term || p.drawn == 0 {
		return
	}
	// Up to the first drawn line, then clear to the end of the screen.
	fmt.Fprintf(p.out, "\x1b[%dF\x1b[J", p.drawn)
	p.drawn = 0
}

func (p *Progress) drawLocked() {
	if !p.term {
		return
	}
	lines := p.linesLocked()
	if len(lines) == 0 {
		return
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\n")
	}
	io.WriteString(p.out, b.String())
	p.drawn = len(lines)
}

// logLocked writes one line per active transfer that moved since its last
// line.
func (p *Progress) logLocked() {
	now := time.Now()
	for _, t := range p.active {
		if t.n == t.lastLog && t.n != 0 {
			continue
		}
		t.lastLog = t.n
		ev := p.log.Info().Str("file", t.name).Int64("bytes", t.n)
		if t.total > 0 {
			ev = ev.Int64("total", t.total).Float64("percent", float64(int(1000*float64(t.n)/float64(t.total)))/10)
		}
		if s := now.Sub(t.start).Seconds(); s > 0 {
			ev = ev.Float64("MBps", float64(int(float64(t.n)/1e4/s))/100)
		}
		ev.Msg("transfer")
	}
}

// Bytes formats a byte count with binary units.
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
