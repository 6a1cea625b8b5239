package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/ecstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/events"
	ecslaunch "github.com/hevc-encoder/hevc-encoder/pkg/launch/ecs"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// mainBucket prepares the shared bucket with notifications: its work and
// results queues are drained so that the test sees only its own events.
//
// Drained, not purged: PurgeQueue deletes the queue's messages up to 60 s
// after the call (SQS documents it; local-aws-sqs clears the queue once,
// 60 s later), so a purge by one test wiped the next test's messages:
// TestStoreOutageRetriesSoon's job, handed back for a 20 s retry, vanished
// from the work queue and the retry never came (CI, and one make test
// here). Messages left in flight by a failed test are not drained; they
// come back after their visibility timeout.
func mainBucket(t *testing.T) (*awstest.Env, storage.Store) {
	t.Helper()
	env := awstest.Shared(t)
	ctx := context.Background()
	for _, u := range []string{env.WorkQueueURL, env.WorkDLQURL, env.ResultsQueueURL, env.ResultsDLQURL} {
		if err := env.Drain(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	return env, env.NewStore(t)
}

// resultEvents counts the results queue's notifications for key, once one
// has arrived (MinIO sends notifications asynchronously, so those of an
// earlier test may still arrive: they are not counted).
func resultEvents(t *testing.T, env *awstest.Env, key string) int {
	t.Helper()
	n := 0
	waitFor(t, time.Minute, "the result notification for "+key, func() (bool, error) {
		for _, k := range keysOf(t, receiveAll(t, env, env.ResultsQueueURL)) {
			if k == key {
				n++
			}
		}
		return n > 0, nil
	})
	// Anything that would follow (a second upload) has had time to come.
	for _, k := range keysOf(t, receiveAll(t, env, env.ResultsQueueURL)) {
		if k == key {
			n++
		}
	}
	return n
}

// Keys with spaces, '+', '%', unicode and punctuation travel URL-encoded in
// the S3 event (as MinIO and S3 send them) and must reach the processor
// decoded, through the task's container overrides.
func TestOddKeysReachProcessorDecoded(t *testing.T) {
	env, st := mainBucket(t)
	srv := startECS(t, env, ecstest.Options{})
	keys := []string{
		"TODO/2024/a b/clip é+1 (copy) #2 & 100%.mp4",
		"TODO/日本/ビデオ 01.mp4", // (.MP4 would not pass the harness's case-sensitive suffix filter)
	}
	b := clip(t, false)
	for _, k := range keys {
		put(t, st, k, b)
	}
	dispatch(t, vars(env, env.Bucket, env.WorkQueueURL, srv, nil))
	waitFor(t, 2*time.Minute, "both files encoded", func() (bool, error) {
		for _, k := range keys {
			if exists(t, st, k) || len(srv.TasksFor(k)) == 0 || !allStopped(srv) {
				return false, nil
			}
		}
		return true, nil
	})
	for _, k := range keys {
		rel := strings.TrimPrefix(k, "TODO/")
		done := "DONE/" + rel[:len(rel)-4] + "-hevc.mp4"
		if !exists(t, st, done) {
			t.Errorf("%s missing", done)
		}
		ts := srv.TasksFor(k)
		if len(ts) != 1 {
			t.Fatalf("%q: %d tasks, want 1", k, len(ts))
		}
		tk := ts[0]
		if exitOf(tk) != 0 {
			t.Errorf("%q: exit %d\n%s", k, exitOf(tk), srv.Logs(tk.ARN))
		}
		if tk.Env["S3_BUCKET"] != env.Bucket || tk.Env["WORK_QUEUE_URL"] != env.WorkQueueURL || tk.Env["SQS_RECEIPT_HANDLE"] == "" {
			t.Errorf("%q: job environment %v", k, tk.Env)
		}
		if tk.StartedBy != ecslaunch.StartedBy(k) || tk.Tags[ecslaunch.TagJob] != ecslaunch.JobID(k) {
			t.Errorf("%q: startedBy %q, tags %v", k, tk.StartedBy, tk.Tags)
		}
		if strings.Join(tk.Subnets, ",") != "subnet-0a,subnet-0b" || strings.Join(tk.SecurityGroups, ",") != "sg-0c" || tk.AssignPublicIP != "DISABLED" {
			t.Errorf("%q: network %v %v %s", k, tk.Subnets, tk.SecurityGroups, tk.AssignPublicIP)
		}
		if tk.CapacityProvider != "FARGATE_SPOT" || tk.Family != "hevc-processor" {
			t.Errorf("%q: capacity provider %s, family %s", k, tk.CapacityProvider, tk.Family)
		}
	}
	waitDrained(t, env, env.WorkQueueURL)
}

// An interrupted task (StopTask, as Fargate Spot does with its 2-minute
// warning) stops ffmpeg, makes its message visible at once and exits
// non-zero; the job is retried and its result lands exactly once.
func TestSpotInterruptionRetriesJob(t *testing.T) {
	env, st := mainBucket(t)
	// With a 10-minute heartbeat visibility and start grace, the retry can
	// only come this soon from the processor's release.
	srv := startECS(t, env, ecstest.Options{}, "VISIBILITY_TIMEOUT=10m")
	key := "TODO/spot/interrupted clip.mp4"
	put(t, st, key, clip(t, true))
	dispatch(t, vars(env, env.Bucket, env.WorkQueueURL, srv, map[string]string{"START_GRACE": "10m"}))

	first := firstTaskEncoding(t, srv, key)
	if err := srv.Interrupt(first.ARN); err != nil {
		t.Fatal(err)
	}
	stopped, err := srv.WaitStopped(context.Background(), first.ARN)
	if err != nil {
		t.Fatal(err)
	}
	logs := srv.Logs(first.ARN)
	if exitOf(stopped) != 143 || stopped.StopCode != "SpotInterruption" {
		t.Errorf("interrupted task: exit %d, stop code %s", exitOf(stopped), stopped.StopCode)
	}
	if stopped.Leaked {
		t.Error("processes of the interrupted task outlived it (ffmpeg not stopped)")
	}
	if !strings.Contains(logs, "message made visible again") || strings.Contains(logs, "uploading result") {
		t.Errorf("interrupted task's log:\n%s", logs)
	}
	waitFor(t, 2*time.Minute, "the retry to finish", func() (bool, error) {
		return !exists(t, st, key) && len(srv.TasksFor(key)) == 2 && allStopped(srv), nil
	})
	ts := srv.TasksFor(key)
	if exitOf(ts[1]) != 0 {
		t.Errorf("retry exit %d\n%s", exitOf(ts[1]), srv.Logs(ts[1].ARN))
	}
	done := "DONE/spot/interrupted clip-hevc.mp4"
	if !exists(t, st, done) {
		t.Errorf("%s missing", done)
	}
	if n := resultEvents(t, env, done); n != 1 {
		t.Errorf("%d result events for %s, want exactly one", n, done)
	}
	if v, i := depth(t, env, env.WorkQueueURL); v+i != 0 {
		t.Errorf("work queue: %d visible, %d in flight", v, i)
	}
	if v, _ := depth(t, env, env.WorkDLQURL); v != 0 {
		t.Errorf("work DLQ: %d", v)
	}
}

// A task killed outright (no SIGTERM: crash, OOM) cannot release its
// message: it reappears once the heartbeat's visibility runs out, and the
// job is retried to completion, its result landing once.
func TestKilledTaskRetriesJob(t *testing.T) {
	env, st := mainBucket(t)
	srv := startECS(t, env, ecstest.Options{}, "VISIBILITY_TIMEOUT=4s")
	key := "TODO/crash/killed.mp4"
	put(t, st, key, clip(t, true))
	dispatch(t, vars(env, env.Bucket, env.WorkQueueURL, srv, map[string]string{"START_GRACE": "4s"}))

	first := firstTaskEncoding(t, srv, key)
	if err := srv.Kill(first.ARN); err != nil {
		t.Fatal(err)
	}
	if tk, err := srv.WaitStopped(context.Background(), first.ARN); err != nil || exitOf(tk) != 137 {
		t.Fatalf("killed task: exit %d, %v", exitOf(tk), err)
	}
	waitFor(t, 2*time.Minute, "the retry to finish", func() (bool, error) {
		return !exists(t, st, key) && len(srv.TasksFor(key)) >= 2 && allStopped(srv), nil
	})
	ts := srv.TasksFor(key)
	if len(ts) != 2 || exitOf(ts[1]) != 0 {
		t.Errorf("%d tasks; last exit %d", len(ts), exitOf(ts[len(ts)-1]))
	}
	done := "DONE/crash/killed-hevc.mp4"
	if n := resultEvents(t, env, done); n != 1 {
		t.Errorf("%d result events for %s, want exactly one", n, done)
	}
	waitDrained(t, env, env.WorkQueueURL)
}

// Duplicate events start one task; events for missing keys, results that
// exist, other prefixes and unreadable bodies start none and are deleted; a
// message with two records is split. (Another bucket's events are kept:
// TestUnusableMessagesDoNotHoldUpWork.)
func TestDuplicatesAndInvalidEvents(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	q := env.NewScratchQueue(t, 30*time.Second, 3)
	srv := startECS(t, env, ecstest.Options{})
	b := clip(t, false)
	put(t, st, "TODO/dup.mp4", b)
	put(t, st, "TODO/second.mp4", b)
	put(t, st, "TODO/already.mp4", b)
	put(t, st, "DONE/already-hevc.mp4", b)
	sendEvents(t, env, q.Name(), st.Bucket(), "TODO/dup.mp4", "TODO/dup.mp4", "TODO/dup.mp4",
		"TODO/gone.mp4", "DONE/x-hevc.mp4", "TODO/readme.txt", "TODO/a/../b.mp4", "TODO/out-hevc.mp4", "TODO/already.mp4")
	two := twoRecords(t, events.Created(st.Bucket(), "TODO/dup.mp4", 1, ""), events.Created(st.Bucket(), "TODO/second.mp4", 1, ""))
	sendRaw(t, env, q.Name(), "not json", `{"Event":"s3:TestEvent"}`, two)

	dispatch(t, vars(env, st.Bucket(), q.Name(), srv, nil))
	waitFor(t, 2*time.Minute, "queue drained and tasks done", func() (bool, error) {
		v, i := depth(t, env, q.Name())
		return v+i == 0 && allStopped(srv) && !exists(t, st, "TODO/dup.mp4") && !exists(t, st, "TODO/second.mp4"), nil
	})
	for _, k := range []string{"TODO/dup.mp4", "TODO/second.mp4"} {
		if n := len(srv.TasksFor(k)); n != 1 {
			t.Errorf("%s: %d tasks, want 1", k, n)
		}
	}
	if n := len(srv.Tasks()); n != 2 {
		t.Errorf("%d tasks in all, want 2", n)
	}
	if exists(t, st, "TODO/already.mp4") || !exists(t, st, "DONE/already-hevc.mp4") {
		t.Error("TODO/already.mp4 (result in DONE/) not cleaned up, or its result gone")
	}
	if v, _ := depth(t, env, q.DeadLetterURL()); v != 0 {
		t.Errorf("DLQ: %d messages", v)
	}
}

// At MAX_TASKS running tasks the dispatcher receives nothing: the cap holds
// with more work waiting, and every job still runs once.
func TestMaxTasksNeverExceeded(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	q := env.NewScratchQueue(t, 30*time.Second, 3)
	srv := startECS(t, env, ecstest.Options{ProvisioningDelay: 300 * time.Millisecond})
	b := clip(t, false)
	var keys []string
	for i := 0; i < 5; i++ {
		k := fmt.Sprintf("TODO/cap/clip-%d.mp4", i)
		keys = append(keys, k)
		put(t, st, k, b)
	}
	sendEvents(t, env, q.Name(), st.Bucket(), keys...)
	dispatch(t, vars(env, st.Bucket(), q.Name(), srv, map[string]string{"MAX_TASKS": "2"}))
	waitFor(t, 3*time.Minute, "all jobs done", func() (bool, error) {
		for _, k := range keys {
			if exists(t, st, k) {
				return false, nil
			}
		}
		return allStopped(srv), nil
	})
	if m := srv.MaxActive(); m > 2 || m < 1 {
		t.Errorf("at most %d tasks ran at once, MAX_TASKS is 2", m)
	}
	for _, k := range keys {
		ts := srv.TasksFor(k)
		if len(ts) != 1 || exitOf(ts[0]) != 0 {
			t.Errorf("%s: %d tasks", k, len(ts))
		}
	}
}

// Without Fargate Spot capacity the job runs on FARGATE after
// ECS_SPOT_FALLBACK_AFTER capacity failures.
func TestSpotCapacityFallback(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	q := env.NewScratchQueue(t, 30*time.Second, 3)
	srv := startECS(t, env, ecstest.Options{})
	srv.FailSpotCapacity(1000)
	srv.Throttle("RunTask", 1)
	put(t, st, "TODO/fallback.mp4", clip(t, false))
	sendEvents(t, env, q.Name(), st.Bucket(), "TODO/fallback.mp4")
	dispatch(t, vars(env, st.Bucket(), q.Name(), srv, map[string]string{"ECS_SPOT_FALLBACK_AFTER": "2"}))
	waitFor(t, 2*time.Minute, "job done", func() (bool, error) {
		return !exists(t, st, "TODO/fallback.mp4") && allStopped(srv), nil
	})
	ts := srv.TasksFor("TODO/fallback.mp4")
	if len(ts) != 1 || ts[0].CapacityProvider != "FARGATE" || exitOf(ts[0]) != 0 {
		t.Fatalf("tasks %+v, want one on FARGATE", ts)
	}
	if n := srv.Calls("RunTask"); n != 4 {
		t.Errorf("RunTask calls %d, want 1 throttled + 2 Spot failures + 1 on FARGATE", n)
	}
	if !exists(t, st, "DONE/fallback-hevc.mp4") {
		t.Error("no result")
	}
}

// A bad input ends in FAILED/ at the first attempt; a job that keeps failing
// transiently is retried maxReceiveCount times and then dead-lettered,
// never looping.
func TestPoisonJobs(t *testing.T) {
	env := awstest.Shared(t)
	t.Run("bad input ends in FAILED", func(t *testing.T) {
		st := env.NewScratchStore(t)
		q := env.NewScratchQueue(t, 2*time.Second, 3)
		srv := startECS(t, env, ecstest.Options{})
		put(t, st, "TODO/notes.mp4", []byte("This is not a video.\n"))
		sendEvents(t, env, q.Name(), st.Bucket(), "TODO/notes.mp4")
		dispatch(t, vars(env, st.Bucket(), q.Name(), srv, map[string]string{"START_GRACE": "2s"}))
		waitFor(t, time.Minute, "the failure record", func() (bool, error) {
			v, i := depth(t, env, q.Name())
			return exists(t, st, "FAILED/notes.mp4.json") && v+i == 0 && allStopped(srv), nil
		})
		r, _, err := st.Get(context.Background(), "FAILED/notes.mp4.json")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		var rec struct{ Key, Status, Reason string }
		if err := json.Unmarshal(b, &rec); err != nil || rec.Status != "failed" || rec.Key != "TODO/notes.mp4" || !strings.Contains(rec.Reason, "notes.mp4") {
			t.Errorf("record %s (%v)", b, err)
		}
		if ts := srv.TasksFor("TODO/notes.mp4"); len(ts) != 1 || exitOf(ts[0]) != 0 {
			t.Errorf("tasks %+v, want one that exits 0", ts)
		}
		if exists(t, st, "TODO/notes.mp4") {
			t.Error("TODO/notes.mp4 still there")
		}
		if v, _ := depth(t, env, q.DeadLetterURL()); v != 0 {
			t.Errorf("DLQ: %d", v)
		}
	})
	t.Run("transient failure is dead-lettered", func(t *testing.T) {
		st := env.NewScratchStore(t)
		q := env.NewScratchQueue(t, 2*time.Second, 3)
		// Its scratch directory does not exist: every attempt fails
		// transiently (exit 75) and hands its message back with a backoff
		// (10 s, 20 s, 40 s).
		srv := startECS(t, env, ecstest.Options{}, "WORK_DIR=/nonexistent/scratch")
		put(t, st, "TODO/stuck.mp4", clip(t, false))
		sendEvents(t, env, q.Name(), st.Bucket(), "TODO/stuck.mp4")
		dispatch(t, vars(env, st.Bucket(), q.Name(), srv, map[string]string{"START_GRACE": "2s"}))
		waitFor(t, 4*time.Minute, "the message in the DLQ", func() (bool, error) {
			v, _ := depth(t, env, q.DeadLetterURL())
			return v == 1 && allStopped(srv), nil
		})
		ts := srv.TasksFor("TODO/stuck.mp4")
		if len(ts) != 3 {
			t.Errorf("%d attempts, want maxReceiveCount (3)", len(ts))
		}
		for i, tk := range ts {
			if exitOf(tk) != 75 {
				t.Errorf("attempt exited %d, want 75 (transient)\n%s", exitOf(tk), srv.Logs(tk.ARN))
			}
			// The dispatcher passes the receive count on; the processor
			// asks for the matching backoff.
			if got, want := tk.Env["SQS_RECEIVE_COUNT"], fmt.Sprint(i+1); got != want {
				t.Errorf("attempt %d: SQS_RECEIVE_COUNT %q, want %s", i+1, got, want)
			}
			if want := fmt.Sprintf(`"retry_in":%d`, 10000*(1<<i)); !strings.Contains(srv.Logs(tk.ARN), want) {
				t.Errorf("attempt %d did not hand its message back with %s:\n%s", i+1, want, srv.Logs(tk.ARN))
			}
		}
		if !exists(t, st, "TODO/stuck.mp4") || exists(t, st, "FAILED/stuck.mp4.json") {
			t.Error("a transient failure must keep TODO/ and write no FAILED/ record")
		}
		if keys := keysOf(t, receiveAll(t, env, q.DeadLetterURL())); len(keys) != 1 || keys[0] != "TODO/stuck.mp4" {
			t.Errorf("DLQ holds %q", keys)
		}
		if v, i := depth(t, env, q.Name()); v+i != 0 {
			t.Errorf("work queue: %d visible, %d in flight", v, i)
		}
	})
}

// LAUNCHER=exec runs hevc-processor as a child process with the job in its
// environment.
func TestExecLauncher(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	q := env.NewScratchQueue(t, 30*time.Second, 3)
	bin := buildProcessor(t)
	// The dispatcher passes its own environment on to the processor.
	for _, kv := range taskEnv(env) {
		k, v, _ := strings.Cut(kv, "=")
		if k != "PATH" && k != "HOME" && k != "TMPDIR" {
			t.Setenv(k, v)
		}
	}
	put(t, st, "TODO/exec me.mp4", clip(t, false))
	sendEvents(t, env, q.Name(), st.Bucket(), "TODO/exec me.mp4")
	dispatch(t, vars(env, st.Bucket(), q.Name(), nil, map[string]string{"LAUNCHER": "exec", "PROCESSOR_BIN": bin, "MAX_TASKS": "1"}))
	waitFor(t, 2*time.Minute, "job done", func() (bool, error) {
		v, i := depth(t, env, q.Name())
		return !exists(t, st, "TODO/exec me.mp4") && v+i == 0, nil
	})
	if !exists(t, st, "DONE/exec me-hevc.mp4") {
		t.Error("no result")
	}
}

// twoRecords merges the records of two event bodies into one message.
func twoRecords(t *testing.T, a, b string) string {
	t.Helper()
	var x, y struct{ Records []json.RawMessage }
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{"Records": append(x.Records, y.Records...)})
	return string(out)
}
