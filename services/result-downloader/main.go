// Command result-downloader installs DONE/<rel>-hevc.mp4 results beside
// their originals in the library and removes the originals once verified.
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
	"github.com/hevc-encoder/hevc-encoder/pkg/logging"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/downloader"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:])
	stop()
	if errors.Is(err, config.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "result-downloader:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string) error {
	var (
		store  adapters.Store
		queues adapters.Queues
		cfg    downloader.Config
	)
	set := config.New("result-downloader", "Consumes the results queue (and lists DONE/ every RECONCILE_INTERVAL) and installs each verified <rel>-hevc.mp4 beside its original, then removes the original and the DONE/ object.")
	store.Bind(set)
	queues.Bind(set, "", "optional")
	cfg.Bind(set)
	if err := set.Parse(args); err != nil {
		return err
	}
	log := logging.New("result-downloader")
	st, err := store.Open(ctx)
	if err != nil {
		return err
	}
	q, err := queues.Open(ctx, queues.Results, store.Region)
	if err != nil {
		return err
	}
	d := &downloader.Downloader{Store: st, Queue: q, Cfg: cfg, Log: log}
	return d.Run(ctx)
}
