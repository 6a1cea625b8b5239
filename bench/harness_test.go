package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestHarnessRuns runs the `make bench` harness in its tiny mode: every
// issue-8 benchmark on tiny clips (MinIO, the SQS server, the processor
// binary, ffmpeg), the discovery of the other benchmarks, and the report.
// It checks that the harness works and fills every row, never timings:
// the numbers of a tiny run mean nothing.
func TestHarnessRuns(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	sum, err := Run(context.Background(), Options{Root: root, Mode: "tiny", OutDir: out, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sum.Problems {
		if strings.Contains(p, "awstest:") && os.Getenv("CI") != "true" {
			t.Skipf("test servers unavailable: %s (with CI=true this is a failure)", p)
		}
	}
	if len(sum.Problems) > 0 {
		t.Fatalf("harness problems:\n%s", strings.Join(sum.Problems, "\n"))
	}
	want := []string{"processor overhead:", "hevc-processor peak RSS", "encode talking-head: video size",
		"encode high-motion: video size", "encode low-light: video size", "encode hlg-10bit: video size", "preset small",
		"result verification before an original is deleted", "processor fixed cost per job"}
	for _, w := range want {
		found := false
		for _, r := range sum.Rows {
			if strings.HasPrefix(r.Case, w) {
				found = true
				if r.Ours <= 0 || r.Unit == "" && r.Target != Info {
					t.Errorf("row %q not filled: %+v", r.Case, r)
				}
			}
		}
		if !found {
			t.Errorf("no row %q", w)
		}
	}
	md, err := os.ReadFile(sum.MD)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"| issue | case | ours | anchor | ratio | target | result |", "## Encode efficiency", "### Quality presets"} {
		if !strings.Contains(string(md), w) {
			t.Errorf("results.md lacks %q", w)
		}
	}
	js, err := os.ReadFile(sum.JSON)
	if err != nil || !strings.Contains(string(js), `"results"`) {
		t.Fatalf("results.json: %v", err)
	}
}

func TestParseLinesKeepsOthersFields(t *testing.T) {
	in := `{"issue":3,"case":"upload 1 GiB","ours":410,"anchor":380,"unit":"MB/s","anchor_name":"aws cli","ratio":1.08,"target":">=1.0","pass":true,"notes":"","peak_rss_mib":41}
not json
`
	raws, rows, bad := parseLines([]byte(in), "bench/transfer")
	if len(rows) != 1 || len(bad) != 1 {
		t.Fatalf("rows %d, bad %d", len(rows), len(bad))
	}
	if rows[0].Source != "bench/transfer" || !strings.Contains(string(raws[0]), `"peak_rss_mib":41`) || !strings.Contains(string(raws[0]), `"source":"bench/transfer"`) {
		t.Fatalf("raw %s, row %+v", raws[0], rows[0])
	}
}

func TestDiscoverFindsOtherBenchmarks(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.work", "go 1.26\n")
	write("bench/go.mod", "module x/bench\n")
	write("bench/cmd/bench/main.go", "package main\n// BENCH_OUT\n")
	write("svc/go.mod", "module x/svc\n")
	write("svc/cmd/b/main.go", "package main\nvar _ = \"BENCH_OUT\"\n")
	write("svc/lib/lib.go", "package lib\n// BENCH_OUT\n")
	write("svc/cmd/c/main_test.go", "package main\n// BENCH_OUT\n")
	got, err := DiscoverExternal(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "svc/cmd/b" {
		t.Fatalf("found %+v, want only svc/cmd/b", got)
	}
}
