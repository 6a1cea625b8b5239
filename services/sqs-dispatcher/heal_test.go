package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/ecstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/events"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	ecslaunch "github.com/hevc-encoder/hevc-encoder/pkg/launch/ecs"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch/local"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/services/sqs-dispatcher/dispatcher"
)

// syncBuffer is a log sink safe for the dispatcher's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// entries decodes the JSON log lines.
func (s *syncBuffer) entries(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		out = append(out, e)
	}
	return out
}

// recorded reads a recorded S3 notification body, addressed to bucket.
func recorded(t *testing.T, name, bucket string) string {
	t.Helper()
	b, err := os.ReadFile("../../pkg/events/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "amzn-s3-demo-bucket", bucket)
}

// Thirty messages the dispatcher cannot use, then a real S3 event (the
// recorded body, as S3 sends it): the junk is deleted and logged as
// warnings with its reason, S3's test events are deleted, another bucket's
// event is kept (logged as an error naming S3_BUCKET) until the redrive
// policy dead-letters it, and the real job runs. BUSY_WAIT is 10 minutes:
// had any of the junk paused the dispatcher, the job could not finish
// within the deadline.
func TestUnusableMessagesDoNotHoldUpWork(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	q := env.NewScratchQueue(t, 2*time.Second, 2)
	srv := startECS(t, env, ecstest.Options{})
	bucket := st.Bucket()
	key := "TODO/2026/Holiday 2026/clip é (1).mp4" // the recorded event's key
	put(t, st, key, clip(t, false))

	var junk []string
	for i := 0; i < 5; i++ {
		junk = append(junk,
			"not json "+fmt.Sprint(i),
			recorded(t, "s3-test-event.json", bucket),
			events.Created(bucket, fmt.Sprintf("TODO/removed-%d.mp4", i), 1, "s3:ObjectRemoved:Delete"),
			events.Created(bucket, fmt.Sprintf("TODO/readme-%d.txt", i), 1, "s3:ObjectCreated:Put"),
			events.Created(bucket, fmt.Sprintf("DONE/out-%d-hevc.mp4", i), 1, "ObjectCreated:Put"),
		)
		if i < 4 {
			junk = append(junk, events.Created(bucket, fmt.Sprintf("TODO/gone-%d.mp4", i), 1, "ObjectCreated:Put"))
		}
	}
	junk = append(junk, events.Created("another-bucket", "TODO/elsewhere.mp4", 1, "ObjectCreated:Put"))
	if len(junk) != 30 {
		t.Fatalf("%d junk messages", len(junk))
	}
	sendRaw(t, env, q.Name(), junk...)
	sendRaw(t, env, q.Name(), recorded(t, "s3-put.json", bucket))

	l, err := ecslaunch.New(context.Background(), ecslaunch.Config{
		Cluster: cluster, TaskDefinition: taskDef, Container: container, Subnets: []string{"subnet-0a"},
		Endpoint: srv.URL, Region: env.Region, MaxTasks: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	d := &dispatcher.Dispatcher{Store: st, Queue: q, Launcher: l, Log: zerolog.New(&logs).With().Str("service", "sqs-dispatcher").Logger(),
		Cfg: dispatcher.Config{Wait: time.Second, StartGrace: 10 * time.Minute, Busy: 10 * time.Minute}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	}()

	t.Cleanup(func() {
		if t.Failed() {
			logs.mu.Lock()
			t.Logf("dispatcher log:\n%s", logs.b.String())
			logs.mu.Unlock()
			for _, tk := range srv.Tasks() {
				t.Logf("task %s:\n%s", tk.ARN, srv.Logs(tk.ARN))
			}
		}
	})
	waitFor(t, 3*time.Minute, "the real job done and the other bucket's event dead-lettered", func() (bool, error) {
		v, i := depth(t, env, q.Name())
		dv, _ := depth(t, env, q.DeadLetterURL())
		return !exists(t, st, key) && allStopped(srv) && v+i == 0 && dv == 1, nil
	})
	if ts := srv.TasksFor(key); len(ts) != 1 || exitOf(ts[0]) != 0 {
		t.Errorf("%s: tasks %+v", key, ts)
	}
	if n := len(srv.Tasks()); n != 1 {
		t.Errorf("%d tasks, want 1", n)
	}
	if !exists(t, st, "DONE/2026/Holiday 2026/clip é (1)-hevc.mp4") {
		t.Error("no result")
	}
	dead := receiveAll(t, env, q.DeadLetterURL())
	if len(dead) != 1 || !strings.Contains(dead[0], `"another-bucket"`) {
		t.Errorf("dead-letter queue holds %q, want only the other bucket's event", dead)
	}

	// Each unusable message is a warning with its reason; the other
	// bucket's is an error that names S3_BUCKET.
	reasons := map[string]int{}
	misrouted := 0
	for _, e := range dispatcherEntries(logs.entries(t)) {
		level, _ := e["level"].(string)
		msg, _ := e["message"].(string)
		switch {
		case level == "warn" && msg == "unusable work message; deleted":
			reasons["unreadable"]++
		case level == "warn" && msg == "message dropped":
			reason, _ := e["reason"].(string)
			switch {
			case strings.Contains(reason, "is not ObjectCreated"):
				reasons["not created"]++
			case strings.Contains(reason, "is not TODO/<rel>.mp4"):
				reasons["not TODO"]++
			default:
				reasons["other: "+reason]++
			}
		case level == "info" && strings.HasPrefix(msg, "S3 test event"):
			reasons["test event"]++
		case level == "info" && msg == "message dropped" && e["reason"] == "TODO object no longer exists":
			reasons["gone"]++
		case level == "error" && strings.Contains(msg, "S3_BUCKET") && e["event_bucket"] == "another-bucket" && e["configured_bucket"] == bucket:
			misrouted++
		}
	}
	want := map[string]int{"unreadable": 5, "not created": 5, "not TODO": 10, "test event": 5, "gone": 4}
	if fmt.Sprint(reasons) != fmt.Sprint(want) {
		t.Errorf("dropped messages by reason %v, want %v", reasons, want)
	}
	if misrouted < 1 {
		t.Error("no error naming S3_BUCKET for the other bucket's event")
	}
}

// dispatcherEntries keeps log entries of the dispatcher (not of its launcher).
func dispatcherEntries(entries []map[string]any) []map[string]any {
	var out []map[string]any
	for _, e := range entries {
		if e["service"] == "sqs-dispatcher" {
			out = append(out, e)
		}
	}
	return out
}

// Objects created with PutObject, a multipart upload and CopyObject reach
// the dispatcher through real MinIO notifications, in MinIO's spelling
// (s3:ObjectCreated:Put, :CompleteMultipartUpload, :Copy), and are all
// encoded once.
func TestMinioEventSpellings(t *testing.T) {
	env, st := mainBucket(t)
	srv := startECS(t, env, ecstest.Options{})
	ctx := context.Background()
	b := clip(t, false)
	put(t, st, "TODO/spell/put.mp4", b)
	up, err := env.S3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &env.Bucket, Key: aws.String("TODO/spell/multipart.mp4")})
	if err != nil {
		t.Fatal(err)
	}
	part, err := env.S3.UploadPart(ctx, &s3.UploadPartInput{Bucket: &env.Bucket, Key: up.Key, UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(b)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.S3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &env.Bucket, Key: up.Key, UploadId: up.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: []s3types.CompletedPart{{ETag: part.ETag, PartNumber: aws.Int32(1)}}}}); err != nil {
		t.Fatal(err)
	}
	put(t, st, "incoming/copy-source.mp4", b) // outside TODO/: no event of its own
	if _, err := env.S3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &env.Bucket, Key: aws.String("TODO/spell/copy.mp4"), CopySource: aws.String(env.Bucket + "/incoming/copy-source.mp4")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Delete(context.Background(), "incoming/copy-source.mp4") })

	dispatch(t, vars(env, env.Bucket, env.WorkQueueURL, srv, nil))
	keys := []string{"TODO/spell/put.mp4", "TODO/spell/multipart.mp4", "TODO/spell/copy.mp4"}
	waitFor(t, 3*time.Minute, "all three encoded", func() (bool, error) {
		for _, k := range keys {
			if exists(t, st, k) || len(srv.TasksFor(k)) == 0 {
				return false, nil
			}
		}
		return allStopped(srv), nil
	})
	for _, k := range keys {
		if ts := srv.TasksFor(k); len(ts) != 1 || exitOf(ts[0]) != 0 {
			t.Errorf("%s: %d tasks", k, len(ts))
		}
		if done := strings.Replace(strings.Replace(k, "TODO/", "DONE/", 1), ".mp4", "-hevc.mp4", 1); !exists(t, st, done) {
			t.Errorf("%s missing", done)
		}
	}
}

// MinIO stops in the middle of an encode: the processor fails transiently
// (exit 75) and hands its message back with the first backoff (10 s); the
// job is retried as soon as MinIO is back and finishes once. The queue's
// heartbeat visibility and START_GRACE are 10 minutes, so the retry can
// only come this soon from the hand-back.
func TestStoreOutageRetriesSoon(t *testing.T) {
	env, st := mainBucket(t)
	srv := startECS(t, env, ecstest.Options{}, "VISIBILITY_TIMEOUT=10m", "X265_PRESET=fast")
	key := "TODO/outage/clip.mp4"
	put(t, st, key, clip(t, true))
	dispatch(t, vars(env, env.Bucket, env.WorkQueueURL, srv, map[string]string{"START_GRACE": "10m"}))

	explainOnFailure(t, env)
	first := firstTaskEncoding(t, srv, key)
	env.StopMinio()
	restarted := false
	restart := func() {
		if !restarted {
			restarted = true
			if err := env.StartMinio(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restart() // the shared MinIO must come back whatever happens
	stopped, err := srv.WaitStopped(context.Background(), first.ARN)
	if err != nil {
		t.Fatal(err)
	}
	restart()
	logs := srv.Logs(first.ARN)
	t.Logf("the interrupted task's log:\n%s", logs)
	// The first backoff is 10 s; the message's receive count decides it
	// (10 s·2^(n-1)): under load an earlier test's dispatcher, stopping,
	// can have received the message once already.
	want := `"retry_in":10000,"receive_count":1`
	if m := regexp.MustCompile(`"receive_count":(\d+)`).FindStringSubmatch(logs); m != nil && m[1] != "1" {
		n, _ := strconv.Atoi(m[1])
		want = fmt.Sprintf(`"retry_in":%d,"receive_count":%d`, 10000<<(n-1), n)
	}
	if exitOf(stopped) != 75 || !strings.Contains(logs, "message handed back for a retry") || !strings.Contains(logs, want) {
		t.Fatalf("first task: exit %d, want 75 with the message handed back (%s):\n%s", exitOf(stopped), want, logs)
	}
	// Well within START_GRACE (10 min), which is what a message left
	// hidden would wait; the margin covers a loaded machine, where the
	// store's restart and the SDK's backoff take longer.
	waitFor(t, 5*time.Minute, "the retry to finish", func() (bool, error) {
		return !exists(t, st, key) && len(srv.TasksFor(key)) >= 2 && allStopped(srv), nil
	})
	ts := srv.TasksFor(key)
	if len(ts) != 2 || exitOf(ts[1]) != 0 {
		t.Errorf("%d tasks, last exit %d\n%s", len(ts), exitOf(ts[len(ts)-1]), srv.Logs(ts[len(ts)-1].ARN))
	}
	done := "DONE/outage/clip-hevc.mp4"
	if !exists(t, st, done) || exists(t, st, "FAILED/outage/clip.mp4.json") {
		t.Errorf("want %s and no FAILED/ record", done)
	}
	if n := resultEvents(t, env, done); n != 1 {
		t.Errorf("%d result events for %s, want exactly one", n, done)
	}
	waitDrained(t, env, env.WorkQueueURL)
	if v, _ := depth(t, env, env.WorkDLQURL); v != 0 {
		t.Errorf("work DLQ: %d", v)
	}
}

// lostWork fills a bucket without notifications: two objects no message
// names (one spelled .Mp4, which no suffix rule would match), one with a
// result and one with a failure record.
func lostWork(t *testing.T, env *awstest.Env) (storage.Store, []string) {
	t.Helper()
	st := env.NewScratchStore(t)
	b := clip(t, false)
	lost := []string{"TODO/lost/a.mp4", "TODO/lost/b.Mp4"}
	for _, k := range lost {
		put(t, st, k, b)
	}
	put(t, st, "TODO/lost/has-result.mp4", b)
	put(t, st, "DONE/lost/has-result-hevc.mp4", b)
	put(t, st, "TODO/lost/failed.mp4", b)
	put(t, st, "FAILED/lost/failed.mp4.json", []byte(`{"status":"failed"}`))
	put(t, st, "TODO/lost/readme.txt", []byte("x"))
	return st, lost
}

// One reconcile pass re-queues exactly the TODO/ objects that no message,
// task or result accounts for, only when the work queue is empty, only
// those older than the grace period, and each once.
func TestReconcilePass(t *testing.T) {
	env := awstest.Shared(t)
	st, lost := lostWork(t, env)
	q := env.NewScratchQueue(t, 30*time.Second, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	running := local.New(ctx, func(ctx context.Context, _ launch.Job) error { <-ctx.Done(); return nil }, 5, nil)
	if err := running.Launch(ctx, launch.Job{Key: "TODO/lost/running.mp4"}); err != nil {
		t.Fatal(err)
	}
	put(t, st, "TODO/lost/running.mp4", clip(t, false))
	d := &dispatcher.Dispatcher{Store: st, Queue: q, Launcher: running, Log: zerolog.Nop(),
		Cfg: dispatcher.Config{ReconcileGrace: time.Hour}}
	rc := &dispatcher.Reconciler{D: d}

	if res, err := rc.Pass(ctx); err != nil || res.Healed != 0 || res.Waited {
		t.Fatalf("within the grace period: %+v, %v", res, err)
	}
	d.Cfg.ReconcileGrace = 0
	sendEvents(t, env, q.Name(), st.Bucket(), "TODO/other.mp4")
	if res, err := rc.Pass(ctx); err != nil || !res.Waited || res.Healed != 0 {
		v, i := depth(t, env, q.Name())
		t.Fatalf("with a message in the queue: %+v, %v (depth now %d+%d, %s)", res, err, v, i, q.Name())
	}
	receiveAll(t, env, q.Name())
	res, err := rc.Pass(ctx)
	if err != nil || res.Healed != 2 {
		t.Fatalf("pass: %+v, %v", res, err)
	}
	got := keysOf(t, receiveAll(t, env, q.Name()))
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(lost, ",") {
		t.Errorf("re-queued %q, want %q", got, lost)
	}
	if res, err := rc.Pass(ctx); err != nil || res.Healed != 0 {
		t.Errorf("second pass re-queued again: %+v, %v", res, err)
	}
}

// End to end: with notifications missing, the dispatcher's reconcile
// (RECONCILE_INTERVAL) finds the lost objects and each is encoded once.
func TestReconcileHealsLostWork(t *testing.T) {
	env := awstest.Shared(t)
	st, lost := lostWork(t, env)
	q := env.NewScratchQueue(t, 30*time.Second, 3)
	srv := startECS(t, env, ecstest.Options{})
	dispatch(t, vars(env, st.Bucket(), q.Name(), srv, map[string]string{"RECONCILE_INTERVAL": "1s", "RECONCILE_GRACE": "0s"}))
	waitFor(t, 3*time.Minute, "the lost objects encoded", func() (bool, error) {
		for _, k := range lost {
			if exists(t, st, k) {
				return false, nil
			}
		}
		return allStopped(srv), nil
	})
	for _, k := range lost {
		if ts := srv.TasksFor(k); len(ts) != 1 || exitOf(ts[0]) != 0 {
			t.Errorf("%s: %d tasks", k, len(ts))
		}
	}
	for _, k := range []string{"DONE/lost/a-hevc.mp4", "DONE/lost/b-hevc-Mp4.mp4", "TODO/lost/has-result.mp4", "TODO/lost/failed.mp4"} {
		if !exists(t, st, k) {
			t.Errorf("%s missing", k)
		}
	}
	if n := len(srv.Tasks()); n != 2 {
		t.Errorf("%d tasks, want 2", n)
	}
	waitDrained(t, env, q.Name())
}

// A launch that fails (here: no Spot capacity on any of RunTask's
// attempts, no fallback) hands the message back with the first backoff
// (10 s), not START_GRACE: with START_GRACE and the queue's visibility at 10
// minutes, the second delivery can only come this soon from the backoff.
func TestFailedLaunchRetriesSoon(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	q := env.NewScratchQueue(t, 10*time.Minute, 3)
	srv := startECS(t, env, ecstest.Options{})
	srv.FailSpotCapacity(6) // every attempt of the first Launch
	key := "TODO/launch/retry.mp4"
	put(t, st, key, clip(t, false))
	sendEvents(t, env, q.Name(), st.Bucket(), key)
	dispatch(t, vars(env, st.Bucket(), q.Name(), srv, map[string]string{"ECS_SPOT_FALLBACK_AFTER": "0", "START_GRACE": "10m"}))
	waitFor(t, 3*time.Minute, "the job done", func() (bool, error) {
		return !exists(t, st, key) && len(srv.TasksFor(key)) == 1 && allStopped(srv), nil
	})
	ts := srv.TasksFor(key)
	if exitOf(ts[0]) != 0 || ts[0].Env["SQS_RECEIVE_COUNT"] != "2" || ts[0].CapacityProvider != "FARGATE_SPOT" {
		t.Errorf("task exit %d, SQS_RECEIVE_COUNT %q, %s; want 0, the second delivery, FARGATE_SPOT", exitOf(ts[0]), ts[0].Env["SQS_RECEIVE_COUNT"], ts[0].CapacityProvider)
	}
	if n := srv.Calls("RunTask"); n != 7 {
		t.Errorf("RunTask calls %d, want 6 failed + 1", n)
	}
	if !exists(t, st, "DONE/launch/retry-hevc.mp4") {
		t.Error("no result")
	}
}
