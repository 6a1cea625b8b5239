package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	ecslaunch "github.com/hevc-encoder/hevc-encoder/pkg/launch/ecs"
	"github.com/hevc-encoder/hevc-encoder/pkg/metrics"
)

// loopMaxAge is how long the run loop may go without a turn before
// /healthz fails: a turn takes at most a receive (RECEIVE_WAIT, at most
// 20 s), a pause (BUSY_WAIT, also when at MAX_TASKS or over the budget)
// or the wait for one of up to 20 handlers (a RunTask's retries, about
// 2 minutes at worst).
const loopMaxAge = 5 * time.Minute

// runMetrics is the run command's metrics and health (nil when
// METRICS_ADDR is empty: every method is then a no-op).
type runMetrics struct {
	health *metrics.Health
	disp   *metrics.Dispatcher
	queue  *metrics.Queue
	loop   *metrics.Heartbeat
	srv    *metrics.Server
}

// startMetrics serves /metrics and /healthz on METRICS_ADDR until ctx
// ends; /healthz answers 503 until ready is called.
func startMetrics(ctx context.Context, addr string, log zerolog.Logger) (*runMetrics, error) {
	if addr == "" {
		return nil, nil
	}
	reg := metrics.NewRegistry()
	m := &runMetrics{
		health: metrics.NewHealth("start-up checks (bucket, queue, credentials, ECS) running"),
		disp:   metrics.NewDispatcher(reg),
		queue:  metrics.NewQueue(reg),
	}
	m.loop = m.health.Loop("dispatch loop", loopMaxAge)
	srv, err := metrics.Serve(ctx, addr, reg, m.health, log)
	if err != nil {
		return nil, usageError{err}
	}
	m.srv = srv
	return m, nil
}

// stop ends the listener (cancel) and waits for its graceful shutdown.
func (m *runMetrics) stop(cancel context.CancelFunc) {
	cancel()
	if m != nil {
		m.srv.Wait()
	}
}

func (m *runMetrics) ready() {
	if m != nil {
		m.loop.Beat()
		m.health.Ready()
	}
}

func (m *runMetrics) dispatcher() *metrics.Dispatcher {
	if m == nil {
		return nil
	}
	return m.disp
}

func (m *runMetrics) queues() *metrics.Queue {
	if m == nil {
		return nil
	}
	return m.queue
}

func (m *runMetrics) heartbeat() *metrics.Heartbeat {
	if m == nil {
		return nil
	}
	return m.loop
}

func (m *runMetrics) watch(w metrics.Watchdog) {
	if m != nil && w != nil {
		m.health.AddWatchdog(w)
	}
}

// launchReason tells the launch failures apart for the metrics.
func launchReason(err error) string {
	var le *ecslaunch.LaunchError
	if errors.As(err, &le) {
		for _, r := range le.Reasons {
			if ecslaunch.IsCapacityFailure(r) {
				return "capacity"
			}
		}
		return "throttled"
	}
	return "error"
}

// healthcheck is the healthcheck command: the images' HEALTHCHECK.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var c metrics.Config
	set := config.New("sqs-dispatcher healthcheck", metrics.HealthcheckUsage+"\n\n"+commands)
	set.SetGetenv(getenv)
	set.FlagSet().SetOutput(stdout)
	c.Bind(set)
	if err := set.Parse(args); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if err := metrics.Healthcheck(ctx, c.Addr, stdout); err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	return nil
}
