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

	"github.com/hevc-encoder/hevc-encoder/pkg/adapters"
	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/logging"
	"github.com/hevc-encoder/hevc-encoder/services/hevc-processor/processor"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:])
	stop()
	if errors.Is(err, config.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hevc-processor:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string) error {
	var (
		store   adapters.Store
		queues  adapters.Queues
		cfg     processor.Config
		key     string
		receipt string
	)
	set := config.New("hevc-processor", "Encodes one video from the bucket's TODO/ to DONE/ with libx265, verifies it, and records bad inputs in FAILED/.")
	store.Bind(set)
	queues.Bind(set, "optional", "")
	cfg.Bind(set)
	set.String(&key, "S3_OBJECT_KEY", "", "the job: object key TODO/<rel>.mp4 (decoded, not URL-encoded)", config.Required())
	set.String(&receipt, "SQS_RECEIPT_HANDLE", "", "receipt handle of the work message (heartbeat, delete)")
	if err := set.Parse(args); err != nil {
		return err
	}
	log := logging.New("hevc-processor")
	st, err := store.Open(ctx)
	if err != nil {
		return err
	}
	q, err := queues.Open(ctx, queues.Work, store.Region)
	if err != nil {
		return err
	}
	p := &processor.Processor{Store: st, Queue: q, Cfg: cfg, Log: log}
	job := launch.Job{Bucket: st.Bucket(), Key: key, QueueURL: queues.Work, Receipt: receipt}
	_, err = p.Process(ctx, job)
	return err
}
