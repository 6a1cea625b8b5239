package metrics

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
)

// DepthInterval is how often the services poll their queues' depth for
// the gauges (two GetQueueAttributes calls per queue).
const DepthInterval = time.Minute

// Dispatcher holds sqs-dispatcher's metrics.
type Dispatcher struct {
	Messages       *prometheus.CounterVec
	Launched       prometheus.Counter
	LaunchFailures *prometheus.CounterVec
	Ended          *prometheus.CounterVec
}

// NewDispatcher registers the dispatcher's metrics in reg.
func NewDispatcher(reg prometheus.Registerer) *Dispatcher {
	m := &Dispatcher{
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "dispatcher", Name: "messages_total",
			Help: "Work messages handled, by outcome: launched, dropped (unusable, duplicate, done, gone), deferred (its task runs), split, retry (store or queue error), launch-failed, misrouted (another bucket), unhandled (stopping).",
		}, []string{"outcome"}),
		Launched: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "dispatcher", Name: "jobs_launched_total",
			Help: "Processors launched (ECS tasks accepted, or local processes started).",
		}),
		LaunchFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "dispatcher", Name: "launch_failures_total",
			Help: "Launches that failed, by reason: capacity (no Fargate capacity), throttled, error; the message is retried after a backoff.",
		}, []string{"reason"}),
		Ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "dispatcher", Name: "jobs_ended_total",
			Help: "Processors seen ending, by result (succeeded: exit 0, the job is finished, which includes inputs recorded in FAILED/; failed) and reason (exit_0, exit_1 error, exit_2 configuration, exit_75 transient, exit_<n>, signal, spot_interruption, failed_to_start, stopped, unknown: an ECS task gone before its exit code was read).",
		}, []string{"result", "reason"}),
	}
	reg.MustRegister(m.Messages, m.Launched, m.LaunchFailures, m.Ended)
	return m
}

// Outcome counts a handled work message.
func (m *Dispatcher) Outcome(outcome string) {
	if m != nil {
		m.Messages.WithLabelValues(outcome).Inc()
	}
}

// ExecEnded counts a local processor's end (LAUNCHER=exec): err is the
// process's (nil: exit 0).
func (m *Dispatcher) ExecEnded(err error) {
	if m == nil {
		return
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		m.Ended.WithLabelValues("succeeded", "exit_0").Inc()
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		m.Ended.WithLabelValues("failed", "exit_"+strconv.Itoa(ee.ExitCode())).Inc()
	case errors.As(err, &ee):
		m.Ended.WithLabelValues("failed", "signal").Inc()
	default:
		m.Ended.WithLabelValues("failed", "error").Inc()
	}
}

// TaskStopped counts an ECS task's end (LAUNCHER=ecs) from its
// container's exit code (nil: unknown) and the task's stop code.
func (m *Dispatcher) TaskStopped(exitCode *int32, stopCode string) {
	if m == nil {
		return
	}
	switch {
	case stopCode == "SpotInterruption":
		m.Ended.WithLabelValues("failed", "spot_interruption").Inc()
	case exitCode != nil && *exitCode == 0:
		m.Ended.WithLabelValues("succeeded", "exit_0").Inc()
	case exitCode != nil:
		m.Ended.WithLabelValues("failed", "exit_"+strconv.Itoa(int(*exitCode))).Inc()
	case stopCode == "TaskFailedToStart":
		m.Ended.WithLabelValues("failed", "failed_to_start").Inc()
	case stopCode != "":
		m.Ended.WithLabelValues("failed", "stopped").Inc()
	default:
		m.Ended.WithLabelValues("failed", "unknown").Inc()
	}
}

// ObserveLauncher wraps l so that its launches are counted, failures
// under reason(err) (nil: "error"; the ECS launcher's main passes one
// that tells capacity from throttling), and InFlight beats hb. The wrapper
// keeps only launch.Launcher's methods (like adapters.WatchLauncher).
func (m *Dispatcher) ObserveLauncher(l launch.Launcher, hb *Heartbeat, reason func(error) string) launch.Launcher {
	if m == nil || l == nil {
		return l
	}
	if reason == nil {
		reason = func(error) string { return "error" }
	}
	return observedLauncher{Launcher: l, m: m, hb: hb, reason: reason}
}

type observedLauncher struct {
	launch.Launcher
	m      *Dispatcher
	hb     *Heartbeat
	reason func(error) string
}

func (l observedLauncher) Launch(ctx context.Context, job launch.Job) error {
	err := l.Launcher.Launch(ctx, job)
	switch {
	case err == nil:
		l.m.Launched.Inc()
	case ctx.Err() != nil:
	default:
		l.m.LaunchFailures.WithLabelValues(l.reason(err)).Inc()
	}
	return err
}

// InFlight beats: the dispatcher's loop lists the running tasks at least
// every few seconds, also when it is at capacity and receives nothing.
func (l observedLauncher) InFlight(ctx context.Context) (map[string]bool, error) {
	keys, err := l.Launcher.InFlight(ctx)
	l.hb.Beat()
	return keys, err
}
