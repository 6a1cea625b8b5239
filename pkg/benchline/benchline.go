// Package benchline is the row format every benchmark of the repository
// writes: one JSON object per line, printed and appended to the file named
// by $BENCH_OUT, which `make bench` (bench/cmd/bench) gathers into
// bench/results.md and bench/results.json.
package benchline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Line is one benchmark row:
//
//	{"issue":N,"case":"...","ours":X,"anchor":Y,"unit":"s","anchor_name":"ffmpeg",
//	 "ratio":R,"target":"<=1.03","pass":true,"notes":"..."}
//
// Target Info marks a row that is reported, not judged. Detail holds any
// raw numbers worth keeping (runs, sizes); results.json keeps it.
type Line struct {
	Issue      int            `json:"issue"`
	Case       string         `json:"case"`
	Ours       float64        `json:"ours"`
	Anchor     float64        `json:"anchor"`
	Unit       string         `json:"unit"`
	AnchorName string         `json:"anchor_name"`
	Ratio      float64        `json:"ratio"`
	Target     string         `json:"target"`
	Pass       bool           `json:"pass"`
	Notes      string         `json:"notes"`
	Source     string         `json:"source,omitempty"`
	Detail     map[string]any `json:"detail,omitempty"`
}

// Info is the Target of rows that are reported, not judged.
const Info = "info"

// Marshal encodes l as one line, without a newline; "<=" and ">=" stay
// readable (no HTML escaping).
func Marshal(l Line) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		return nil, fmt.Errorf("encode benchmark row %q: %w", l.Case, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Write prints lines on stdout and appends them to $BENCH_OUT when it is
// set.
func Write(lines ...Line) error {
	return WriteTo(os.Stdout, os.Getenv("BENCH_OUT"), lines...)
}

// WriteTo prints lines on w and appends them to the file path ("" for
// none).
func WriteTo(w io.Writer, path string, lines ...Line) error {
	var all []byte
	for _, l := range lines {
		b, err := Marshal(l)
		if err != nil {
			return err
		}
		all = append(append(all, b...), '\n')
	}
	return WriteRaw(w, path, all)
}

// WriteRaw is WriteTo for rows already encoded (Marshal), one per line,
// each ending in a newline.
func WriteRaw(w io.Writer, path string, all []byte) error {
	if _, err := w.Write(all); err != nil {
		return fmt.Errorf("print benchmark rows: %w", err)
	}
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("BENCH_OUT: %w", err)
	}
	if _, err := f.Write(all); err != nil {
		f.Close()
		return fmt.Errorf("BENCH_OUT %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("BENCH_OUT %s: %w", path, err)
	}
	return nil
}
