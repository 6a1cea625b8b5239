package benchline

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteToPrintsAndAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	if err := os.WriteFile(path, []byte(`{"issue":1}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var printed bytes.Buffer
	rows := []Line{
		{Issue: 3, Case: "a", Ours: 2, Anchor: 1, Ratio: 2, Target: ">=1.0", Pass: true},
		{Issue: 8, Case: "b", Target: Info, Detail: map[string]any{"runs": []float64{1, 2}}},
	}
	if err := WriteTo(&printed, path, rows...); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 {
		t.Fatalf("BENCH_OUT has %d lines, want the old one and 2 new: %q", len(lines), b)
	}
	if !strings.Contains(lines[1], `"target":">=1.0"`) {
		t.Errorf("target escaped: %s", lines[1])
	}
	var back Line
	if err := json.Unmarshal([]byte(lines[2]), &back); err != nil || back.Case != "b" || back.Detail["runs"] == nil {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	if printed.String() != strings.Join(lines[1:], "\n")+"\n" {
		t.Errorf("printed %q, appended %q", printed.String(), lines[1:])
	}
}
