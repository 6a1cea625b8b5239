package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// recorder registers collectors and remembers their metric names.
type recorder struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *recorder) Unregister(prometheus.Collector) bool { return false }

// The example dashboard (deployments/grafana) queries only metrics the
// services define, and is valid JSON with a panel for each service.
func TestDashboardMatchesMetrics(t *testing.T) {
	rec := &recorder{names: map[string]bool{}}
	NewDispatcher(rec)
	NewDownloader(rec)
	NewQueue(rec)
	NewSyncer(rec)
	b, err := os.ReadFile("../../deployments/grafana/hevc-encoder.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	used := map[string]bool{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, n := range regexp.MustCompile(`\bhevc_[a-z_]+`).FindAllString(tg.Expr, -1) {
				used[n] = true
				if !rec.names[n] {
					t.Errorf("panel %q queries %s, which no service exports", p.Title, n)
				}
			}
		}
	}
	for n := range rec.names {
		if !used[n] {
			t.Errorf("the dashboard has no panel for %s", n)
		}
	}
}
