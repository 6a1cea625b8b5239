package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/metrics"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/downloader"
)

// runMetrics is the service's metrics and health (nil when METRICS_ADDR
// is empty or with --once: every method is then a no-op).
//
// /healthz does not judge the install loop's progress: one large result
// (download, full decode) or the reconcile at start can keep it busy for
// hours without a call to AWS, and an orchestrator that restarts
// "unhealthy" containers would restart it in the middle, again and again.
// It fails before the start-up checks passed and while AWS refuses our
// calls (the watchdog's view).
type runMetrics struct {
	health *metrics.Health
	down   *metrics.Downloader
	queue  *metrics.Queue
	srv    *metrics.Server
	cancel context.CancelFunc
}

// startMetrics serves /metrics and /healthz on addr until stop is called
// or ctx ends; /healthz answers 503 until ready.
func startMetrics(ctx context.Context, addr string, log zerolog.Logger) (*runMetrics, error) {
	if addr == "" {
		return nil, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	reg := metrics.NewRegistry()
	m := &runMetrics{
		health: metrics.NewHealth("start-up checks (bucket, queue, credentials) running"),
		down:   metrics.NewDownloader(reg),
		queue:  metrics.NewQueue(reg),
		cancel: cancel,
	}
	srv, err := metrics.Serve(ctx, addr, reg, m.health, log)
	if err != nil {
		cancel()
		return nil, err
	}
	m.srv = srv
	return m, nil
}

// stop ends the listener and waits for its graceful shutdown.
func (m *runMetrics) stop() {
	if m != nil {
		m.cancel()
		m.srv.Wait()
	}
}

func (m *runMetrics) ready(w metrics.Watchdog) {
	if m != nil {
		m.health.AddWatchdog(w)
		m.health.Ready()
	}
}

// observe counts the results queue's receives and polls its depth (until
// ctx ends).
func (m *runMetrics) observe(ctx context.Context, q queue.Queue, log zerolog.Logger) queue.Queue {
	if m == nil || q == nil {
		return q
	}
	go m.queue.Poll(ctx, q, "results", metrics.DepthInterval, log)
	return m.queue.Observe(q, "results", nil)
}

// count makes d's OnResult (whatever else it does) count the results.
func (m *runMetrics) count(d *downloader.Downloader) {
	if m == nil {
		return
	}
	prev := d.OnResult
	d.OnResult = func(r downloader.Result) {
		if prev != nil {
			prev(r)
		}
		m.down.Result(metrics.DownloadResult{
			Outcome: string(r.Outcome), Before: r.Before, After: r.After,
			Downloaded: r.Downloaded, OriginalKept: r.OriginalKept, Err: r.Err,
		})
	}
}

// healthcheckMain is the healthcheck subcommand: the images' HEALTHCHECK.
func healthcheckMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c metrics.Config
	set := config.New("result-downloader healthcheck", metrics.HealthcheckUsage)
	set.FlagSet().SetOutput(stderr)
	c.Bind(set)
	if err := set.Parse(args); err != nil {
		return err
	}
	if err := metrics.Healthcheck(ctx, c.Addr, stdout); err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	return nil
}
