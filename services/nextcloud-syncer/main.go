// Command nextcloud-syncer moves camera uploads from Nextcloud over WebDAV
// into the library. See syncer.Usage and README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hevc-encoder/hevc-encoder/services/nextcloud-syncer/syncer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nextcloud-syncer:", err)
	}
	os.Exit(syncer.ExitCode(err))
}

func realMain(ctx context.Context) error {
	return syncer.Main(ctx, os.Args[1:], os.Getenv, os.Stderr)
}
