// Command hevc-processor encodes one file: TODO/<rel>.mp4 → DONE/<rel>-hevc.mp4.
// On ECS it is one Fargate task per file, the job given in its environment.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/adapters"
	"github.com/hevc-encoder/hevc-encoder/pkg/awserr"
	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/logging"
	"github.com/hevc-encoder/hevc-encoder/services/hevc-processor/processor"
)

// Exit statuses: the contract with the dispatcher and ECS.
const (
	exitOK        = 0  // the job is finished for good (done, no gain, recorded in FAILED/, gone)
	exitError     = 1  // the job could not be finished and its message is left to reappear
	exitUsage     = 2  // bad configuration; nothing was done
	exitTransient = 75 // EX_TEMPFAIL: transient failure; the message reappears after a backoff (queue.RetryDelay)
)

const usage = `Encodes one video from the bucket's TODO/ to DONE/ with libx265, verifies it, and records bad inputs in FAILED/.

While it works, the work message (SQS_RECEIPT_HANDLE) is kept invisible by a
heartbeat. On success it is deleted; on a bad input FAILED/<rel>.mp4.json is
written and the message deleted; on a transient failure the message is handed
back to reappear after a backoff of 10s·2^(SQS_RECEIVE_COUNT-1), at most 15m
(and, after maxReceiveCount, to be dead-lettered). On SIGTERM (Fargate
Spot interruption) ffmpeg is stopped and the message made visible at once.

With TASK_VCPU and TASK_MEMORY_GIB (the ECS task definition sets them), every
job, whatever its outcome, writes a cost record under COSTS/<YYYY-MM>/ (the
task's vCPU- and GB-seconds, at least a minute, and the result's size) and the
result carries the usage in its metadata; sqs-dispatcher status sums them.

Exit status: 0 finished (any outcome that needs no retry); 75 transient failure
(S3 unreachable or silent at start included), will be retried; 143 (130 for SIGINT) interrupted, message released; 2 bad
configuration: a variable is wrong, or the bucket is missing or refuses these
credentials (checked at start, and never taken for "already processed"; the
message is left to reappear); 1 other failure.`

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	var got os.Signal
	stopped := make(chan struct{})
	go func() {
		// Later signals are swallowed: the release of the message must not
		// be cut short by a second SIGTERM (ECS sends SIGKILL when it is
		// done waiting).
		got = <-sigs
		close(stopped)
		cancel()
	}()
	err := realMain(ctx, os.Args[1:])
	code := exitCode(err)
	select {
	case <-stopped:
		if err != nil && !errors.Is(err, config.ErrHelp) {
			code = 128 + int(got.(syscall.Signal))
		}
	default:
	}
	if err != nil && !errors.Is(err, config.ErrHelp) {
		fmt.Fprintln(os.Stderr, "hevc-processor:", err)
	}
	os.Exit(code)
}

// processStart is when the task's process started: its cost record's
// runtime runs from here (one task, one job).
var processStart = time.Now()

// usageError marks configuration errors.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// transientError marks a job that failed and will be retried.
type transientError struct{ error }

func (e transientError) Unwrap() error { return e.error }

func exitCode(err error) int {
	var ue usageError
	var te transientError
	switch {
	case err == nil, errors.Is(err, config.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &te):
		return exitTransient
	default:
		return exitError
	}
}

func realMain(ctx context.Context, args []string) error {
	var (
		store   adapters.Store
		queues  adapters.Queues
		cfg     processor.Config
		key     string
		receipt string
		count   int
	)
	set := config.New("hevc-processor", usage)
	store.Bind(set)
	queues.Bind(set, "optional", "")
	cfg.Bind(set)
	set.String(&key, "S3_OBJECT_KEY", "", "the job: object key TODO/<rel>.mp4 (decoded, not URL-encoded)", config.Required())
	set.String(&receipt, "SQS_RECEIPT_HANDLE", "", "receipt handle of the work message (heartbeat, delete)")
	set.Int(&count, "SQS_RECEIVE_COUNT", 0, "deliveries of the work message so far (set by the dispatcher); sets the retry backoff after a transient failure")
	if err := set.Parse(args); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	log := logging.New("hevc-processor")
	// The bucket and the credentials; not the queue: the task role may only
	// heartbeat and delete its message, and the dispatcher checked the queue.
	job := launch.Job{Key: key, QueueURL: queues.Work, Receipt: receipt, ReceiveCount: count}
	if err := adapters.Preflight(ctx, adapters.Checks{Store: &store, Log: log}); err != nil {
		if adapters.IsNoAnswer(err) && ctx.Err() == nil {
			// S3 down or slow for now (a restart, a cold network): retried
			// after the backoff, not left hidden until START_GRACE ends.
			queues.NoDeadLetter = true
			if q, qerr := queues.Open(ctx, queues.Work, store.Region); qerr == nil {
				processor.RetryLater(ctx, q, job, log.With().Str("key", key).Logger())
			}
			return transientError{err}
		}
		return usageError{err}
	}
	st, err := store.Open(ctx)
	if err != nil {
		return usageError{err}
	}
	queues.NoDeadLetter = true
	q, err := queues.Open(ctx, queues.Work, store.Region)
	if awserr.IsConfig(err) {
		return usageError{fmt.Errorf("open work queue: %w", err)}
	}
	if err != nil {
		return transientError{fmt.Errorf("open work queue: %w", err)}
	}
	p := &processor.Processor{Store: st, Queue: q, Cfg: cfg, Log: log, Started: processStart}
	job.Bucket = st.Bucket()
	if _, err = p.Process(ctx, job); err != nil {
		if awserr.IsConfig(err) && ctx.Err() == nil {
			// A missing bucket, refused credentials: not the file's fault,
			// and retrying will not help until someone fixes the setting.
			return usageError{err}
		}
		return transientError{err}
	}
	return nil
}
