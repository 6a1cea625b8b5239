package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Downloader holds result-downloader's metrics.
type Downloader struct {
	Results    *prometheus.CounterVec
	Downloaded prometheus.Counter
	Before     prometheus.Counter
	After      prometheus.Counter
	Saved      prometheus.Counter
	Kept       prometheus.Counter
	Failures   prometheus.Counter
}

// NewDownloader registers the downloader's metrics in reg.
func NewDownloader(reg prometheus.Registerer) *Downloader {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "downloader", Name: name, Help: help})
	}
	m := &Downloader{
		Results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "downloader", Name: "results_total",
			Help: "DONE/ results handled, by outcome: installed; rejected (failed verification: original kept, result left in DONE/), collision (name taken), refused (key outside the library), gone.",
		}, []string{"outcome"}),
		Downloaded: c("downloaded_bytes_total", "Bytes of results downloaded (installed or not)."),
		Before:     c("original_bytes_total", "Bytes of the originals of installed results."),
		After:      c("installed_bytes_total", "Bytes of the HEVC files installed."),
		Saved:      c("saved_bytes_total", "Bytes saved by installed results: original minus HEVC file (0 when the original was kept)."),
		Kept:       c("originals_kept_total", "Installed results whose original was kept because it changed since it was encoded."),
		Failures:   c("install_errors_total", "Installs that failed with an error worth retrying (network, disk); the result is tried again."),
	}
	reg.MustRegister(m.Results, m.Downloaded, m.Before, m.After, m.Saved, m.Kept, m.Failures)
	return m
}

// DownloadResult is what the downloader reports of one handled result
// (downloader.Result, without importing the service).
type DownloadResult struct {
	Outcome       string
	Before, After int64
	Downloaded    int64
	OriginalKept  bool
	Err           error
}

// Result counts one handled result.
func (m *Downloader) Result(r DownloadResult) {
	if m == nil {
		return
	}
	m.Downloaded.Add(float64(max(r.Downloaded, 0)))
	if r.Err != nil {
		m.Failures.Inc()
		return
	}
	if r.Outcome == "" {
		return
	}
	m.Results.WithLabelValues(r.Outcome).Inc()
	if r.Outcome != "installed" {
		return
	}
	m.Before.Add(float64(max(r.Before, 0)))
	m.After.Add(float64(max(r.After, 0)))
	if r.OriginalKept {
		m.Kept.Inc()
	} else if r.Before > r.After {
		m.Saved.Add(float64(r.Before - r.After))
	}
}
