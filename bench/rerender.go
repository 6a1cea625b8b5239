package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

const presetsBegin, presetsEnd = "<!-- presets:begin -->", "<!-- presets:end -->"

// PresetsReadme is the README whose preset table results in out keep up
// to date: root's bench/README.md when out is root's bench directory (the
// default), else "" (an experiment's results stay out of the docs).
func PresetsReadme(root, out string) string {
	if filepath.Clean(out) != filepath.Join(root, "bench") {
		return ""
	}
	return filepath.Join(root, "bench", "README.md")
}

// updatePresets puts the measured quality preset table between the
// presets markers of readme (bench/README.md), so that the documented
// table is always the last full run's.
func updatePresets(readme string, meta map[string]any, encodes []Encoded) error {
	doc, err := os.ReadFile(readme)
	if err != nil {
		return err
	}
	i, j := bytes.Index(doc, []byte(presetsBegin)), bytes.Index(doc, []byte(presetsEnd))
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %s … %s block", readme, presetsBegin, presetsEnd)
	}
	block := fmt.Sprintf("%s\nMeasured by `make bench` at %v on %v CPUs (details in [results.md](results.md)):\n\n%s",
		presetsBegin, meta["generated"], meta["cpus"], presetsTable(encodes))
	out := append(append(append([]byte(nil), doc[:i]...), block...), doc[j:]...)
	if bytes.Equal(out, doc) {
		return nil
	}
	return writeAtomic(readme, out)
}

// Rerender writes dir's results.md again from its results.json (and the
// preset table of readme, when it is not ""): a change to how the page is
// laid out need not cost a full run.
func Rerender(dir, readme string) error {
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return err
	}
	var doc struct {
		Meta       map[string]any    `json:"meta"`
		Results    []json.RawMessage `json:"results"`
		Encodes    []Encoded         `json:"encodes"`
		Problems   []string          `json:"problems"`
		Benchmarks []External        `json:"benchmarks"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, "results.json"), err)
	}
	rows := make([]Result, 0, len(doc.Results))
	for _, raw := range doc.Results {
		var r Result
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("results.json: a result line: %w", err)
		}
		rows = append(rows, r)
	}
	if err := writeAtomic(filepath.Join(dir, "results.md"), []byte(renderMarkdown(doc.Meta, rows, doc.Encodes, doc.Problems, doc.Benchmarks))); err != nil {
		return err
	}
	if readme != "" && len(doc.Encodes) > 0 && doc.Meta["mode"] == string(full) {
		return updatePresets(readme, doc.Meta, doc.Encodes)
	}
	return nil
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
