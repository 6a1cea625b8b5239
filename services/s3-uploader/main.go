// Command s3-uploader puts every library .mp4 that is not HEVC yet into the
// bucket's TODO/, where the work queue picks it up.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hevc-encoder/hevc-encoder/pkg/adapters"
	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/progress"
	"github.com/hevc-encoder/hevc-encoder/pkg/upload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, config.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3-uploader:", err)
		os.Exit(1)
	}
}

const about = `Walks the library once and uploads every H.264 .mp4 to TODO/<rel>.mp4
(with its size, mtime and SHA-256), skipping: results (*-hevc.mp4, and
*-hevc-MP4.mp4 for originals spelled .MP4); files beside their result name
(reported: an HEVC copy of the same duration, both kept, or a stranger with
that name); files that are already HEVC; files whose video bit rate is below
MIN_BITRATE (HEVC would save little or nothing: logged with both rates and
counted in the summary); files whose TODO/ object, DONE/ result
or FAILED/ record was made from the same bytes; files modified within
MIN_AGE; excluded names. Prints a summary; exits 1 if any upload failed.
On a terminal each upload shows a progress bar. At start the bucket and the
credentials are checked: a wrong one exits at once with the variable named.`

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		store adapters.Store
		cfg   upload.Config
	)
	set := config.New("s3-uploader", about)
	set.FlagSet().SetOutput(stderr)
	store.Bind(set)
	cfg.Bind(set)
	if err := set.Parse(args); err != nil {
		return err
	}
	if len(set.Args()) > 0 {
		return fmt.Errorf("unexpected arguments %q (see --help)", set.Args())
	}
	prog := progress.New(stderr, progress.Options{})
	defer prog.Close()
	log := prog.NewLogger("s3-uploader")
	if err := adapters.Preflight(ctx, adapters.Checks{Store: &store, Log: log}); err != nil {
		return err
	}
	st, err := store.Open(ctx)
	if err != nil {
		return err
	}
	u := &upload.Uploader{Store: st, Cfg: cfg, Log: log, Progress: prog}
	sum, err := u.Run(ctx)
	prog.Close()
	log.Info().Int("uploaded", sum.Uploaded).Int64("bytes", sum.Bytes).Int("failed", sum.Failed).
		Int("would_upload", sum.WouldUpload).Str("summary", sum.String()).Msg("done")
	sum.Print(stdout, cfg.DryRun)
	return err
}
