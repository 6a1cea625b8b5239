// Command result-downloader installs DONE/<rel>-hevc.mp4 results beside
// their originals in the library and removes the originals once verified.
// `result-downloader process` is the one-shot flow: upload, then wait for
// and install the results.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/adapters"
	"github.com/hevc-encoder/hevc-encoder/pkg/awserr"
	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/metrics"
	"github.com/hevc-encoder/hevc-encoder/pkg/notify"
	"github.com/hevc-encoder/hevc-encoder/pkg/progress"
	"github.com/hevc-encoder/hevc-encoder/pkg/upload"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/downloader"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/process"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, config.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "result-downloader:", err)
		os.Exit(1)
	}
}

const about = `Installs results: consumes the results queue (S3 ObjectCreated on DONE/)
and lists DONE/ at start and every RECONCILE_INTERVAL. Each DONE/ result
(a.mp4's is DONE/<dir>/a-hevc.mp4, a.MP4's DONE/<dir>/a-hevc-MP4.mp4) is
downloaded beside its original, its checksum and video verified against the
original, fsynced, renamed to its key's name (never over another file),
given the original's mtime and mode; then the original, the DONE/ object and
the message are deleted. Results that fail verification or whose name is
taken stay in DONE/ and are reported; keys that would escape the library are
refused. Runs until SIGINT/SIGTERM (with --once: one pass over DONE/).

The result's video is compared with the original (streams, duration) and,
with VERIFY_DECODE=always, decoded in full. With auto (the default) that
decode is skipped for results whose bytes match the SHA-256 hevc-processor
recorded after decoding them itself; other objects are decoded.

At start the bucket, RESULTS_QUEUE_URL and the credentials are checked: a
wrong one exits at once (status 1) with the variable named. Later, calls
refused for configuration reasons (credentials, permissions, a removed
bucket or queue) are logged at error level and, once they have lasted
AUTH_FAIL_AFTER without a success, end the service (status 1).

Every finished file leaves one JSON line in <library>/.hevc-encoder/history.jsonl
(converted, not installed, and each FAILED/ record: failed or no gain, read
at every reconcile, each once), which sqs-dispatcher status summarises.

With NOTIFY_URL, each result not installed and each job that failed (a new
FAILED/ record) is POSTed there as JSON once (see NOTIFY_FORMAT); a
receiver that is slow or down never holds up nor fails the service.

What becomes of a verified original is ORIGINALS: by default it is moved to
<library>/.hevc-encoder/trash/<rel> (a rename on the same file system) and
removed TRASH_DAYS later; delete removes it at once, keep leaves it beside
its result. An original the trash cannot take (another file system, a full
disk, the name already there) is kept in place and reported.

With METRICS_ADDR (e.g. :9090) it serves Prometheus metrics on /metrics
(results by outcome: installed, rejected, collision, refused; bytes
downloaded, before and after, saved; results queue depth and the age of the
oldest message received) and /healthz: 200 once the start-up checks passed
and while AWS accepts its calls, 503 with the reason otherwise.

Subcommands:
  result-downloader healthcheck       exit 0 if the running service's
                                      /healthz (METRICS_ADDR) says healthy
  result-downloader process [flags]   upload, then wait for and install the
                                      results (see process --help)
  result-downloader restore <rel>     move a trashed original back and remove
                                      its result (see restore --help)`

const aboutProcess = `Runs s3-uploader once over the library, then installs results as they
arrive until TODO/ and DONE/ are empty (or --timeout passes), printing
queued / processing / done / failed as it goes: bars on a terminal, log
lines otherwise. When nothing has moved for STALL_AFTER it says what is
stuck and why (e.g. "13 in TODO/, none queued or running"), and again every
STALL_AFTER, so it never waits silently. --skip-upload only waits and
installs. With --dry-run it only lists what would be uploaded. At the end it
lists files uploaded in this run that ended neither installed nor in
FAILED/. Exits 0 when everything was converted; 1 when anything failed, was
not installed, ended unaccounted for, or is still pending at the timeout.
WORK_QUEUE_URL is optional: with it, "processing" counts the jobs running
and a stall names the queued, running and dead-lettered counts; without it,
everything in TODO/ counts as queued.

At start the bucket, the queues and the credentials are checked; a wrong
one ends the run at once with the variable named.

With NOTIFY_URL, each file that fails and the end of the run (its summary)
are POSTed there as JSON (see NOTIFY_FORMAT); a receiver that is slow or
down never fails the run, and delays its end by at most 10 s.`

// crashEnv names a crash point at which the process kills itself with
// SIGKILL; tests use it to check that a re-run converges. Not for users.
const crashEnv = "RESULT_DOWNLOADER_CRASH_AT"

func crashHook() func(string) {
	at := os.Getenv(crashEnv)
	if at == "" {
		return nil
	}
	return func(point string) {
		if point == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal arrives
		}
	}
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "process" {
		return processMain(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheckMain(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "restore" {
		return restoreMain(args[1:], stdout, stderr)
	}
	var (
		store  adapters.Store
		queues adapters.Queues
		watch  adapters.Watch
		cfg    downloader.Config
		mcfg   metrics.Config
	)
	set := config.New("result-downloader", about)
	set.FlagSet().SetOutput(stderr)
	store.Bind(set)
	queues.Bind(set, "", "optional")
	watch.Bind(set)
	cfg.Bind(set)
	var ncfg notify.Config
	ncfg.Bind(set)
	mcfg.Bind(set)
	if err := set.Parse(args); err != nil {
		return err
	}
	if len(set.Args()) > 0 {
		return fmt.Errorf("unexpected arguments %q (see --help)", set.Args())
	}
	prog := progress.New(stderr, progress.Options{})
	defer prog.Close()
	log := prog.NewLogger("result-downloader")
	var met *runMetrics
	if !cfg.Once {
		// Serving from the start: /healthz says "not ready" during the
		// checks.
		var err error
		if met, err = startMetrics(ctx, mcfg.Addr, log); err != nil {
			return err
		}
		defer met.stop()
	}
	if err := adapters.Preflight(ctx, adapters.Checks{Store: &store, Queues: &queues, Log: log}); err != nil {
		return err
	}
	// Credentials revoked or a bucket removed later: error lines, then an
	// exit after AUTH_FAIL_AFTER (the loops would retry forever).
	w, ctx := awserr.NewWatchdog(ctx, watch.FailAfter, log)
	defer w.Stop()
	st, err := store.Open(ctx)
	if err != nil {
		return err
	}
	st = adapters.WatchStore(st, w)
	ncfg.Source = "result-downloader"
	notifier := notify.New(ncfg, log)
	defer closeNotify(ctx, notifier, serviceNotifyGrace)
	if cfg.Once {
		d := &downloader.Downloader{Store: st, Cfg: cfg, Log: log, Progress: prog, Crash: crashHook(), Notify: notifier}
		log.Info().Str("library", cfg.Root).Int("concurrency", cfg.Concurrency).Str("verify_decode", cfg.VerifyDecode).Msg("installing what DONE/ holds, once")
		sum, err := d.RunOnce(ctx)
		prog.Close()
		log.Info().Int("installed", sum.Installed).Int("not_installed", len(sum.Problems)).Msg("done")
		sum.Print(stdout)
		if werr := w.Err(); werr != nil {
			return werr
		}
		return err
	}
	q, err := queues.Open(ctx, queues.Results, store.Region)
	if err != nil {
		return err
	}
	q = adapters.WatchQueue(q, w)
	q = met.observe(ctx, q, log)
	if q == nil {
		log.Warn().Dur("interval", cfg.Reconcile).Msg("no RESULTS_QUEUE_URL: results are found only by listing DONE/")
	}
	d := &downloader.Downloader{Store: st, Queue: q, Cfg: cfg, Log: log, Progress: prog, Crash: crashHook(), Notify: notifier}
	met.count(d)
	met.ready(w)
	log.Info().Str("library", cfg.Root).Int("concurrency", cfg.Concurrency).Str("verify_decode", cfg.VerifyDecode).Msg("started")
	err = d.Run(ctx)
	if werr := w.Err(); werr != nil {
		return werr
	}
	return err
}

func processMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		store         adapters.Store
		queues        adapters.Queues
		watch         adapters.Watch
		up            upload.Config
		down          downloader.Config
		root          string
		concurrency   int
		skipUpload    bool
		timeout, poll time.Duration
		stallAfter    time.Duration
	)
	set := config.New("result-downloader process", aboutProcess)
	set.FlagSet().SetOutput(stderr)
	store.Bind(set)
	queues.Bind(set, "optional", "optional")
	watch.Bind(set)
	set.String(&root, "LIBRARY_ROOT", "", "library root directory", config.Required())
	set.Int(&concurrency, "CONCURRENCY", 4, "parallel uploads, and results installed at once")
	up.BindSelection(set)
	down.BindModes(set)
	down.BindVerify(set)
	var ncfg notify.Config
	ncfg.Bind(set)
	down.BindOriginals(set)
	set.Bool(&skipUpload, "SKIP_UPLOAD", false, "do not upload; only wait for the work already queued and install its results")
	set.Duration(&timeout, "TIMEOUT", 0, "stop waiting after this long (e.g. 6h); 0 waits until everything is done (saying what is stuck every STALL_AFTER)")
	set.Duration(&stallAfter, "STALL_AFTER", 5*time.Minute, "when nothing moved for this long, say what is stuck and why (TODO/ count, work queue, dead-letter queue), and again every STALL_AFTER")
	set.Duration(&poll, "POLL_INTERVAL", 30*time.Second, "how often TODO/, DONE/ and FAILED/ are listed")
	set.Check(func() error {
		if concurrency < 1 {
			return fmt.Errorf("CONCURRENCY must be at least 1, got %d", concurrency)
		}
		if timeout < 0 || poll <= 0 {
			return fmt.Errorf("TIMEOUT must not be negative and POLL_INTERVAL must be positive")
		}
		if stallAfter <= 0 {
			return fmt.Errorf("STALL_AFTER must be positive, got %s", stallAfter)
		}
		return nil
	})
	if err := set.Parse(args); err != nil {
		return err
	}
	if len(set.Args()) > 0 {
		return fmt.Errorf("unexpected arguments %q (see process --help)", set.Args())
	}
	prog := progress.New(stderr, progress.Options{})
	defer prog.Close()
	log := prog.NewLogger("result-downloader")
	if err := adapters.Preflight(ctx, adapters.Checks{Store: &store, Queues: &queues, Log: log}); err != nil {
		return err
	}
	w, ctx := awserr.NewWatchdog(ctx, watch.FailAfter, log)
	defer w.Stop()
	st, err := store.Open(ctx)
	if err != nil {
		return err
	}
	st = adapters.WatchStore(st, w)
	results, err := queues.Open(ctx, queues.Results, store.Region)
	if err != nil {
		return err
	}
	results = adapters.WatchQueue(results, w)
	work, err := queues.Open(ctx, queues.Work, store.Region)
	if err != nil {
		return err
	}
	work = adapters.WatchQueue(work, w)
	ncfg.Source = "result-downloader process"
	notifier := notify.New(ncfg, log)
	defer closeNotify(ctx, notifier, processNotifyGrace)
	up.Root, up.Concurrency = root, concurrency
	down.Root, down.Concurrency, down.Wait = root, concurrency, min(poll, 20*time.Second)
	o := process.Options{
		Store: st, Work: work, Poll: poll, Timeout: timeout, StallAfter: stallAfter, Progress: prog, Log: log,
		Downloader: &downloader.Downloader{Store: st, Queue: results, Cfg: down, Log: log, Progress: prog, Crash: crashHook(), Notify: notifier},
	}
	if !skipUpload {
		o.Uploader = &upload.Uploader{Store: st, Cfg: up, Log: log.With().Str("step", "upload").Logger(), Progress: prog}
	} else if up.DryRun {
		return fmt.Errorf("--dry-run only applies to the upload; it cannot be combined with --skip-upload")
	}
	rep, err := process.Run(ctx, o)
	prog.Close()
	log.Info().Int("installed", rep.Installed).Int("failed", len(rep.Failed)).Int("queued", rep.Queued).
		Int("processing", rep.Processing).Int("waiting", rep.Waiting).Bool("timed_out", rep.TimedOut).Msg("process finished")
	rep.Print(stdout)
	if !rep.DryRun {
		notifier.Notify(rep.Notification(err))
	}
	if werr := w.Err(); werr != nil {
		return werr
	}
	return err
}
