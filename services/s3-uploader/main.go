// Command s3-uploader puts every library .mp4 that is not HEVC yet into the
// bucket's TODO/, where the work queue picks it up.
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
	"github.com/hevc-encoder/hevc-encoder/services/s3-uploader/uploader"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:])
	stop()
	if errors.Is(err, config.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3-uploader:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string) error {
	var (
		store adapters.Store
		cfg   uploader.Config
	)
	set := config.New("s3-uploader", "Walks the library once and uploads every H.264 .mp4 without a result to TODO/ (with its size, mtime and SHA-256).")
	store.Bind(set)
	cfg.Bind(set)
	if err := set.Parse(args); err != nil {
		return err
	}
	log := logging.New("s3-uploader")
	st, err := store.Open(ctx)
	if err != nil {
		return err
	}
	u := &uploader.Uploader{Store: st, Cfg: cfg, Log: log}
	sum, err := u.Run(ctx)
	log.Info().Str("summary", sum.String()).Msg("done")
	return err
}
