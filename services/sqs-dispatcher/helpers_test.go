package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/ecstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/events"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

func TestMain(m *testing.M) { awstest.Main(m) }

const (
	cluster   = "hevc"
	taskDef   = "hevc-processor:3"
	container = "hevc-processor"
)

var processorBin struct {
	once sync.Once
	path string
	err  error
}

// buildProcessor builds the real hevc-processor binary once per test run.
func buildProcessor(t *testing.T) string {
	t.Helper()
	processorBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "sqs-dispatcher-test-*")
		if err != nil {
			processorBin.err = err
			return
		}
		processorBin.path = filepath.Join(dir, "hevc-processor")
		// Tests run in the package directory (runtime.Caller paths break
		// under -trimpath, which make test uses to share the build cache).
		cmd := exec.Command("go", "build", "-o", processorBin.path, ".")
		cmd.Dir = filepath.Join("..", "hevc-processor")
		if out, err := cmd.CombinedOutput(); err != nil {
			processorBin.err = fmt.Errorf("go build hevc-processor: %v\n%s", err, out)
		}
	})
	if processorBin.err != nil {
		t.Fatal(processorBin.err)
	}
	return processorBin.path
}

// taskEnv is the processor task definition's environment for env: the
// test servers, fast x265 settings, a 1 s heartbeat.
func taskEnv(env *awstest.Env, extra ...string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "TMPDIR=" + os.TempDir(), "LOG_FORMAT=json", "LOG_LEVEL=info"}
	out = append(out, env.Environ()...)
	out = append(out,
		"X265_PRESET=ultrafast", "X265_THREADS=1",
		"HEARTBEAT_INTERVAL=1s", "VISIBILITY_TIMEOUT=20s",
		"S3_PART_SIZE=5MiB",
	)
	return append(out, extra...)
}

// startECS starts the fake ECS endpoint running the processor binary.
func startECS(t *testing.T, env *awstest.Env, opts ecstest.Options, extraEnv ...string) *ecstest.Server {
	t.Helper()
	opts.Cluster = cluster
	opts.Container = container
	if opts.Func == nil {
		opts.Command = []string{buildProcessor(t)}
		opts.Env = taskEnv(env, extraEnv...)
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 30 * time.Second
	}
	return ecstest.Start(t, opts)
}

// vars are the sqs-dispatcher's variables for env, bucket, queue and srv.
func vars(env *awstest.Env, bucket, queueURL string, srv *ecstest.Server, more map[string]string) map[string]string {
	m := map[string]string{
		"AWS_ACCESS_KEY_ID":     env.AccessKey,
		"AWS_SECRET_ACCESS_KEY": env.SecretKey,
		"AWS_REGION":            env.Region,
		"STORAGE":               "s3",
		"S3_BUCKET":             bucket,
		"S3_ENDPOINT":           env.S3Endpoint,
		"S3_PATH_STYLE":         "true",
		"QUEUE":                 "sqs",
		"SQS_ENDPOINT":          env.SQSEndpoint,
		"WORK_QUEUE_URL":        queueURL,
		"LAUNCHER":              "ecs",
		"ECS_CLUSTER":           cluster,
		"ECS_TASK_DEFINITION":   taskDef,
		"ECS_CONTAINER_NAME":    container,
		"ECS_SUBNETS":           "subnet-0a, subnet-0b",
		"ECS_SECURITY_GROUPS":   "sg-0c",
		"RECEIVE_WAIT":          "1s",
		"BUSY_WAIT":             "200ms",
		"START_GRACE":           "10m",
	}
	if srv != nil {
		m["ECS_ENDPOINT"] = srv.URL
	}
	for k, v := range more {
		m[k] = v
	}
	return m
}

func getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// command runs a sqs-dispatcher command to completion and returns its
// standard output.
func command(t *testing.T, m map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := realMain(ctx, args, getenv(m), &out)
	return out.String(), err
}

// dispatch runs the dispatcher (sqs-dispatcher run) until the test ends.
func dispatch(t *testing.T, m map[string]string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- realMain(ctx, []string{"run"}, getenv(m), os.Stdout) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("dispatcher: %v", err)
		}
	})
}

// waitFor polls cond every 100 ms until it holds; it fails the test after
// timeout (a hang guard, not a timing assertion).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not the case after %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// firstTaskEncoding waits until the first task for key is encoding and
// returns it.
func firstTaskEncoding(t *testing.T, srv *ecstest.Server, key string) ecstest.Task {
	t.Helper()
	var first ecstest.Task
	waitFor(t, 2*time.Minute, "the first task encoding", func() (bool, error) {
		ts := srv.TasksFor(key)
		if len(ts) == 0 {
			return false, nil
		}
		first = ts[0]
		return strings.Contains(srv.Logs(first.ARN), `"message":"encoding"`), nil
	})
	return first
}

// waitDrained waits until the queue at url holds no message, visible or in
// flight.
func waitDrained(t *testing.T, env *awstest.Env, url string) {
	t.Helper()
	waitFor(t, time.Minute, "work queue drained", func() (bool, error) {
		v, i := depth(t, env, url)
		return v+i == 0, nil
	})
}

var clips struct {
	once sync.Once
	dir  string
}

// clip returns the bytes of a generated H.264 clip (1 s unless long).
func clip(t *testing.T, long bool) []byte {
	t.Helper()
	clips.once.Do(func() {
		clips.dir, _ = os.MkdirTemp("", "dispatcher-clips-*")
	})
	name := filepath.Join(clips.dir, "short.mp4")
	o := mediatest.ClipOpts{Seconds: 1, Width: 160, Height: 120, FPS: 15}
	if long {
		name = filepath.Join(clips.dir, "long.mp4")
		o = mediatest.ClipOpts{Seconds: 12, Width: 480, Height: 360, FPS: 30}
	}
	if _, err := os.Stat(name); err != nil {
		mediatest.Clip(t, name, o)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, st storage.Store, key string, b []byte) {
	t.Helper()
	if _, err := st.Put(context.Background(), key, bytes.NewReader(b), storage.PutOptions{Size: int64(len(b))}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func exists(t *testing.T, st storage.Store, key string) bool {
	t.Helper()
	ok, err := storage.Exists(context.Background(), st, key)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// sendEvents sends S3 ObjectCreated events for keys to the queue at url.
func sendEvents(t *testing.T, env *awstest.Env, url, bucket string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		body := events.Created(bucket, k, 1, "ObjectCreated:Put")
		if _, err := env.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body}); err != nil {
			t.Fatal(err)
		}
	}
}

func sendRaw(t *testing.T, env *awstest.Env, url string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if _, err := env.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
}

// depth is the visible and in-flight count of the queue at url.
func depth(t *testing.T, env *awstest.Env, url string) (int, int) {
	t.Helper()
	out, err := env.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var v, i int
	fmt.Sscan(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)], &v)
	fmt.Sscan(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)], &i)
	return v, i
}

// receiveAll receives (and deletes) every message visible in the queue at
// url and returns their bodies.
func receiveAll(t *testing.T, env *awstest.Env, url string) []string {
	t.Helper()
	var bodies []string
	empty := 0
	for empty < 2 {
		out, err := env.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		empty = 0
		var entries []sqstypes.DeleteMessageBatchRequestEntry
		for i, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
			entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle})
		}
		if _, err := env.SQS.DeleteMessageBatch(context.Background(), &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
			t.Fatal(err)
		}
	}
	return bodies
}

// keysOf decodes the keys of S3 event bodies.
func keysOf(t *testing.T, bodies []string) []string {
	t.Helper()
	var keys []string
	for _, b := range bodies {
		recs, err := events.Parse(b)
		if err != nil {
			t.Fatalf("message %q: %v", b, err)
		}
		for _, r := range recs {
			keys = append(keys, r.Key)
		}
	}
	return keys
}

func exitOf(tk ecstest.Task) int {
	if tk.ExitCode == nil {
		return -1
	}
	return *tk.ExitCode
}

// allStopped reports whether every task of srv is STOPPED.
func allStopped(srv *ecstest.Server) bool {
	for _, tk := range srv.Tasks() {
		if tk.LastStatus != ecstest.Stopped {
			return false
		}
	}
	return true
}

func jsonField(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, s)
	}
}

func isHelp(err error) bool { return errors.Is(err, config.ErrHelp) }

func lines(s string) []string {
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// explainOnFailure logs, when t has failed, where the work queue's
// messages are and what every goroutine (the dispatcher's among them) is
// doing: a stall under CI's load is otherwise silent.
func explainOnFailure(t *testing.T, env *awstest.Env) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		v, i := depth(t, env, env.WorkQueueURL)
		dv, di := depth(t, env, env.WorkDLQURL)
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Logf("work queue: %d visible, %d in flight; DLQ: %d visible, %d in flight\ngoroutines:\n%s", v, i, dv, di, buf)
	})
}
