package process_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/events"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/progress"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage/fs"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
	"github.com/hevc-encoder/hevc-encoder/pkg/upload"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/downloader"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/internal/testutil"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/process"
)

func TestMain(m *testing.M) {
	code := awstest.Run(m)
	testutil.Cleanup()
	os.Exit(code)
}

var clip2s = mediatest.ClipOpts{Seconds: 2}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// watched signals the first listing of TODO/: process is waiting.
type watched struct {
	storage.Store
	once sync.Once
	ch   chan struct{}
}

func (w *watched) List(ctx context.Context, prefix, token string, max int) (storage.ListPage, error) {
	if prefix == library.TodoPrefix {
		w.once.Do(func() { close(w.ch) })
	}
	return w.Store.List(ctx, prefix, token, max)
}

type setup struct {
	root string
	st   storage.Store
	logs *syncBuffer
	o    process.Options
}

func newSetup(t *testing.T, st storage.Store, upload bool) *setup {
	t.Helper()
	s := &setup{root: t.TempDir(), logs: &syncBuffer{}}
	if st == nil {
		b, err := fs.New(t.TempDir(), "local")
		if err != nil {
			t.Fatal(err)
		}
		st = b
	}
	s.st = st
	log := zerolog.New(zerolog.MultiLevelWriter(s.logs, zerolog.NewTestWriter(t))).With().Str("service", "result-downloader").Logger()
	off := false
	prog := progress.New(os.Stderr, progress.Options{Terminal: &off, Interval: -1})
	prog.SetLogger(log)
	s.o = process.Options{Store: st, Poll: 100 * time.Millisecond, Timeout: 2 * time.Minute, Progress: prog, Log: log,
		Downloader: &downloader.Downloader{Store: st, Log: log, Progress: prog,
			Cfg: downloader.Config{Root: s.root, DirMode: 0o755, Concurrency: 2, Wait: 100 * time.Millisecond, RetryDelay: time.Second}}}
	if upload {
		s.o.Uploader = s.uploader(log)
	}
	return s
}

func (s *setup) uploader(log zerolog.Logger) *upload.Uploader {
	return &upload.Uploader{Store: s.st, Log: log, Cfg: upload.Config{Root: s.root, Include: "*.mp4", MinAge: time.Minute, Concurrency: 2}}
}

func (s *setup) path(rel string) string { return filepath.Join(s.root, filepath.FromSlash(rel)) }

// run runs process.Run in the background while the test goroutine plays
// the processor (after process has first looked at TODO/), and returns
// the report.
func (s *setup) run(t *testing.T, fail func(string) string) (process.Report, error) {
	t.Helper()
	w := &watched{Store: s.st, ch: make(chan struct{})}
	s.o.Store = w
	type out struct {
		rep process.Report
		err error
	}
	done := make(chan out, 1)
	go func() {
		rep, err := process.Run(context.Background(), s.o)
		done <- out{rep, err}
	}()
	select {
	case <-w.ch:
	case r := <-done:
		return r.rep, r.err
	}
	for {
		select {
		case r := <-done:
			return r.rep, r.err
		case <-time.After(100 * time.Millisecond):
			testutil.Process(t, s.st, s.root, fail)
		}
	}
}

func (s *setup) checkConverted(t *testing.T, rels ...string) {
	t.Helper()
	for _, rel := range rels {
		if _, err := os.Stat(s.path(library.HevcRel(rel))); err != nil {
			t.Errorf("%s: result not installed: %v", rel, err)
		}
		if _, err := os.Stat(s.path(rel)); err == nil {
			t.Errorf("%s: original still present", rel)
		}
	}
}

func (s *setup) checkDrained(t *testing.T) {
	t.Helper()
	for _, p := range []string{library.TodoPrefix, library.DonePrefix} {
		if keys := testutil.Keys(t, s.st, p); len(keys) > 0 {
			t.Errorf("%s not drained: %v", p, keys)
		}
	}
}

func TestProcessUploadsAndWaits(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	s := newSetup(t, nil, true)
	rels := []string{"alice/one.mp4", "alice/two words.MP4", "bob/deep/three.mp4"}
	for _, rel := range rels {
		testutil.Clip(t, s.path(rel), clip2s)
	}
	testutil.Clip(t, s.path("bob/hevc already.mp4"), mediatest.ClipOpts{Seconds: 1, HEVC: true})
	rep, err := s.run(t, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("process: %v (%+v)", err, rep)
	}
	if rep.Upload == nil || rep.Upload.Uploaded != 3 || rep.Upload.Skipped[upload.SkipHevc] != 1 || rep.Installed != 3 {
		t.Errorf("report: upload %+v, installed %d", rep.Upload, rep.Installed)
	}
	s.checkConverted(t, rels...)
	s.checkDrained(t)
	var b strings.Builder
	rep.Print(&b)
	t.Logf("report:\n%s", b.String())
	if !strings.Contains(b.String(), "installed 3 file(s)") || !strings.Contains(b.String(), "all done") {
		t.Errorf("printed report:\n%s", b.String())
	}
	// Progress went to the log as structured lines.
	logs := s.logs.String()
	for _, want := range []string{`"message":"progress"`, `"queued":`, `"processing":`, `"done":3`, `"failed":0`} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %s in the progress log lines", want)
		}
	}
}

// TestProcessSkipUpload starts with work already in TODO/ and finishes
// once the results are home.
func TestProcessSkipUpload(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	s := newSetup(t, nil, false)
	rels := []string{"a/one.mp4", "a/two.mp4"}
	for _, rel := range rels {
		testutil.Clip(t, s.path(rel), clip2s)
	}
	if sum, err := s.uploader(zerolog.Nop()).Run(context.Background()); err != nil || sum.Uploaded != 2 {
		t.Fatalf("upload: %v %+v", err, sum)
	}
	// Not uploaded: process --skip-upload must not touch it.
	testutil.Clip(t, s.path("a/new.mp4"), clip2s)
	rep, err := s.run(t, nil)
	if err != nil || !rep.OK() || rep.Upload != nil || rep.Installed != 2 {
		t.Fatalf("process: %v (%+v)", err, rep)
	}
	s.checkConverted(t, rels...)
	s.checkDrained(t)
	if _, err := os.Stat(s.path("a/new.mp4")); err != nil {
		t.Errorf("file not uploaded was touched: %v", err)
	}
}

// TestProcessReportsFailures: a job that fails (FAILED/ record) and a
// result that does not verify count as failed; the rest is installed and
// the run ends with an error.
func TestProcessReportsFailures(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	s := newSetup(t, nil, true)
	for _, rel := range []string{"ok.mp4", "bad.mp4"} {
		testutil.Clip(t, s.path(rel), clip2s)
	}
	testutil.Clip(t, s.path("short.mp4"), mediatest.ClipOpts{Seconds: 3})
	// A leftover result of an earlier run that is too short; its original
	// is already queued-and-done, so the uploader skips it.
	shortKey, _ := testutil.PutResult(t, s.st, s.root, "short.mp4", testutil.ResultOpts{Seconds: 1})
	rep, err := s.run(t, func(key string) string {
		if key == "TODO/bad.mp4" {
			return "bad.mp4 is not a readable video: test"
		}
		return ""
	})
	if err == nil || rep.OK() {
		t.Fatalf("process succeeded despite failures: %+v", rep)
	}
	t.Logf("error: %v", err)
	if rep.Installed != 1 || len(rep.Failed) != 2 {
		t.Fatalf("installed %d, failed %v", rep.Installed, rep.Failed)
	}
	joined := strings.Join(rep.Failed, "\n")
	if !strings.Contains(joined, "FAILED/bad.mp4.json: bad.mp4 is not a readable video") || !strings.Contains(joined, shortKey+": not installed (rejected)") {
		t.Errorf("failed list:\n%s", joined)
	}
	s.checkConverted(t, "ok.mp4")
	for _, rel := range []string{"bad.mp4", "short.mp4"} {
		if _, err := os.Stat(s.path(rel)); err != nil {
			t.Errorf("%s: original lost: %v", rel, err)
		}
	}
}

func TestProcessTimeout(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	s := newSetup(t, nil, true)
	testutil.Clip(t, s.path("x.mp4"), clip2s)
	s.o.Timeout = time.Second
	rep, err := process.Run(context.Background(), s.o) // nobody processes
	if err == nil || !rep.TimedOut || rep.Queued != 1 {
		t.Fatalf("want a timeout with one queued: %v %+v", err, rep)
	}
	if _, err := os.Stat(s.path("x.mp4")); err != nil {
		t.Errorf("original lost: %v", err)
	}
}

func TestProcessDryRun(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	s := newSetup(t, nil, true)
	testutil.Clip(t, s.path("x.mp4"), clip2s)
	s.o.Uploader.Cfg.DryRun = true
	rep, err := process.Run(context.Background(), s.o)
	if err != nil || !rep.DryRun || rep.Upload.WouldUpload != 1 || rep.Upload.Uploaded != 0 {
		t.Fatalf("dry run: %v %+v", err, rep)
	}
	if keys := testutil.Keys(t, s.st, ""); len(keys) > 0 {
		t.Errorf("dry run wrote %v", keys)
	}
}

// TestProcessAWS runs `process --skip-upload` against MinIO (with its
// notifications relayed to SQS) and the SQS results and work queues, with
// the work already uploaded to TODO/: it finishes once the results are
// home.
func TestProcessAWS(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	e := awstest.Shared(t)
	ctx := context.Background()
	for _, u := range []string{e.ResultsQueueURL, e.WorkQueueURL} {
		if err := e.Drain(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	s := newSetup(t, e.NewStore(t), false)
	s.o.Downloader.Queue = e.NewResultsQueue(t)
	s.o.Work = e.NewWorkQueue(t)
	rels := []string{"aws/one.mp4", "aws/two + two.mp4"}
	for _, rel := range rels {
		testutil.Clip(t, s.path(rel), clip2s)
	}
	if sum, err := s.uploader(zerolog.Nop()).Run(ctx); err != nil || sum.Uploaded != 2 {
		t.Fatalf("upload: %v %+v", err, sum)
	}
	rep, err := s.run(t, nil)
	if err != nil || !rep.OK() || rep.Installed != 2 || rep.Upload != nil {
		t.Fatalf("process: %v (%+v)", err, rep)
	}
	s.checkConverted(t, rels...)
	s.checkDrained(t)
	// MinIO delivers notifications asynchronously; the results may have
	// been found by listing first.
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && (e.Relayed("/work") < 2 || e.Relayed("/results") < 2); {
		time.Sleep(50 * time.Millisecond)
	}
	if e.Relayed("/work") < 2 || e.Relayed("/results") < 2 {
		t.Errorf("notifications relayed: work %d, results %d", e.Relayed("/work"), e.Relayed("/results"))
	}
	for _, u := range []string{e.ResultsQueueURL, e.WorkQueueURL} {
		if err := e.Drain(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
}

// TestProcessEndsOnRefusedKey: a DONE/ key that would escape the library
// (possible on S3, whose keys are free-form) is refused and reported, and
// does not keep process waiting.
func TestProcessEndsOnRefusedKey(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	e := awstest.Shared(t)
	ctx := context.Background()
	bucket := e.ScratchBucket(t)
	st, err := s3store.New(ctx, e.StoreConfig(bucket))
	if err != nil {
		t.Fatal(err)
	}
	bad := `DONE/sub\evil-hevc.mp4`
	if _, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(bad), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	s := newSetup(t, st, false)
	rep, err := process.Run(ctx, s.o)
	if err == nil || rep.Installed != 0 || len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0], "not installed (refused)") {
		t.Fatalf("process: %v %+v", err, rep)
	}
	if files := testutil.Files(t, filepath.Dir(s.root)); len(files) != 0 {
		t.Errorf("written: %v", files)
	}
}

// TestProcessSaysWhatIsStuck: work in TODO/ and no dispatcher. process
// does not wait silently: once nothing has moved for StallAfter it says
// what is stuck, with the count and the work queue's view, and says it
// again while it stays so.
func TestProcessSaysWhatIsStuck(t *testing.T) {
	e := awstest.Shared(t)
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		messages int
		want     string
	}{
		{"queued", 3, "3 in TODO/, 3 queued, none running: is sqs-dispatcher running?"},
		{"not queued", 0, "3 in TODO/, none queued or running (no work messages"},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			st, err := s3store.New(ctx, e.StoreConfig(e.ScratchBucket(t)))
			if err != nil {
				t.Fatal(err)
			}
			q := e.NewScratchQueue(t, 30*time.Second, 3)
			for i, rel := range []string{"s/one.mp4", "s/two.mp4", "s/three.mp4"} {
				if _, err := st.Put(ctx, library.TodoPrefix+rel, strings.NewReader("x"), storage.PutOptions{Size: 1}); err != nil {
					t.Fatal(err)
				}
				if i < c.messages {
					if err := q.Send(ctx, events.Created(st.Bucket(), library.TodoPrefix+rel, 1, "ObjectCreated:Put")); err != nil {
						t.Fatal(err)
					}
				}
			}
			s := newSetup(t, st, false)
			s.o.Work, s.o.StallAfter, s.o.Timeout = q, 300*time.Millisecond, 5*time.Second
			rep, err := process.Run(ctx, s.o)
			if err == nil || !rep.TimedOut || rep.Queued != 3 {
				t.Fatalf("want a timeout with 3 queued: %v %+v", err, rep)
			}
			if !strings.Contains(rep.Stuck, c.want) {
				t.Errorf("stuck %q, want %q", rep.Stuck, c.want)
			}
			logs := s.logs.String()
			if n := strings.Count(logs, "nothing moved: "+c.want); n < 2 {
				t.Errorf("said %d time(s) that nothing moved, want it repeated:\n%s", n, logs)
			}
			var b strings.Builder
			rep.Print(&b)
			if !strings.Contains(b.String(), "stuck: "+c.want) {
				t.Errorf("printed report lacks the diagnosis:\n%s", b.String())
			}
			if keys := testutil.Keys(t, st, library.TodoPrefix); len(keys) != 3 {
				t.Errorf("TODO/ changed: %v", keys)
			}
		})
	}
}

// TestProcessReportsUnsettledUploads: an upload whose TODO/ object vanished
// with neither a result nor a FAILED/ record is listed at the end, and the
// run fails.
func TestProcessReportsUnsettledUploads(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	s := newSetup(t, nil, true)
	testutil.Clip(t, s.path("u/ok.mp4"), clip2s)
	testutil.Clip(t, s.path("u/lost.mp4"), clip2s)
	testutil.Clip(t, s.path("u/elsewhere.mp4"), clip2s)
	// The test plays the processor: a result for ok.mp4; lost.mp4's work
	// object is dropped without a trace, as a processor bug might; and it
	// plays the stack's own result-downloader, which installs
	// elsewhere.mp4's result before this run sees it in DONE/: settled.
	w := &watched{Store: s.st, ch: make(chan struct{})}
	s.o.Store = w
	var (
		rep  process.Report
		err  error
		done = make(chan struct{})
	)
	go func() { rep, err = process.Run(context.Background(), s.o); close(done) }()
	select {
	case <-w.ch:
	case <-done:
	}
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		case <-time.After(100 * time.Millisecond):
			for _, k := range testutil.Keys(t, s.st, library.TodoPrefix) {
				switch k {
				case "TODO/u/lost.mp4":
				case "TODO/u/elsewhere.mp4":
					if err := os.Rename(s.path("u/elsewhere.mp4"), s.path("u/elsewhere-hevc.mp4")); err != nil {
						t.Fatal(err)
					}
				default:
					rel, _ := library.RelFromTodo(k)
					testutil.PutResult(t, s.st, s.root, rel, testutil.ResultOpts{})
				}
				if derr := s.st.Delete(context.Background(), k); derr != nil {
					t.Fatal(derr)
				}
			}
		}
	}
	if err == nil || rep.OK() || rep.Installed != 1 {
		t.Fatalf("process: %v %+v", err, rep)
	}
	if len(rep.Unsettled) != 1 || !strings.HasPrefix(rep.Unsettled[0], "TODO/u/lost.mp4: gone from TODO/ with no result") {
		t.Errorf("unsettled %q", rep.Unsettled)
	}
	var b strings.Builder
	rep.Print(&b)
	if !strings.Contains(b.String(), "neither installed nor failed: 1") || !strings.Contains(err.Error(), "neither installed nor in FAILED/") {
		t.Errorf("report:\n%s\nerror: %v", b.String(), err)
	}
	if _, err := os.Stat(s.path("u/lost.mp4")); err != nil {
		t.Errorf("original lost: %v", err)
	}
}
