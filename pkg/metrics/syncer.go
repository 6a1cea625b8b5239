package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Syncer holds nextcloud-syncer's metrics.
type Syncer struct {
	Files    *prometheus.CounterVec
	Bytes    prometheus.Counter
	Passes   *prometheus.CounterVec
	LastPass prometheus.Gauge
}

// NewSyncer registers the syncer's metrics in reg.
func NewSyncer(reg prometheus.Registerer) *Syncer {
	m := &Syncer{
		Files: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "syncer", Name: "files_total",
			Help: "Remote files handled, by outcome: moved (into the library, remote deleted), identical (already in the library: remote deleted), deferred (changed on the server: next pass), failed (remote kept), planned (dry run).",
		}, []string{"outcome"}),
		Bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "syncer", Name: "moved_bytes_total",
			Help: "Bytes of the files moved into the library.",
		}),
		Passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "syncer", Name: "passes_total",
			Help: "Passes over all users, by result: ok, or failed (any user or file failed).",
		}, []string{"result"}),
		LastPass: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "syncer", Name: "last_pass_end_timestamp_seconds",
			Help: "Unix time at which the last pass ended.",
		}),
	}
	reg.MustRegister(m.Files, m.Bytes, m.Passes, m.LastPass)
	return m
}

// File counts one remote file's outcome; bytes are counted for moved files.
func (m *Syncer) File(outcome string, bytes int64) {
	if m == nil {
		return
	}
	m.Files.WithLabelValues(outcome).Inc()
	if outcome == "moved" {
		m.Bytes.Add(float64(max(bytes, 0)))
	}
}

// Pass counts a finished pass.
func (m *Syncer) Pass(failed bool) {
	if m == nil {
		return
	}
	res := "ok"
	if failed {
		res = "failed"
	}
	m.Passes.WithLabelValues(res).Inc()
	m.LastPass.Set(float64(time.Now().Unix()))
}
