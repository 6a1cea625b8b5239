// Package pipeline is the embedded single-process pipeline: the same service
// code as production (uploader, dispatcher, processor, downloader), wired to
// the fs store, local queues and the in-process launcher.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/history"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	launchlocal "github.com/hevc-encoder/hevc-encoder/pkg/launch/local"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/notify"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	queuelocal "github.com/hevc-encoder/hevc-encoder/pkg/queue/local"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage/fs"
	"github.com/hevc-encoder/hevc-encoder/pkg/upload"
	"github.com/hevc-encoder/hevc-encoder/services/hevc-processor/processor"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/downloader"
	"github.com/hevc-encoder/hevc-encoder/services/sqs-dispatcher/dispatcher"
)

// Options configure a run.
type Options struct {
	Library   string // library root, converted in place
	State     string // bucket directory; default <Library>/.hevc-encoder/bucket
	Processor processor.Config
	Jobs      int           // processors at once; <= 0: cores / X265_THREADS
	MinAge    time.Duration // uploader's MIN_AGE
	// MinBitrate is the uploader's MIN_BITRATE (zero: off).
	MinBitrate upload.MinBitrate
	// Originals and TrashDays are the downloader's ORIGINALS and
	// TRASH_DAYS ("" and 0: trash, 30 days).
	Originals string
	TrashDays int
	// Visibility and MaxReceives are the work queue's SQS settings: a job
	// that fails transiently MaxReceives times is dead-lettered.
	Visibility  time.Duration
	MaxReceives int
	// Logger returns the logger of a service (its "service" field set).
	Logger func(service string) zerolog.Logger
	// Notify, if set, is told of each file that failed and, at the end,
	// of the run (notify.go); nil: no notifications.
	Notify *notify.Notifier
}

// Summary is what a run did: counted from the library's history (the
// lines this run wrote), plus what never reaches the history (upload
// skips and errors, dead-lettered jobs, work left in TODO/).
type Summary struct {
	Converted   int
	Skipped     map[string]int
	Failed      []string // "<key>: <reason>"
	BytesBefore int64
	BytesAfter  int64
	Wall        time.Duration
	Interrupted bool
	// Total is the library's whole history (every run, every service),
	// HistoryErr why it could not be read.
	Total      history.Totals
	HistoryErr error
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = func(string) zerolog.Logger { return zerolog.Nop() }
	}
	if o.Visibility <= 0 {
		o.Visibility = 2 * time.Minute
	}
	if o.MaxReceives <= 0 {
		o.MaxReceives = 3
	}
	if o.Processor.Heartbeat <= 0 || o.Processor.Heartbeat >= o.Visibility {
		o.Processor.Heartbeat = o.Visibility / 4
	}
	o.Processor.Visibility = o.Visibility
	return o
}

// Run converts the library and returns when there is nothing left to do or
// ctx ends. Work left by an interrupted run is resumed first.
func Run(ctx context.Context, o Options) (Summary, error) {
	o = o.withDefaults()
	if o.State == "" {
		o.State = filepath.Join(o.Library, ".hevc-encoder", "bucket")
	}
	store, err := fs.New(o.State, "local")
	if err != nil {
		return Summary{Skipped: map[string]int{}}, err
	}
	dlq := queuelocal.New("work-dlq", o.Visibility, 0, nil)
	work := queuelocal.New("work", o.Visibility, o.MaxReceives, dlq)
	results := queuelocal.New("results", o.Visibility, 0, nil)
	// No suffix filter: S3's is case-sensitive and cameras write .MP4; only
	// the uploader writes TODO/, and the dispatcher checks the name anyway.
	store.Notify(fs.Rule{Prefix: library.TodoPrefix, Queue: work})
	store.Notify(fs.Rule{Prefix: library.DonePrefix, Queue: results})
	return RunOn(ctx, o, Backend{Store: store, Work: work, Results: results})
}

// Backend is the store and queues a run works on: the embedded fs store
// and local queues, or S3 and SQS (the same services either way).
type Backend struct {
	Store         storage.Store
	Work, Results queue.Queue
}

// RunOn runs the pipeline on b. The store must notify Work of TODO/ and
// Results of DONE/ writes, as S3 bucket notifications do.
func RunOn(ctx context.Context, o Options, b Backend) (Summary, error) {
	start := time.Now()
	sum := Summary{Skipped: map[string]int{}}
	var mu sync.Mutex
	o = o.withDefaults()
	log := o.Logger("hevc-encoder")
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = launchlocal.DefaultCapacity(o.Processor.Settings.Threads)
	}
	store, work, results := b.Store, b.Work, b.Results

	// Resume: TODO/ objects of an interrupted run go back on the queue; the
	// downloader's own reconcile picks up DONE/.
	if res, err := dispatcher.Trigger(ctx, store, work, nil, false, log); err != nil {
		return sum, err
	} else if res.Sent > 0 {
		log.Info().Int("jobs", res.Sent).Msg("resuming work left by an earlier run")
	}

	up := &upload.Uploader{Store: store, Log: o.Logger("s3-uploader"), Cfg: upload.Config{
		Root: o.Library, Include: "*.mp4", MinAge: o.MinAge, Concurrency: 2, MinBitrate: o.MinBitrate,
	}}
	upSum, upErr := up.Run(ctx)
	for r, n := range upSum.Skipped {
		sum.Skipped[r] += n
	}
	if upErr != nil && ctx.Err() == nil {
		sum.Failed = append(sum.Failed, "upload: "+upErr.Error())
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	proc := &processor.Processor{Store: store, Queue: work, Cfg: o.Processor, Log: o.Logger("hevc-processor")}
	launcher := launchlocal.New(runCtx, func(ctx context.Context, j launch.Job) error {
		res, err := proc.Process(ctx, j)
		mu.Lock()
		defer mu.Unlock()
		// Failed and no-gain jobs leave FAILED/ records, which reach the
		// history through the downloader (RecordFailures).
		if err == nil && res.Outcome == processor.AlreadyHEVC {
			sum.Skipped[string(res.Outcome)]++
		}
		return err
	}, jobs, nil)
	disp := &dispatcher.Dispatcher{Store: store, Queue: work, Launcher: launcher, Log: o.Logger("sqs-dispatcher"),
		Cfg: dispatcher.Config{Wait: time.Second, StartGrace: o.Visibility, Busy: 200 * time.Millisecond}}
	stuck := map[string]string{} // DONE/ keys that cannot be installed → why
	hist := history.Open(o.Library, 0o755)
	hist.Run = fmt.Sprintf("local-%d", start.UnixNano())
	down := &downloader.Downloader{Store: store, Queue: results, Log: o.Logger("result-downloader"), History: hist,
		Cfg: downloader.Config{Root: o.Library, DirMode: 0o755, Reconcile: time.Hour, Wait: time.Second,
			Originals: o.Originals, TrashDays: o.TrashDays},
		OnResult: func(r downloader.Result) {
			mu.Lock()
			defer mu.Unlock()
			// Counted from the history at the end; stuck results are
			// also reported when the history has them from an earlier run.
			switch r.Outcome {
			case downloader.Installed:
				delete(stuck, r.Key)
			case downloader.Collision, downloader.Rejected, downloader.Refused:
				stuck[r.Key] = fmt.Sprintf("not installed (%s): %s", r.Outcome, r.Reason)
			}
		}}

	down.Notify = o.Notify // file_failed: each result not installed, each job failed
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); disp.Run(runCtx) }()
	go func() { defer wg.Done(); down.Run(runCtx) }()

	err := waitIdle(runCtx, store, launcher, []queue.Queue{work, results}, func(k string) bool {
		mu.Lock()
		defer mu.Unlock()
		_, ok := stuck[k]
		return ok
	})
	stop()
	wg.Wait()
	launcher.Wait()
	// The downloader reconciles (and reads FAILED/) only at its start here:
	// the jobs that failed or gained nothing in this run go in now.
	if _, herr := down.RecordFailures(context.WithoutCancel(ctx)); herr != nil {
		log.Warn().Err(herr).Msg("history: FAILED/ records not all recorded")
	}
	sum.fromHistory(hist, start, stuck)

	// Jobs that kept failing ended in the dead-letter queue; their TODO/
	// objects stay for `trigger` after the cause is fixed.
	var dead int
	if rd, ok := work.(queue.Redriver); ok {
		d, _ := rd.DeadLetterDepth(context.Background())
		dead = d.Visible
	}
	if dead > 0 {
		sum.Failed = append(sum.Failed, fmt.Sprintf("%d job(s) failed %d times and were dead-lettered; see the log", dead, o.MaxReceives))
	}
	if ctx.Err() == nil {
		_ = storage.Walk(context.Background(), store, library.TodoPrefix, func(ob storage.Object) error {
			sum.Failed = append(sum.Failed, ob.Key+": still in TODO/ (not processed; run again)")
			return nil
		})
	}
	sum.Wall = time.Since(start)
	o.Notify.Notify(sum.notification(ctx.Err() != nil)) // notify.go
	if ctx.Err() != nil {
		sum.Interrupted = true
		return sum, ctx.Err()
	}
	return sum, err
}

// waitIdle returns once no processor runs, both queues are empty and DONE/
// holds only results that cannot be installed.
func waitIdle(ctx context.Context, st storage.Store, l launch.Launcher, qs []queue.Queue, stuck func(string) bool) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	idleRounds := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		busy, err := isBusy(ctx, st, l, qs, stuck)
		if err != nil {
			return err
		}
		// Two idle looks in a row, so that a hand-over between services
		// (message deleted, next one not yet visible) is not mistaken for
		// the end.
		if busy {
			idleRounds = 0
		} else if idleRounds++; idleRounds >= 2 {
			return nil
		}
	}
}

func isBusy(ctx context.Context, st storage.Store, l launch.Launcher, qs []queue.Queue, stuck func(string) bool) (bool, error) {
	if inf, err := l.InFlight(ctx); err != nil || len(inf) > 0 {
		return true, err
	}
	for _, q := range qs {
		d, err := q.Depth(ctx)
		if err != nil || d.Visible+d.InFlight > 0 {
			return true, err
		}
	}
	errBusy := errors.New("busy")
	err := storage.Walk(ctx, st, library.DonePrefix, func(o storage.Object) error {
		if !stuck(o.Key) {
			return errBusy
		}
		return nil
	})
	if errors.Is(err, errBusy) {
		return true, nil
	}
	if err != nil {
		return true, err
	}
	// S3 notifications are asynchronous: a TODO/ object may not have its
	// message yet. Only jobs that were dead-lettered may stay behind.
	todo := 0
	if err := storage.Walk(ctx, st, library.TodoPrefix, func(storage.Object) error { todo++; return nil }); err != nil {
		return true, err
	}
	dead := 0
	if rd, ok := qs[0].(queue.Redriver); ok {
		d, err := rd.DeadLetterDepth(ctx)
		if err != nil {
			return true, err
		}
		dead = d.Visible
	}
	return todo > dead, nil
}

// Print writes the summary table.
func (s Summary) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	skipped := 0
	var reasons []string
	for r, n := range s.Skipped {
		skipped += n
		reasons = append(reasons, fmt.Sprintf("%s: %d", r, n))
	}
	sort.Strings(reasons)
	ratio := "-"
	if s.BytesBefore > 0 {
		ratio = fmt.Sprintf("%.1f%%", 100*float64(s.BytesAfter)/float64(s.BytesBefore))
	}
	fmt.Fprintln(tw, "converted\tskipped\tfailed\tbytes before → after\tratio\twall time")
	fmt.Fprintf(tw, "%d\t%d\t%d\t%s → %s\t%s\t%s\n", s.Converted, skipped, len(s.Failed), human(s.BytesBefore), human(s.BytesAfter), ratio, s.Wall.Round(100*time.Millisecond))
	tw.Flush()
	if len(reasons) > 0 {
		fmt.Fprintf(w, "skipped: %s\n", strings.Join(reasons, ", "))
	}
	for _, f := range s.Failed {
		fmt.Fprintf(w, "failed: %s\n", f)
	}
	if s.Interrupted {
		fmt.Fprintln(w, "interrupted: run again to finish the remaining work")
	}
	s.printTotal(w)
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
