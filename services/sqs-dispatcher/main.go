// Command sqs-dispatcher turns work-queue events into processor launches
// (ECS RunTask, or local processes), re-queues TODO/ (trigger), moves the
// dead-letter queue back (trigger --redrive) and reports the pipeline's
// state (status).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/adapters"
	"github.com/hevc-encoder/hevc-encoder/pkg/awserr"
	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/cost"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	ecslaunch "github.com/hevc-encoder/hevc-encoder/pkg/launch/ecs"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch/local"
	"github.com/hevc-encoder/hevc-encoder/pkg/logging"
	"github.com/hevc-encoder/hevc-encoder/pkg/metrics"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/services/sqs-dispatcher/dispatcher"
)

const commands = `Commands:
  sqs-dispatcher [run] [flags]       dispatch work-queue events until signalled
  sqs-dispatcher trigger [flags]     re-queue every TODO/ object without a running task or a result
  sqs-dispatcher status [flags]      objects, queue depths and running tasks (LIBRARY_ROOT: the library's history and trash)
  sqs-dispatcher healthcheck         exit 0 if the running dispatcher's /healthz (METRICS_ADDR) says healthy
  sqs-dispatcher <command> --help    the command's flags and variables`

var usages = map[string]string{
	"run": `Dispatches work-queue events to hevc-processor runs: one ECS task (LAUNCHER=ecs,
Fargate Spot falling back to Fargate) or one local process (LAUNCHER=exec) per
file. Events come as S3 sends them (ObjectCreated:*) or as MinIO does
(s3:ObjectCreated:*). They are validated (TODO/<rel>.mp4 within the library
rules; anything else is deleted and logged as a warning with the reason; an
event for a bucket other than S3_BUCKET is logged as an error and left in the
queue, to be dead-lettered), files already in DONE/ are cleaned up instead of
encoded, a key whose task runs is never launched twice, and at MAX_TASKS
running tasks nothing is received. A launched job's message stays hidden for
START_GRACE, until the processor's heartbeat takes over. A failed launch, or
a processor that exits 75 (transient), hands the message back for a retry
after 10s, 20s, 40s, ... (at most 15m) by its receive count.

Every RECONCILE_INTERVAL, once the work queue is empty, TODO/ objects older
than RECONCILE_GRACE with no running task and no result in DONE/ or FAILED/
are re-queued (lost notifications, a purged queue, a .Mp4 spelling), each at
most once per run of the dispatcher.

At start (every command) the bucket, the queues, the credentials and, with
LAUNCHER=ecs, the cluster and task definition are checked: a wrong one exits
at once (status 2) with the variable named, before any message is received.
Calls refused later for configuration reasons are logged at error level and,
once they have lasted AUTH_FAIL_AFTER without a success, end the service
(status 1).

With BUDGET_USD, launching stops once this calendar month's (UTC) estimated
AWS cost reaches it: the sum of the processors' COSTS/ records (vCPU- and
GB-seconds at FARGATE_SPOT_*_HOUR, result bytes at S3_TRANSFER_OUT_GB),
summed at most once a minute. Nothing is received meanwhile (messages stay
in the queue, untouched); the log says so once. Launching resumes when the
month changes, or after a restart with a higher BUDGET_USD.

With METRICS_ADDR (e.g. :9090) it serves Prometheus metrics on /metrics
(messages by outcome, jobs launched, launch failures, processors ended by
result and reason, queue depth and the age of the oldest message received)
and /healthz: 200 once the start-up checks passed, while the dispatch loop
goes round and AWS accepts its calls; 503 with the reason otherwise.

` + commands,
	"trigger": `Re-queues work: lists TODO/ (paginated) and sends an S3-event message, in
batches of 10, for every key that has no running task (LAUNCHER=ecs) and no
result in DONE/.

  --redrive   instead, move every message of the work queue's dead-letter
              queue back to the work queue
  --dry-run   print what would be sent (or moved) and send nothing
  --json      print the counts as JSON

` + commands,
	"status": `Prints the objects in TODO/, DONE/ and FAILED/, the work and results queues'
depth (visible and in flight) with their dead-letter queues, and the running
tasks (LAUNCHER=ecs, when ECS_CLUSTER and ECS_TASK_DEFINITION are set; no
other launcher setting is needed).

It also shows this month's estimated AWS cost (UTC month; the COSTS/ records
at the configured prices: Fargate Spot vCPU and memory, S3 transfer out of
the results) and, with BUDGET_USD, the budget and whether it is reached.

With LIBRARY_ROOT (the library result-downloader installs into) it adds the
library's history (<library>/.hevc-encoder/history.jsonl): files converted,
bytes saved and the ratio, no-gain files, failures grouped by reason, the
slowest and the largest jobs, over all time and over the last 7 days; and the
trash's size with how to restore an original. With LIBRARY_ROOT and no
S3_BUCKET it shows the library alone and needs no AWS settings at all.

  --json      print the status as JSON instead of tables

` + commands,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if errors.Is(err, config.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sqs-dispatcher:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError marks configuration errors (exit status 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

type options struct {
	store    adapters.Store
	queues   adapters.Queues
	watch    adapters.Watch
	cfg      dispatcher.Config
	launcher string
	procBin  string
	maxTasks int
	ecs      ecslaunch.Config
	subnets  string
	groups   string
	dryRun   bool
	redrive  bool
	asJSON   bool
	libRoot  string // status: LIBRARY_ROOT
	metrics  metrics.Config
	budget   cost.BudgetConfig // run and status: BUDGET_USD and prices
}

func (o *options) bind(set *config.Set, cmd string) {
	// status may show a library alone: the bucket and work queue are then
	// optional (checked below).
	o.store.Optional = cmd == "status"
	o.store.Bind(set)
	work, results := "required", ""
	if cmd == "status" {
		work, results = "optional", "optional"
		set.String(&o.libRoot, "LIBRARY_ROOT", "", "library root: adds its history (converted, saved, failures by reason, slowest and largest jobs; all time and last 7 days) and its trash; without S3_BUCKET, the library alone")
		set.Check(func() error {
			switch {
			case !o.store.Configured() && o.libRoot == "":
				return fmt.Errorf("S3_BUCKET is required (or LIBRARY_ROOT alone, for the library's history and trash)")
			case o.store.Configured() && o.queues.Work == "":
				return fmt.Errorf("WORK_QUEUE_URL is required")
			}
			if o.libRoot != "" {
				if fi, err := os.Stat(o.libRoot); err != nil || !fi.IsDir() {
					return fmt.Errorf("LIBRARY_ROOT: %s is not a directory", o.libRoot)
				}
			}
			return nil
		})
	}
	o.queues.Bind(set, work, results)
	if cmd == "run" {
		o.cfg.Bind(set)
		o.watch.Bind(set)
		o.metrics.Bind(set)
	}
	if cmd == "run" || cmd == "status" {
		o.budget.Bind(set)
	}
	set.String(&o.launcher, "LAUNCHER", "ecs", "how processors start: ecs (one ECS task per file) or exec (hevc-processor as a local child process; alias local)")
	set.String(&o.procBin, "PROCESSOR_BIN", "hevc-processor", "processor binary for LAUNCHER=exec")
	set.Int(&o.maxTasks, "MAX_TASKS", 0, "most processors running at once (0: 10 for ecs, cores/X265 threads for exec)")
	set.String(&o.ecs.Cluster, "ECS_CLUSTER", "", "ECS cluster name or ARN (LAUNCHER=ecs)")
	set.String(&o.ecs.TaskDefinition, "ECS_TASK_DEFINITION", "", "processor task definition: family, family:revision or ARN (LAUNCHER=ecs)")
	set.String(&o.ecs.Container, "ECS_CONTAINER_NAME", "hevc-processor", "the processor's container in the task definition (receives the job's environment)")
	set.String(&o.subnets, "ECS_SUBNETS", "", "comma-separated subnet IDs for the tasks' awsvpc network (LAUNCHER=ecs)")
	set.String(&o.groups, "ECS_SECURITY_GROUPS", "", "comma-separated security group IDs for the tasks")
	set.Bool(&o.ecs.AssignPublicIP, "ECS_ASSIGN_PUBLIC_IP", false, "give tasks a public IP (public subnets without a NAT gateway)")
	set.String(&o.ecs.CapacityProvider, "ECS_CAPACITY_PROVIDER", ecslaunch.FargateSpot, "FARGATE_SPOT (falls back to FARGATE when Spot has no capacity) or FARGATE")
	set.Int(&o.ecs.SpotFallbackAfter, "ECS_SPOT_FALLBACK_AFTER", 3, "Spot capacity failures in a row before tasks run on FARGATE (0: never fall back)")
	set.Duration(&o.ecs.SpotRetryAfter, "ECS_SPOT_RETRY_AFTER", 15*time.Minute, "how long to stay on FARGATE after a fallback before trying Spot again")
	set.String(&o.ecs.PlatformVersion, "ECS_PLATFORM_VERSION", "", "Fargate platform version (empty: LATEST)")
	set.String(&o.ecs.Endpoint, "ECS_ENDPOINT", "", "custom ECS endpoint URL (tests); empty for AWS")
	if cmd == "trigger" {
		set.Bool(&o.dryRun, "DRY_RUN", false, "print what would be sent, send nothing")
		fs := set.FlagSet()
		fs.BoolVar(&o.redrive, "redrive", false, "move the dead-letter queue back to the work queue")
		fs.BoolVar(&o.asJSON, "json", false, "print the counts as JSON")
	}
	if cmd == "status" {
		set.FlagSet().BoolVar(&o.asJSON, "json", false, "print the status as JSON")
	}
	set.Check(func() error {
		switch o.launcher {
		case "local":
			o.launcher = "exec"
		case "exec", "ecs":
		default:
			return fmt.Errorf("LAUNCHER must be ecs or exec, got %q", o.launcher)
		}
		if o.maxTasks < 0 {
			return fmt.Errorf("MAX_TASKS must not be negative, got %d", o.maxTasks)
		}
		if o.maxTasks == 0 {
			o.maxTasks = 10
			if o.launcher == "exec" {
				o.maxTasks = local.DefaultCapacity(0)
			}
		}
		o.ecs.MaxTasks = o.maxTasks
		o.ecs.Subnets, o.ecs.SecurityGroups = splitList(o.subnets), splitList(o.groups)
		if o.ecs.SpotFallbackAfter <= 0 {
			o.ecs.SpotFallbackAfter = -1
		}
		if o.launcher == "ecs" && cmd != "status" {
			return o.ecs.Validate()
		}
		return nil
	})
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func realMain(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cmd := "run"
	if len(args) > 0 {
		switch args[0] {
		case "run", "trigger", "status":
			cmd, args = args[0], args[1:]
		case "healthcheck":
			return healthcheck(ctx, args[1:], getenv, stdout)
		case "help":
			fmt.Fprintln(stdout, commands)
			return config.ErrHelp
		default:
			if !strings.HasPrefix(args[0], "-") {
				return usageError{fmt.Errorf("unknown command %q\n%s", args[0], commands)}
			}
		}
	}
	var o options
	set := config.New("sqs-dispatcher "+cmd, usages[cmd])
	set.SetGetenv(getenv)
	set.FlagSet().SetOutput(stdout)
	o.bind(set, cmd)
	if err := set.Parse(args); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if len(set.Args()) > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", set.Args())}
	}
	if cmd == "status" && !o.store.Configured() {
		return libraryStatus(o, stdout) // no AWS settings: nothing to check or open
	}
	log := logging.New("sqs-dispatcher")
	// Serving from the start: /healthz says "not ready" during the checks.
	mctx, stopMetrics := context.WithCancel(ctx)
	defer stopMetrics()
	met, err := startMetrics(mctx, o.metrics.Addr, log)
	if err != nil {
		return err
	}
	defer met.stop(stopMetrics)
	// Before anything is received: a wrong bucket or queue must not get as
	// far as judging (and deleting) work messages.
	checks := adapters.Checks{Store: &o.store, Queues: &o.queues, Log: log}
	if o.launcher == "ecs" && (cmd != "status" || (o.ecs.Cluster != "" && o.ecs.TaskDefinition != "")) {
		ec := o.ecs
		ec.Region = o.store.Region
		checks.ECS = &ec
	}
	if err := adapters.Preflight(ctx, checks); err != nil {
		return usageError{err}
	}
	var w *awserr.Watchdog
	if cmd == "run" {
		// Credentials revoked or a bucket removed later: error lines, then
		// an exit after AUTH_FAIL_AFTER instead of retrying forever.
		w, ctx = awserr.NewWatchdog(ctx, o.watch.FailAfter, log)
		defer w.Stop()
		met.watch(w)
	}
	st, err := o.store.Open(ctx)
	if err != nil {
		return err
	}
	st = adapters.WatchStore(st, w)
	q, err := o.queues.Open(ctx, o.queues.Work, o.store.Region)
	if err != nil {
		return err
	}
	q = adapters.WatchQueue(q, w)

	l, wait, err := newLauncher(ctx, o, cmd, met, log)
	if err != nil {
		return err
	}

	switch cmd {
	case "trigger":
		return trigger(ctx, o, st, q, l, log, stdout)
	case "status":
		return status(ctx, o, st, q, l, stdout)
	}
	err = run(ctx, mctx, o, st, q, l, w, met, log)
	if wait != nil {
		wait()
	}
	if werr := w.Err(); werr != nil {
		return werr
	}
	return err
}

func trigger(ctx context.Context, o options, st storage.Store, q queue.Queue, l launch.Launcher, log zerolog.Logger, stdout io.Writer) error {
	if o.redrive {
		n, err := dispatcher.Redrive(ctx, q, o.dryRun)
		switch {
		case o.asJSON:
			if jerr := json.NewEncoder(stdout).Encode(map[string]any{"redriven": n, "dry_run": o.dryRun}); jerr != nil && err == nil {
				err = jerr
			}
		case o.dryRun:
			fmt.Fprintf(stdout, "would move %d message(s) from the dead-letter queue back to %s\n", n, q.Name())
		default:
			fmt.Fprintf(stdout, "moved %d message(s) from the dead-letter queue back to %s\n", n, q.Name())
		}
		return err
	}
	opts := dispatcher.TriggerOptions{DryRun: o.dryRun}
	if o.dryRun && !o.asJSON {
		opts.Out = stdout
	}
	res, err := dispatcher.TriggerWith(ctx, st, q, l, opts, log)
	if o.asJSON {
		out := struct {
			dispatcher.TriggerResult
			DryRun bool `json:"dry_run"`
		}{res, o.dryRun}
		if jerr := json.NewEncoder(stdout).Encode(out); jerr != nil && err == nil {
			err = jerr
		}
		return err
	}
	verb := "sent"
	if o.dryRun {
		verb = "would send"
	}
	fmt.Fprintf(stdout, "%s %d; skipped %d running, %d with a result in DONE/, %d invalid\n", verb, res.Sent, res.InFlight, res.HasResult, res.Invalid)
	return err
}

// execProcessor runs hevc-processor as a child with the job in its
// environment, the way ECS passes it to the container.
func execProcessor(bin string) local.RunFunc {
	return func(ctx context.Context, job launch.Job) error {
		c := exec.CommandContext(ctx, bin)
		c.Env = os.Environ()
		for k, v := range job.Env() {
			c.Env = append(c.Env, k+"="+v)
		}
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		// SIGTERM, not SIGKILL, so the processor hands its message back.
		c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
		c.WaitDelay = 2 * time.Minute
		if err := c.Run(); err != nil {
			return fmt.Errorf("%s for %s: %w", bin, job.Key, err)
		}
		return nil
	}
}

// libraryStatus is status with LIBRARY_ROOT and no bucket: the library's
// history and trash alone.
func libraryStatus(o options, stdout io.Writer) error {
	now := time.Now().UTC()
	ls, err := dispatcher.CollectLibrary(o.libRoot, now)
	if err != nil {
		return err
	}
	s := dispatcher.Status{Library: ls, Time: now}
	if o.asJSON {
		return s.WriteJSON(stdout)
	}
	return s.WriteTable(stdout)
}

// newLauncher is cmd's view of the processors: ECS (run and trigger; for
// status only when the cluster and task definition are set), local
// processors for run (with wait, which waits for them to end), or none.
func newLauncher(ctx context.Context, o options, cmd string, met *runMetrics, log zerolog.Logger) (l launch.Launcher, wait func(), err error) {
	switch {
	case o.launcher == "ecs" && cmd == "status":
		// Status only lists tasks, and only when told where: it must work
		// from any machine with the bucket and queue settings alone.
		if o.ecs.Cluster != "" && o.ecs.TaskDefinition != "" {
			o.ecs.Region, o.ecs.Log = o.store.Region, log
			el, err := ecslaunch.NewLister(ctx, o.ecs)
			if err != nil {
				return nil, nil, usageError{err}
			}
			l = el
		}
	case o.launcher == "ecs":
		o.ecs.Region, o.ecs.Log = o.store.Region, log
		if md := met.dispatcher(); md != nil {
			o.ecs.OnStopped = func(s ecslaunch.Stopped) { md.TaskStopped(s.ExitCode, s.StopCode) }
		}
		el, err := ecslaunch.New(ctx, o.ecs)
		if err != nil {
			return nil, nil, err
		}
		l = el
	case cmd == "run":
		ll := local.New(ctx, execProcessor(o.procBin), o.maxTasks, func(j launch.Job, err error) {
			if ctx.Err() == nil {
				met.dispatcher().ExecEnded(err)
			}
			if err != nil {
				log.Warn().Str("key", j.Key).Err(err).Msg("processor exited with an error")
			}
		})
		l, wait = ll, ll.Wait
	default:
		// Local processors of another dispatcher process are not visible
		// from here: nothing is known to be running.
	}
	return l, wait, nil
}

// status prints the pipeline's state: bucket, queues, processors, this
// month's cost and, with LIBRARY_ROOT, the library's history.
func status(ctx context.Context, o options, st storage.Store, q queue.Queue, l launch.Launcher, stdout io.Writer) error {
	var err error
	var results queue.Queue
	if o.queues.Results != "" {
		if results, err = o.queues.Open(ctx, o.queues.Results, o.store.Region); err != nil {
			return err
		}
	}
	s, err := dispatcher.CollectStatus(ctx, st, q, results, l)
	if err != nil {
		return err
	}
	if s.Cost, err = dispatcher.CollectCost(ctx, st, o.budget, s.Time); err != nil {
		return err
	}
	if o.libRoot != "" {
		if s.Library, err = dispatcher.CollectLibrary(o.libRoot, s.Time); err != nil {
			return err
		}
	}
	if o.asJSON {
		return s.WriteJSON(stdout)
	}
	return s.WriteTable(stdout)
}

// run dispatches until ctx ends, with the metrics and the watchdog on the
// store, queue and launcher.
func run(ctx, mctx context.Context, o options, st storage.Store, q queue.Queue, l launch.Launcher, w *awserr.Watchdog, met *runMetrics, log zerolog.Logger) error {
	if o.launcher == "ecs" {
		l = adapters.WatchLauncher(l, w, "ECS cluster "+o.ecs.Cluster)
	}
	l = met.dispatcher().ObserveLauncher(l, met.heartbeat(), launchReason)
	go met.queues().Poll(mctx, q, "work", metrics.DepthInterval, log)
	q = met.queues().Observe(q, "work", met.heartbeat())
	d := &dispatcher.Dispatcher{Store: st, Queue: q, Launcher: l, Cfg: o.cfg, Log: log}
	if o.budget.USD > 0 {
		// A raised BUDGET_USD takes effect at a restart; a new month at once.
		d.Budget = &dispatcher.Budget{Budget: cost.Budget{Cfg: o.budget, Store: st}}
	}
	if md := met.dispatcher(); md != nil {
		d.OnOutcome = func(out dispatcher.Outcome) { md.Outcome(string(out)) }
		d.OnLoop = met.heartbeat().Beat
	}
	met.ready()
	log.Info().Str("launcher", o.launcher).Int("max_tasks", o.maxTasks).Str("queue", q.Name()).Msg("dispatching")
	return d.Run(ctx)
}
