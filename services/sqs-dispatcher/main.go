// Command sqs-dispatcher turns work-queue events into processor launches
// (ECS RunTask, or local processes), and re-queues TODO/ (trigger).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/hevc-encoder/hevc-encoder/pkg/adapters"
	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch/local"
	"github.com/hevc-encoder/hevc-encoder/pkg/logging"
	"github.com/hevc-encoder/hevc-encoder/services/sqs-dispatcher/dispatcher"
)

const usage = `Dispatches work-queue events to hevc-processor runs.

Subcommands:
  sqs-dispatcher [flags]           run the dispatcher until signalled
  sqs-dispatcher trigger [flags]   re-queue every TODO/ object without a running job or a result`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:])
	stop()
	if errors.Is(err, config.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sqs-dispatcher:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string) error {
	cmd := "run"
	if len(args) > 0 && (args[0] == "trigger" || args[0] == "run") {
		cmd, args = args[0], args[1:]
	}
	var (
		store    adapters.Store
		queues   adapters.Queues
		cfg      dispatcher.Config
		launcher string
		procBin  string
		maxTasks int
		dryRun   bool
	)
	set := config.New("sqs-dispatcher "+cmd, usage)
	store.Bind(set)
	queues.Bind(set, "required", "")
	cfg.Bind(set)
	set.String(&launcher, "LAUNCHER", "exec", "how processors start: exec (hevc-processor as a local child process)")
	set.String(&procBin, "PROCESSOR_BIN", "hevc-processor", "processor binary for LAUNCHER=exec")
	set.Int(&maxTasks, "MAX_TASKS", local.DefaultCapacity(0), "most processors running at once")
	set.Bool(&dryRun, "DRY_RUN", false, "trigger: print what would be sent, send nothing")
	set.Check(func() error {
		if launcher != "exec" {
			return fmt.Errorf("LAUNCHER must be exec, got %q", launcher)
		}
		if maxTasks < 1 {
			return fmt.Errorf("MAX_TASKS must be at least 1, got %d", maxTasks)
		}
		return nil
	})
	if err := set.Parse(args); err != nil {
		return err
	}
	log := logging.New("sqs-dispatcher")
	st, err := store.Open(ctx)
	if err != nil {
		return err
	}
	q, err := queues.Open(ctx, queues.Work, store.Region)
	if err != nil {
		return err
	}
	l := local.New(ctx, execProcessor(procBin), maxTasks, func(j launch.Job, err error) {
		if err != nil {
			log.Warn().Str("key", j.Key).Err(err).Msg("processor exited with an error")
		}
	})
	if cmd == "trigger" {
		res, err := dispatcher.Trigger(ctx, st, q, l, dryRun, log)
		fmt.Printf("sent %d, skipped %d running, %d with a result\n", res.Sent, res.InFlight, res.HasResult)
		return err
	}
	d := &dispatcher.Dispatcher{Store: st, Queue: q, Launcher: l, Cfg: cfg, Log: log}
	err = d.Run(ctx)
	l.Wait()
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
		if err := c.Run(); err != nil {
			return fmt.Errorf("%s for %s: %w", bin, job.Key, err)
		}
		return nil
	}
}
