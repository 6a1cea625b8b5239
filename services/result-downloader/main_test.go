package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage/fs"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/downloader"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/internal/testutil"
)

var bin string // the result-downloader binary

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "result-downloader-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "result-downloader")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := awstest.Run(m)
	os.RemoveAll(dir)
	testutil.Cleanup()
	os.Exit(code)
}

var clip2s = mediatest.ClipOpts{Seconds: 2}

// lib is a library with a bucket, as the binary sees them: an fs bucket,
// or a MinIO bucket (scratch, or the one whose notifications reach the
// SQS queues) with the awstest environment.
type lib struct {
	root, bucket string
	st           storage.Store
	aws          []string // environment of the AWS path; nil for fs
}

func newLib(t *testing.T) *lib {
	t.Helper()
	l := &lib{root: t.TempDir(), bucket: t.TempDir()}
	st, err := fs.New(l.bucket, "local")
	if err != nil {
		t.Fatal(err)
	}
	l.st = st
	return l
}

// newS3Lib is a library with a MinIO scratch bucket (no notifications,
// no queues) or, with queues, the bucket whose notifications reach them.
func newS3Lib(t *testing.T, queues bool) *lib {
	t.Helper()
	e := awstest.Shared(t)
	l := &lib{root: t.TempDir(), aws: e.Environ()}
	if queues {
		l.bucket, l.st = e.Bucket, e.NewStore(t)
		return l
	}
	l.bucket = e.ScratchBucket(t)
	st, err := s3store.New(context.Background(), e.StoreConfig(l.bucket))
	if err != nil {
		t.Fatal(err)
	}
	l.st = st
	l.aws = append(l.aws, "S3_BUCKET="+l.bucket, "RESULTS_QUEUE_URL=", "WORK_QUEUE_URL=")
	return l
}

func (l *lib) path(rel string) string { return filepath.Join(l.root, filepath.FromSlash(rel)) }

func (l *lib) env(extra ...string) []string {
	env := append(os.Environ(), "LIBRARY_ROOT="+l.root, "LOG_FORMAT=json", "CONCURRENCY=1", "MIN_AGE=1m")
	if l.aws == nil {
		env = append(env, "STORAGE=fs", "FS_ROOT="+l.bucket)
	} else {
		env = append(env, l.aws...)
	}
	return append(env, extra...)
}

// command runs the binary to its end and returns stdout, stderr and the
// exit error.
func command(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"process", "--help"}} {
		stdout, stderr, err := command(t, os.Environ(), args...)
		if err != nil {
			t.Errorf("%v: %v\n%s", args, err, stderr)
		}
		out := stdout + stderr
		for _, want := range []string{"LIBRARY_ROOT", "STORAGE", "RESULTS_QUEUE_URL", "FILE_MODE"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: help lacks %s:\n%s", args, want, out)
			}
		}
		if args[0] == "process" {
			for _, want := range []string{"--skip-upload", "--timeout", "INCLUDE", "MIN_AGE", "--dry-run"} {
				if !strings.Contains(out, want) {
					t.Errorf("process help lacks %s", want)
				}
			}
		} else if !strings.Contains(out, "RECONCILE_INTERVAL") || !strings.Contains(out, "process") {
			t.Errorf("help lacks RECONCILE_INTERVAL or the process subcommand")
		}
	}
	if _, stderr, err := command(t, os.Environ(), "--no-such-flag"); err == nil {
		t.Errorf("unknown flag accepted: %s", stderr)
	}
	if _, stderr, err := command(t, append(os.Environ(), "STORAGE=fs", "FS_ROOT=/tmp/x"), "process"); err == nil || !strings.Contains(stderr, "LIBRARY_ROOT") {
		t.Errorf("missing LIBRARY_ROOT: %v %s", err, stderr)
	}
}

type file struct {
	rel, origSHA, resultSHA, key string
}

// TestCrashPoints kills the downloader (SIGKILL, at the exact point, via
// its crash hook) after the download before the rename, after the rename
// before the original is deleted, and after the original is deleted
// before the DONE/ object is; checks the state at the kill (nothing lost);
// then runs `process --skip-upload` again and checks that it converged:
// every result installed once, originals and DONE/ objects gone, no temp
// files, nothing else in the library. Both on the fs store and on MinIO.
func TestCrashPoints(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	for _, kind := range []string{"fs", "s3"} {
		t.Run(kind, func(t *testing.T) {
			for _, point := range []string{downloader.CrashDownloaded, downloader.CrashInstalled, downloader.CrashOriginalRemoved} {
				t.Run(point, func(t *testing.T) { crashAndRerun(t, kind, point) })
			}
		})
	}
}

func crashAndRerun(t *testing.T, kind, point string) {
	l := newLib(t)
	if kind == "s3" {
		l = newS3Lib(t, false)
	}
	var files []file
	for _, rel := range []string{"a/one.mp4", "a/two.MP4"} {
		testutil.Clip(t, l.path(rel), clip2s)
		f := file{rel: rel, origSHA: testutil.SHA(t, l.path(rel))}
		f.key, f.resultSHA = testutil.PutResult(t, l.st, l.root, rel, testutil.ResultOpts{})
		files = append(files, f)
	}
	_, stderr, err := command(t, l.env(crashEnv+"="+point))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("want death by SIGKILL at %s, got %v\n%s", point, err, stderr)
	}

	// At the kill: the first file (CONCURRENCY=1, keys in lexical order)
	// is mid-way, the other not installed: its original and object are
	// there, though it may be downloading into a temp file (downloads
	// overlap the first file's finishing).
	for _, f := range files[1:] {
		objThere, _ := storage.Exists(context.Background(), l.st, f.key)
		if !exists(l.path(f.rel)) || exists(l.path(library.HevcRel(f.rel))) || !objThere {
			t.Errorf("%s touched before the crash", f.rel)
		}
	}
	f := files[0]
	origThere := exists(l.path(f.rel))
	target := l.path(library.HevcRel(f.rel))
	targetThere := exists(target)
	objThere, _ := storage.Exists(context.Background(), l.st, f.key)
	temps := temps(t, l.root)
	switch point {
	case downloader.CrashDownloaded:
		// The first file's verified temp file, and perhaps the second's.
		if !origThere || targetThere || !objThere || len(temps) < 1 || len(temps) > 2 {
			t.Errorf("at %s: original %v, target %v, object %v, temps %v", point, origThere, targetThere, objThere, temps)
		}
	case downloader.CrashInstalled:
		if !origThere || !targetThere || !objThere {
			t.Errorf("at %s: original %v, target %v, object %v", point, origThere, targetThere, objThere)
		}
	case downloader.CrashOriginalRemoved:
		if origThere || !targetThere || !objThere {
			t.Errorf("at %s: original %v, target %v, object %v", point, origThere, targetThere, objThere)
		}
	}
	if origThere && testutil.SHA(t, l.path(f.rel)) != f.origSHA {
		t.Errorf("original changed")
	}
	if targetThere && testutil.SHA(t, target) != f.resultSHA {
		t.Errorf("installed file differs from the result")
	}

	stdout, stderr, err := command(t, l.env(), "process", "--skip-upload", "--poll-interval", "200ms", "--timeout", "2m")
	if err != nil {
		t.Fatalf("re-run: %v\n%s\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, "installed 2 file(s)") {
		t.Errorf("re-run report:\n%s", stdout)
	}
	checkConverged(t, l, files)
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func temps(t *testing.T, root string) []string {
	var out []string
	for _, p := range testutil.Files(t, root) {
		if library.IsTemp(filepath.Base(p)) {
			out = append(out, p)
		}
	}
	return out
}

// checkConverged: exactly the results are in the library, each identical
// to its DONE/ object, and the originals in the trash (ORIGINALS=trash,
// the default), each with its record; no originals in place, temps,
// TODO/ or DONE/ objects.
func checkConverged(t *testing.T, l *lib, files []file) {
	t.Helper()
	var want, wantTrash []string
	for _, f := range files {
		hevc := library.HevcRel(f.rel)
		want = append(want, hevc)
		wantTrash = append(wantTrash, f.rel)
		if got := testutil.SHA(t, l.path(hevc)); got != f.resultSHA {
			t.Errorf("%s: not the result's bytes", hevc)
		}
		trashed := filepath.Join(library.TrashDir(l.root), filepath.FromSlash(f.rel))
		if got := testutil.SHA(t, trashed); got != f.origSHA {
			t.Errorf("%s: not the original's bytes", trashed)
		}
	}
	entries, err := library.ListTrash(l.root)
	if err != nil {
		t.Fatal(err)
	}
	var trash []string
	for _, e := range entries {
		if e.Record == nil {
			t.Errorf("%s in the trash without its record", e.Rel)
		}
		trash = append(trash, e.Rel)
	}
	sort.Strings(trash)
	sort.Strings(wantTrash)
	if strings.Join(trash, "\n") != strings.Join(wantTrash, "\n") {
		t.Errorf("trash holds %v, want the originals %v", trash, wantTrash)
	}
	sort.Strings(want)
	got := testutil.Files(t, l.root)
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("library holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, p := range []string{library.TodoPrefix, library.DonePrefix} {
		if keys := testutil.Keys(t, l.st, p); len(keys) > 0 {
			t.Errorf("%s not drained: %v", p, keys)
		}
	}
}

// TestProcessBinary runs `process` (upload included) while the test plays
// the processor once the binary is waiting; it exits 0 once the results
// are home, logging progress lines with the four counters. On the fs
// store, and on MinIO with the SQS work and results queues (the results
// arrive as notifications; "processing" counts the work queue's in-flight
// messages).
func TestProcessBinary(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	t.Run("fs", func(t *testing.T) { processBinary(t, newLib(t)) })
	t.Run("s3+sqs", func(t *testing.T) {
		e := awstest.Shared(t)
		ctx := context.Background()
		for _, u := range []string{e.WorkQueueURL, e.ResultsQueueURL} {
			if err := e.Drain(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		results := e.Relayed("/results")
		processBinary(t, newS3Lib(t, true))
		// MinIO delivers notifications asynchronously; the results may
		// have been found by listing first.
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && e.Relayed("/results")-results < 2; {
			time.Sleep(50 * time.Millisecond)
		}
		if e.Relayed("/results")-results < 2 {
			t.Errorf("results did not come as notifications")
		}
		for _, u := range []string{e.WorkQueueURL, e.ResultsQueueURL} {
			if err := e.Drain(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func processBinary(t *testing.T, l *lib) {
	var files []file
	for _, rel := range []string{"x/one.mp4", "x/two + two é.mp4"} {
		testutil.Clip(t, l.path(rel), clip2s)
		files = append(files, file{rel: rel, origSHA: testutil.SHA(t, l.path(rel))})
	}
	cmd := exec.Command(bin, "process", "--poll-interval", "200ms", "--timeout", "2m")
	cmd.Env = l.env()
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logs []string
	sc := bufio.NewScanner(stderr)
	processed := false
	for sc.Scan() {
		line := sc.Text()
		logs = append(logs, line)
		if !processed && strings.Contains(line, `"message":"progress"`) && strings.Contains(line, `"queued":2`) {
			// Waiting now: do the processor's part.
			if n := testutil.Process(t, l.st, l.root, nil); n != 2 {
				t.Errorf("processed %d jobs, want 2", n)
			}
			processed = true
		}
	}
	err = cmd.Wait()
	if err != nil {
		t.Fatalf("process: %v\n%s\n%s", err, stdout.String(), strings.Join(logs, "\n"))
	}
	if !strings.Contains(stdout.String(), "uploaded 2 file(s)") || !strings.Contains(stdout.String(), "installed 2 file(s)") || !strings.Contains(stdout.String(), "all done") {
		t.Errorf("report:\n%s", stdout.String())
	}
	joined := strings.Join(logs, "\n")
	for _, want := range []string{`"queued":2`, `"done":2`, `"failed":0`, `"processing":`} {
		if !strings.Contains(joined, want) {
			t.Errorf("progress lines lack %s", want)
		}
	}
	for i := range files {
		files[i].resultSHA = testutil.SHA(t, l.path(library.HevcRel(files[i].rel)))
	}
	checkConverged(t, l, files)
}

// TestProcessBinaryExitStatus: a tampered result is not installed, is
// reported, and makes the exit status 1; the original stays.
func TestProcessBinaryExitStatus(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	l := newLib(t)
	testutil.Clip(t, l.path("t/clip.mp4"), clip2s)
	sha := testutil.SHA(t, l.path("t/clip.mp4"))
	key, _ := testutil.PutResult(t, l.st, l.root, "t/clip.mp4", testutil.ResultOpts{})
	data := filepath.Join(l.bucket, filepath.FromSlash(key))
	b, _ := os.ReadFile(data)
	b[len(b)/2] ^= 1
	os.WriteFile(data, b, 0o644)
	stdout, stderr, err := command(t, l.env(), "process", "--skip-upload", "--poll-interval", "200ms", "--timeout", "2m")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("want exit status 1, got %v\n%s\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, key+": not installed (rejected)") || !strings.Contains(stdout, "checksum") {
		t.Errorf("report:\n%s", stdout)
	}
	if testutil.SHA(t, l.path("t/clip.mp4")) != sha {
		t.Errorf("original changed")
	}
	if exists(l.path("t/clip-hevc.mp4")) {
		t.Errorf("tampered result installed")
	}
}
