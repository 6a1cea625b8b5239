package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/ecstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	ecslaunch "github.com/hevc-encoder/hevc-encoder/pkg/launch/ecs"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/services/sqs-dispatcher/dispatcher"
)

// fakeTasks starts an ECS endpoint whose tasks run until stopped, and
// launches one for each key (they are "in flight").
func fakeTasks(t *testing.T, bucket string, keys ...string) *ecstest.Server {
	t.Helper()
	srv := ecstest.Start(t, ecstest.Options{Cluster: cluster, Container: container, Func: func(ctx context.Context, _ ecstest.Task) int {
		<-ctx.Done()
		return 143
	}})
	l, err := ecslaunch.New(context.Background(), ecslaunch.Config{
		Cluster: cluster, TaskDefinition: taskDef, Container: container, Subnets: []string{"subnet-0a"},
		Endpoint: srv.URL, Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := l.Launch(context.Background(), launch.Job{Bucket: bucket, Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

// putMany writes tiny objects under keys, 32 at a time, with plain
// PutObject requests (set-up speed).
func putMany(t *testing.T, env *awstest.Env, st storage.Store, keys []string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(keys))
	work := make(chan string)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				_, err := env.S3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(st.Bucket()), Key: aws.String(k), Body: strings.NewReader("x")})
				if err != nil {
					errs <- fmt.Errorf("put %s: %w", k, err)
				}
			}
		}()
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// trigger over 2,500 TODO/ keys (three listing pages) re-queues exactly the
// keys without a running task or a result, each once, in batches of 10.
func TestTriggerPaginates(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	q := env.NewScratchQueue(t, time.Minute, 3)
	var todo, running, done []string
	for i := 0; i < 2500; i++ {
		todo = append(todo, fmt.Sprintf("TODO/%02d/clip é %04d.mp4", i%40, i))
	}
	for i := 0; i < 2500; i += 357 {
		running = append(running, todo[i]) // 8 keys
	}
	for i := 5; i < 2500; i += 83 {
		k := todo[i]
		done = append(done, "DONE/"+strings.TrimSuffix(strings.TrimPrefix(k, "TODO/"), ".mp4")+"-hevc.mp4") // 31 keys
	}
	invalid := []string{"TODO/notes.txt", "TODO/old-hevc.mp4"}
	start := time.Now()
	putMany(t, env, st, append(append(append([]string{}, todo...), done...), invalid...))
	t.Logf("put %d objects in %s", len(todo)+len(done)+len(invalid), time.Since(start))
	srv := fakeTasks(t, st.Bucket(), running...)

	skip := map[string]bool{}
	for _, k := range running {
		skip[k] = true
	}
	for _, d := range done {
		skip["TODO/"+strings.TrimSuffix(strings.TrimPrefix(d, "DONE/"), "-hevc.mp4")+".mp4"] = true
	}
	var want []string
	for _, k := range todo {
		if !skip[k] {
			want = append(want, k)
		}
	}
	m := vars(env, st.Bucket(), q.Name(), srv, nil)

	out, err := command(t, m, "trigger", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	var wouldSend []string
	for _, ln := range lines(out) {
		what, key, ok := strings.Cut(ln, "\t")
		if !ok {
			continue
		}
		counts[what]++
		if what == "send" {
			wouldSend = append(wouldSend, key)
		}
	}
	summary := fmt.Sprintf("would send %d; skipped %d running, %d with a result in DONE/, 2 invalid", len(want), len(running), len(done))
	if !strings.Contains(out, summary) || counts["send"] != len(want) || counts["running"] != len(running) || counts["done"] != len(done) || counts["invalid"] != 2 {
		t.Errorf("dry run: counts %v, output ends %q, want %q", counts, out[max(0, len(out)-200):], summary)
	}
	if v, i := depth(t, env, q.Name()); v+i != 0 {
		t.Fatalf("dry run sent %d messages", v+i)
	}

	out, err = command(t, m, "trigger")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("sent %d; skipped %d running, %d with a result in DONE/, 2 invalid", len(want), len(running), len(done)); !strings.Contains(out, want) {
		t.Errorf("output %q, want %q", out, want)
	}
	start = time.Now()
	got := keysOf(t, receiveAll(t, env, q.Name()))
	t.Logf("received %d messages in %s", len(got), time.Since(start))
	sort.Strings(got)
	sort.Strings(want)
	sort.Strings(wouldSend)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("re-queued %d keys, want %d (exactly the ones not in flight and without a result)", len(got), len(want))
	}
	if strings.Join(wouldSend, "\n") != strings.Join(want, "\n") {
		t.Error("the dry run listed other keys than those sent")
	}

	out, err = command(t, m, "trigger", "--dry-run", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		dispatcher.TriggerResult
		DryRun bool `json:"dry_run"`
	}
	jsonField(t, out, &res)
	if res.Sent != len(want) || res.InFlight != len(running) || res.HasResult != len(done) || res.Invalid != 2 || !res.DryRun {
		t.Errorf("--json: %+v", res)
	}
}

// trigger --redrive moves the dead-letter queue back to the work queue.
func TestTriggerRedrive(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	q := env.NewScratchQueue(t, time.Minute, 3)
	sendEvents(t, env, q.DeadLetterURL(), st.Bucket(), "TODO/a.mp4", "TODO/b.mp4", "TODO/c d.mp4")
	m := vars(env, st.Bucket(), q.Name(), nil, map[string]string{"LAUNCHER": "exec"})

	out, err := command(t, m, "trigger", "--redrive", "--dry-run")
	if err != nil || !strings.Contains(out, "would move 3 message(s)") {
		t.Fatalf("dry run: %q, %v", out, err)
	}
	if v, _ := depth(t, env, q.Name()); v != 0 {
		t.Fatalf("dry run moved %d", v)
	}
	out, err = command(t, m, "trigger", "--redrive")
	if err != nil || !strings.Contains(out, "moved 3 message(s)") {
		t.Fatalf("redrive: %q, %v", out, err)
	}
	if v, i := depth(t, env, q.DeadLetterURL()); v+i != 0 {
		t.Errorf("DLQ still holds %d", v+i)
	}
	got := keysOf(t, receiveAll(t, env, q.Name()))
	sort.Strings(got)
	if strings.Join(got, ",") != "TODO/a.mp4,TODO/b.mp4,TODO/c d.mp4" {
		t.Errorf("work queue holds %q", got)
	}
}

// status reports objects, queue depths with dead-letter queues, and running
// tasks, as tables and as JSON.
func TestStatus(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	work := env.NewScratchQueue(t, time.Minute, 3)
	results := env.NewScratchQueue(t, time.Minute, 3)
	putMany(t, env, st, []string{"TODO/a.mp4", "TODO/b.mp4", "TODO/c.mp4", "DONE/x-hevc.mp4", "DONE/y-hevc.mp4", "FAILED/z.mp4.json"})
	sendEvents(t, env, work.Name(), st.Bucket(), "TODO/a.mp4", "TODO/b.mp4", "TODO/c.mp4")
	if _, err := env.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: ptr(work.Name()), MaxNumberOfMessages: 1}); err != nil {
		t.Fatal(err)
	}
	sendEvents(t, env, work.DeadLetterURL(), st.Bucket(), "TODO/dead.mp4", "TODO/dead2.mp4")
	sendEvents(t, env, results.Name(), st.Bucket(), "DONE/x-hevc.mp4")
	srv := fakeTasks(t, st.Bucket(), "TODO/a.mp4", "TODO/b.mp4")
	lib := statusLibrary(t)
	m := vars(env, st.Bucket(), work.Name(), srv, map[string]string{"RESULTS_QUEUE_URL": results.Name(), "MAX_TASKS": "4", "LIBRARY_ROOT": lib})

	out, err := command(t, m, "status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"TODO/    3", "DONE/    2", "FAILED/  1",
		"work     2        1          2            0",
		"results  1        0          0            0",
		"RUNNING TASKS 2 (MAX_TASKS 4)", "TODO/a.mp4", "TODO/b.mp4", "FARGATE_SPOT",
		"LIBRARY " + lib, "FAILURES BY REASON", "TRASH 1 file(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
	}

	out, err = command(t, m, "status", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s dispatcher.Status
	jsonField(t, out, &s)
	if s.Objects.Todo.Count != 3 || s.Objects.Done.Count != 2 || s.Objects.Failed.Count != 1 || s.Objects.Todo.Bytes != 3 {
		t.Errorf("objects %+v", s.Objects)
	}
	if s.Work == nil || s.Work.Visible != 2 || s.Work.InFlight != 1 || s.Work.DLQ == nil || s.Work.DLQ.Visible != 2 {
		t.Errorf("work queue %+v", s.Work)
	}
	if s.Results == nil || s.Results.Visible != 1 {
		t.Errorf("results queue %+v", s.Results)
	}
	if s.Tasks == nil || s.Tasks.Running != 2 || s.Tasks.MaxTasks != 4 || len(s.Tasks.Tasks) != 2 || s.Tasks.Tasks[0].Key != "TODO/a.mp4" || s.Tasks.Tasks[0].ARN == "" {
		t.Errorf("tasks %+v", s.Tasks)
	}
	// Every key of the JSON is snake_case, the dead-letter depths included.
	var doc any
	jsonField(t, out, &doc)
	if bad := nonSnakeKeys(doc, ""); len(bad) > 0 {
		t.Errorf("status --json keys not snake_case: %v\n%s", bad, out)
	}
	checkLibraryStatus(t, s.Library, lib) // the library's section, keys checked above
	if !strings.Contains(out, `"dead_letter": {`) || !strings.Contains(out, `"in_flight": 0`) {
		t.Errorf("status --json lacks the dead-letter depths:\n%s", out)
	}

	// Without any launcher variable (from a laptop, or a host that only
	// has the bucket and queue settings), status still works.
	bare := map[string]string{}
	for k, v := range m {
		if !strings.HasPrefix(k, "ECS_") && k != "LAUNCHER" && k != "MAX_TASKS" {
			bare[k] = v
		}
	}
	out, err = command(t, bare, "status", "--json")
	if err != nil {
		t.Fatalf("status without launcher settings: %v", err)
	}
	var bs dispatcher.Status
	jsonField(t, out, &bs)
	if bs.Objects.Todo.Count != 3 || bs.Work == nil || bs.Work.Visible != 2 || bs.Tasks != nil {
		t.Errorf("status without launcher settings: %s", out)
	}
	if out, err := command(t, bare, "status"); err != nil || !strings.Contains(out, "TODO/    3") || strings.Contains(out, "RUNNING TASKS") {
		t.Errorf("status table without launcher settings: %v\n%s", err, out)
	}
	// The cluster and task definition alone are enough to list tasks (no
	// subnets or security groups: those are for RunTask).
	bare["ECS_CLUSTER"], bare["ECS_TASK_DEFINITION"], bare["ECS_ENDPOINT"] = cluster, taskDef, srv.URL
	if out, err := command(t, bare, "status"); err != nil || !strings.Contains(out, "RUNNING TASKS 2") || !strings.Contains(out, "TODO/b.mp4") {
		t.Errorf("status with only ECS_CLUSTER and ECS_TASK_DEFINITION: %v\n%s", err, out)
	}
}

// nonSnakeKeys lists the object keys in v (decoded JSON) that are not
// snake_case, with their paths.
func nonSnakeKeys(v any, path string) []string {
	var bad []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			snake := k != ""
			for _, r := range k {
				if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
					snake = false
				}
			}
			if !snake {
				bad = append(bad, path+"."+k)
			}
			bad = append(bad, nonSnakeKeys(e, path+"."+k)...)
		}
	case []any:
		for i, e := range x {
			bad = append(bad, nonSnakeKeys(e, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return bad
}

func ptr(s string) *string { return &s }

// Every command answers --help (exit 0) with its variables; configuration
// errors name the variable.
func TestHelpAndConfigErrors(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"trigger", "--help"}, {"status", "--help"}} {
		out, err := command(t, map[string]string{}, args...)
		if !isHelp(err) {
			t.Errorf("%v: error %v, want help", args, err)
		}
		for _, want := range []string{"Usage: sqs-dispatcher", "LAUNCHER", "ECS_CLUSTER", "MAX_TASKS", "WORK_QUEUE_URL", "Commands:"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: help lacks %q", args, want)
			}
		}
	}
	if out, _ := command(t, map[string]string{}, "trigger", "--help"); !strings.Contains(out, "--redrive") || !strings.Contains(out, "--dry-run") {
		t.Errorf("trigger help lacks --redrive/--dry-run:\n%s", out)
	}
	if out, err := command(t, map[string]string{}, "help"); !isHelp(err) || !strings.Contains(out, "status") {
		t.Errorf("help: %q, %v", out, err)
	}
	_, err := command(t, map[string]string{}, "bogus")
	var ue usageError
	if !errors.As(err, &ue) {
		t.Errorf("unknown command: %v", err)
	}
	_, err = command(t, map[string]string{"S3_BUCKET": "b", "WORK_QUEUE_URL": "q"}, "run")
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "ECS_CLUSTER is required") || !strings.Contains(err.Error(), "ECS_SUBNETS") {
		t.Errorf("LAUNCHER=ecs without its variables: %v", err)
	}
	_, err = command(t, map[string]string{"S3_BUCKET": "b", "WORK_QUEUE_URL": "q", "LAUNCHER": "fargate"}, "run")
	if err == nil || !strings.Contains(err.Error(), "LAUNCHER") {
		t.Errorf("bad LAUNCHER: %v", err)
	}
	for v, val := range map[string]string{"RECONCILE_INTERVAL": "500ms", "RECONCILE_GRACE": "-1s"} {
		_, err = command(t, map[string]string{"S3_BUCKET": "b", "WORK_QUEUE_URL": "q", "LAUNCHER": "exec", v: val}, "run")
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), v) {
			t.Errorf("%s=%s: %v", v, val, err)
		}
	}
	if out, _ := command(t, map[string]string{}, "run", "--help"); !strings.Contains(out, "RECONCILE_INTERVAL") || !strings.Contains(out, "s3:ObjectCreated") ||
		!regexp.MustCompile(`RECONCILE_INTERVAL\n[^\n]*\(default 10m0s\)`).MatchString(out) {
		t.Errorf("run help lacks the reconcile (default 10 min) or the event spellings:\n%s", out)
	}

	// The processor binary: --help exits 0 and documents its exit statuses;
	// a missing job is a configuration error (exit 2).
	bin := buildProcessor(t)
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--help")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || !strings.Contains(stderr.String(), "Exit status") || !strings.Contains(stderr.String(), "S3_OBJECT_KEY") {
		t.Errorf("hevc-processor --help: %v\n%s", err, stderr.String())
	}
	cmd = exec.Command(bin)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("hevc-processor without a job: %v, want exit status 2", err)
	}
}
