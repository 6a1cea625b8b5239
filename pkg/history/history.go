// Package history is the library's record of finished files: one JSON line
// per file converted, kept (no gain), failed or rejected, appended to
// <library>/.hevc-encoder/history.jsonl and fsynced. `status` and the
// embedded `make run` summary are computed from it.
//
// Several processes may append at once (the stack's result-downloader and a
// `process` run): every append takes an exclusive flock on the file, reads
// the lines other processes added since its last look (to skip an event
// that is already recorded), and writes its line with one write(2) on an
// O_APPEND descriptor, then fsyncs. A line torn by a crash (power loss,
// full disk) is skipped by the reader and ended by the next append, so it
// never spoils the line after it.
package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
)

// FileName is the history's name in the library's state directory.
const FileName = "history.jsonl"

// Outcomes of a finished file.
const (
	Converted = "converted" // HEVC installed; original removed (or kept, see Reason)
	NoGain    = "no_gain"   // HEVC was not smaller: original kept, nothing installed
	Failed    = "failed"    // the processor could not encode it (FAILED/ record)
	Rejected  = "rejected"  // the downloader did not install the result (verification, name taken, bad key)
	Skipped   = "skipped"   // not processed on purpose (e.g. already HEVC)
)

// maxReason bounds a line (ffmpeg's messages can be long): lines stay
// small, and one write(2) each.
const maxReason = 1024

// Entry is one line of the history. Keys are snake_case.
type Entry struct {
	Time time.Time `json:"time"`
	// Key is the original's path relative to the library ('/'-separated).
	Key           string  `json:"key"`
	Outcome       string  `json:"outcome"`
	BytesBefore   int64   `json:"bytes_before"`
	BytesAfter    int64   `json:"bytes_after"`
	EncodeSeconds float64 `json:"encode_seconds"`
	Reason        string  `json:"reason,omitempty"`
	// VCPUSeconds and GBSeconds are the processor task's size × runtime,
	// when the processor recorded them.
	VCPUSeconds float64 `json:"vcpu_seconds,omitempty"`
	GBSeconds   float64 `json:"gb_seconds,omitempty"`
	// Ref identifies the event (a result's SHA-256, a FAILED/ record's
	// time): a second Append of the same Key, Outcome and Ref is a no-op,
	// whichever process made the first.
	Ref string `json:"ref,omitempty"`
	// Run names the run that wrote the line (Log.Run), so that a run can
	// summarise its own lines.
	Run string `json:"run,omitempty"`
}

func (e Entry) id() string {
	if e.Ref == "" {
		return ""
	}
	return e.Key + "\x00" + e.Outcome + "\x00" + e.Ref
}

// Path is the history file of the library at root.
func Path(root string) string {
	return filepath.Join(library.StateDir(root), FileName)
}

// Log appends to one history file. Safe for concurrent use, and with
// other processes appending to the same file.
type Log struct {
	path    string
	dirMode fs.FileMode
	// Run is stamped on every line appended without one.
	Run string
	// Now is the clock for lines appended without a time (tests).
	Now func() time.Time

	mu   sync.Mutex
	seen map[string]bool // ids of the lines read so far
	off  int64           // bytes of the file read into seen
}

// Open returns the history of the library at root. Nothing is created
// until the first Append; the state directory is then created with
// dirMode (0: 0755).
func Open(root string, dirMode fs.FileMode) *Log {
	if dirMode == 0 {
		dirMode = 0o755
	}
	return &Log{path: Path(root), dirMode: dirMode}
}

// Path is the file appended to.
func (l *Log) Path() string { return l.path }

// Append writes e as one line, fsynced. It returns false (and writes
// nothing) when e has a Ref and a line with its Key, Outcome and Ref is
// already in the file.
func (l *Log) Append(e Entry) (bool, error) {
	if l == nil {
		return false, nil
	}
	if e.Time.IsZero() {
		now := time.Now
		if l.Now != nil {
			now = l.Now
		}
		e.Time = now()
	}
	e.Time = e.Time.UTC()
	if e.Run == "" {
		e.Run = l.Run
	}
	e.Reason = clip(e.Reason, maxReason)
	line, err := json.Marshal(e)
	if err != nil {
		return false, fmt.Errorf("history: encode line for %s: %w", e.Key, err)
	}
	line = append(line, '\n')

	l.mu.Lock()
	defer l.mu.Unlock()
	f, created, err := l.open()
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := lock(f); err != nil {
		return false, fmt.Errorf("history: lock %s: %w", l.path, err)
	}
	defer unlock(f)
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("history: stat %s: %w", l.path, err)
	}
	size := fi.Size()
	if err := l.catchUp(f, size); err != nil {
		return false, err
	}
	id := e.id()
	if id != "" && l.seen[id] {
		return false, nil
	}
	if size > 0 {
		// A torn last line (a crash mid-write) is ended here, so that it
		// stays one bad line instead of spoiling this one.
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, size-1); err != nil {
			return false, fmt.Errorf("history: read %s: %w", l.path, err)
		}
		if last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	// One write on an O_APPEND descriptor: the line lands whole at the end.
	if _, err := f.Write(line); err != nil {
		return false, fmt.Errorf("history: append to %s: %w", l.path, err)
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("history: fsync %s: %w", l.path, err)
	}
	if created {
		if err := syncDir(filepath.Dir(l.path)); err != nil {
			return false, err
		}
	}
	if id != "" {
		l.seen[id] = true
	}
	if l.off == size {
		l.off = size + int64(len(line)) // our own line need not be read back
	}
	return true, nil
}

func (l *Log) open() (*os.File, bool, error) {
	dir := filepath.Dir(l.path)
	created := false
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, l.dirMode|0o700); err != nil {
			return nil, false, fmt.Errorf("history: create %s: %w", dir, err)
		}
		f, err = os.OpenFile(l.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
		created = true
	}
	if err != nil {
		return nil, false, fmt.Errorf("history: open %s: %w", l.path, err)
	}
	return f, created, nil
}

// catchUp reads the complete lines between l.off and size (those other
// processes appended since this Log last looked) into l.seen.
func (l *Log) catchUp(f *os.File, size int64) error {
	if l.seen == nil || size < l.off {
		l.seen, l.off = map[string]bool{}, 0 // first look, or the file was replaced
	}
	if size == l.off {
		return nil
	}
	r := bufio.NewReader(io.NewSectionReader(f, l.off, size-l.off))
	for {
		b, err := r.ReadBytes('\n')
		if err == io.EOF {
			return nil // an incomplete last line is read again next time
		}
		if err != nil {
			return fmt.Errorf("history: read %s: %w", l.path, err)
		}
		l.off += int64(len(b))
		var e Entry
		if json.Unmarshal(b, &e) == nil {
			if id := e.id(); id != "" {
				l.seen[id] = true
			}
		}
	}
}

// Read reads every line of r; lines that are not valid JSON entries (a
// torn last line, a damaged one) are skipped and counted.
func Read(r io.Reader) (entries []Entry, damaged int, err error) {
	br := bufio.NewReader(r)
	for {
		b, rerr := br.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			var e Entry
			if json.Unmarshal(b, &e) == nil && e.Key != "" && e.Outcome != "" {
				entries = append(entries, e)
			} else {
				damaged++
			}
		}
		if rerr == io.EOF {
			return entries, damaged, nil
		}
		if rerr != nil {
			return entries, damaged, rerr
		}
	}
}

// ReadFile reads the history at path; a missing file is an empty history.
func ReadFile(path string) ([]Entry, int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("history: open %s: %w", path, err)
	}
	defer f.Close()
	entries, damaged, err := Read(f)
	if err != nil {
		return entries, damaged, fmt.Errorf("history: read %s: %w", path, err)
	}
	return entries, damaged, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("history: open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("history: fsync %s: %w", dir, err)
	}
	return nil
}

// clip shortens s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
