// Command local runs the whole pipeline on one machine with no AWS: the
// same service code on a directory bucket, in-process queues and launcher.
// `make run` runs it on demo clips, `make run INPUT=dir` on your library.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hevc-encoder/hevc-encoder/deployments/local/pipeline"
	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/logging"
	"github.com/hevc-encoder/hevc-encoder/pkg/notify"
	"github.com/hevc-encoder/hevc-encoder/pkg/upload"
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
		fmt.Fprintln(os.Stderr, "hevc-encoder:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string) error {
	var (
		input, demo, state string
		jobs               int
		minAge             time.Duration
		o                  pipeline.Options
		dl                 downloader.Config
	)
	set := config.New("hevc-encoder-local", "Runs the whole pipeline in one process on a library directory: upload to a directory bucket, encode to HEVC, verify, install <name>-hevc.mp4 beside each original and retire the original as ORIGINALS says (by default into <library>/.hevc-encoder/trash for TRASH_DAYS). With no INPUT it converts freshly generated demo clips.")
	set.String(&input, "INPUT", "", "library directory to convert in place (default: a demo library)")
	set.String(&demo, "DEMO_DIR", "demo-library", "where the demo library is generated when INPUT is empty")
	set.String(&state, "STATE_DIR", "", "bucket directory (default: <library>/.hevc-encoder/bucket)")
	set.Int(&jobs, "JOBS", 0, "encodes at once (0: cores / X265_THREADS, at least 1)")
	set.Duration(&minAge, "MIN_AGE", 0, "skip files modified more recently than this")
	var minBitrate string
	set.String(&minBitrate, "MIN_BITRATE", "auto", "skip files whose video bit rate is below this (a rate like 3Mbit, 0 for off, or auto: "+upload.AutoBitrateDoc+"); the generated demo library is always converted")
	set.Check(func() error {
		mb, err := upload.ParseMinBitrate(minBitrate)
		if err != nil {
			return fmt.Errorf("MIN_BITRATE: %w", err)
		}
		o.MinBitrate = mb
		return nil
	})
	o.Processor.Bind(set)
	var nc notify.Config
	nc.Bind(set)
	dl.BindOriginals(set)
	if err := set.Parse(args); err != nil {
		return err
	}
	log := logging.New("hevc-encoder")
	if input == "" {
		input = demo
		// Synthetic clips of flat patterns are far below any camera's bit
		// rate and still shrink: MIN_BITRATE would skip half of them.
		o.MinBitrate = upload.MinBitrate{}
		if fresh, err := needsDemo(demo); err != nil {
			return err
		} else if fresh {
			if err := resetDemo(demo); err != nil {
				return err
			}
			log.Info().Str("dir", demo).Msg("generating demo clips")
			if err := pipeline.MakeDemo(ctx, demo); err != nil {
				return err
			}
		}
	}
	if st, err := os.Stat(input); err != nil || !st.IsDir() {
		return fmt.Errorf("INPUT: %s is not a directory", input)
	}
	o.Library, o.State, o.Jobs, o.MinAge, o.Logger = input, state, jobs, minAge, logging.New
	o.Originals, o.TrashDays = dl.Originals, dl.TrashDays
	nc.Source = "hevc-encoder-local"
	o.Notify = notify.New(nc, log)
	sum, err := pipeline.Run(ctx, o)
	// Notifications never hold the run up: a bounded wait for the last
	// ones (a failure was logged), even after Ctrl-C.
	nctx, ncancel := context.WithTimeout(context.WithoutCancel(ctx), notifyGrace)
	_ = o.Notify.Close(nctx)
	ncancel()
	fmt.Println()
	sum.Print(os.Stdout)
	if err == nil && input == demo {
		_ = os.WriteFile(filepath.Join(demo, demoDone), nil, 0o644)
	}
	if err == nil && len(sum.Failed) > 0 {
		err = fmt.Errorf("%d file(s) failed", len(sum.Failed))
	}
	return err
}

// notifyGrace is how long the end of a run waits for its notifications.
const notifyGrace = 10 * time.Second

// demoDone marks a demo library whose conversion finished; the next run
// starts a fresh one. Without it an interrupted demo resumes.
const demoDone = ".hevc-encoder/demo-finished"

// resetDemo removes a finished demo library, but only if it holds nothing
// the demo did not make (its clips, their results, the state directory):
// DEMO_DIR may name a directory with someone's files in it.
func resetDemo(dir string) error {
	ours := map[string]bool{}
	for _, c := range pipeline.DemoClips() {
		ours[c.Rel] = true
		ours[library.HevcRel(c.Rel)] = true
	}
	var foreign []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == library.StateDirName && d.IsDir():
			return filepath.SkipDir // our state: bucket, records, the finished mark
		case d.IsDir():
			return nil
		case !ours[rel] || !d.Type().IsRegular():
			foreign = append(foreign, rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check demo library %s: %w", dir, err)
	}
	if len(foreign) > 0 {
		return fmt.Errorf("DEMO_DIR %s holds files the demo did not generate (%s): not removed; remove it yourself or choose another DEMO_DIR", dir, strings.Join(foreign[:min(len(foreign), 5)], ", "))
	}
	return os.RemoveAll(dir)
}

func needsDemo(dir string) (bool, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	_, err := os.Stat(filepath.Join(dir, demoDone))
	return err == nil, nil
}
