package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRerenderWritesThePageAndThePresetTable(t *testing.T) {
	dir := t.TempDir()
	enc := func(clip, encoder string, video int64, ssim float64) Encoded {
		return Encoded{Clip: clip, Encoder: encoder, Bytes: video + 100, Video: video, SSIM: ssim, FPS: 10}
	}
	doc := map[string]any{
		"meta": map[string]any{"generated": "2026-11-26T07:00:00Z", "mode": "full", "cpus": 2},
		"results": []Result{{Issue: 8, Case: "encode a: video size, our default vs the seed", Ours: 1, Anchor: 1, Ratio: 1,
			Target: "<=1.000 at SSIM >= seed's", Pass: true, Source: "bench"}},
		"encodes": []Encoded{enc("a", "seed", 1000, 0.9), enc("a", "ours", 990, 0.91), enc("a", "ours without the tune", 1004, 0.9),
			enc("a", "archive", 2000, 0.95), enc("a", "small", 700, 0.88)},
		"benchmarks": []External{{Name: "bench/transfer", Dir: "/somewhere", InWorkspace: true}},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "/somewhere") {
		t.Fatalf("a machine path reaches results.json: %s", b)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	readme := filepath.Join(dir, "README.md")
	if err := os.WriteFile(readme, []byte("intro\n"+presetsBegin+"\nold table\n"+presetsEnd+"\noutro\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second time changes nothing
		if err := Rerender(dir, readme); err != nil {
			t.Fatal(err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, "results.md"))
	rd, _ := os.ReadFile(readme)
	for _, want := range []string{"| balanced (default) | CRF 26, fast + ", "| archive | CRF 22, slow | 2.02× ", "`bench/transfer`"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(string(md), "| ours without the tune | |") || strings.Count(string(md), "| small | CRF 28, medium |") != 1 {
		t.Errorf("the preset table holds a variant or a preset twice:\n%s", md)
	}
	got := string(rd)
	if !strings.HasPrefix(got, "intro\n"+presetsBegin+"\nMeasured by `make bench` at 2026-11-26T07:00:00Z on 2 CPUs") ||
		!strings.HasSuffix(got, presetsEnd+"\noutro\n") || strings.Contains(got, "old table") || !strings.Contains(got, "| small | CRF 28, medium | 0.71× ") {
		t.Errorf("README.md:\n%s", got)
	}
}
