// Command dispatchbench measures how fast sqs-dispatcher turns queued work
// events into ECS RunTask calls (issue 5: target >= 100 dispatches/s, so
// that the dispatcher is never the bottleneck).
//
// It starts MinIO and local-aws-sqs (pkg/awstest) and the ECS test endpoint
// (pkg/ecstest), writes N small TODO/ objects, queues one S3 event per
// object, and times the real dispatcher (validate, HEAD DONE/ and TODO/,
// extend visibility, RunTask) until every event has become a task. Two
// cases: tasks that finish at once, and tasks that keep running (so that
// every loop lists N tasks in flight). A third run has the sqs-dispatcher
// binary itself dispatch the events, for its peak RSS (issue 8). Results
// are printed and appended to $BENCH_OUT as JSON lines. QUICK=1 queues 300
// events instead of 1,000.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/benchline"
	"github.com/hevc-encoder/hevc-encoder/pkg/ecstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/events"
	ecslaunch "github.com/hevc-encoder/hevc-encoder/pkg/launch/ecs"
	"github.com/hevc-encoder/hevc-encoder/pkg/procstat"
	sqsqueue "github.com/hevc-encoder/hevc-encoder/pkg/queue/sqs"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
	"github.com/hevc-encoder/hevc-encoder/services/sqs-dispatcher/dispatcher"
)

const target = 100.0 // dispatches per second

func main() {
	n := flag.Int("events", 1000, "queued events per case")
	flag.Parse()
	if os.Getenv("QUICK") == "1" && *n == 1000 {
		*n = 300
	}
	if err := run(*n); err != nil {
		fmt.Fprintln(os.Stderr, "dispatchbench:", err)
		os.Exit(1)
	}
}

func run(n int) error {
	ctx := context.Background()
	fmt.Fprintln(os.Stderr, "dispatchbench: starting MinIO and local-aws-sqs")
	env, err := awstest.New(ctx, awstest.Options{VisibilityTimeout: 5 * time.Minute, Logf: func(f string, a ...any) {
		fmt.Fprintf(os.Stderr, f+"\n", a...)
	}})
	if err != nil {
		return err
	}
	defer env.Close()

	var lines []benchline.Line
	for _, c := range []struct {
		name  string
		keeps bool
	}{{"tasks finish at once", false}, {"tasks keep running", true}} {
		rate, calls, _, err := benchCase(ctx, env, n, c.keeps, "")
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		lines = append(lines, benchline.Line{
			Issue: 5, Case: fmt.Sprintf("dispatch %d queued events, %s", n, c.name),
			Ours: round(rate), Anchor: target, Unit: "dispatches/s", AnchorName: "target",
			Ratio: round(rate / target), Target: ">=1.0", Pass: rate >= target,
			Notes: fmt.Sprintf("MinIO + local-aws-sqs + ECS test endpoint on loopback; %s", calls),
		})
	}

	bin, err := buildDispatcher(ctx)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(bin))
	rate, calls, peakKiB, err := benchCase(ctx, env, n, true, bin)
	if err != nil {
		return fmt.Errorf("the sqs-dispatcher binary: %w", err)
	}
	lines = append(lines, benchline.Line{
		Issue: 8, Case: fmt.Sprintf("sqs-dispatcher peak RSS: the binary dispatching %d queued events", n),
		Ours: round(float64(peakKiB) / 1024), Unit: "MiB", Target: benchline.Info, Pass: true,
		Notes: fmt.Sprintf("VmHWM of the sqs-dispatcher process, polled every 5 ms; tasks keep running; %.0f dispatches/s (with its start-up); %s", rate, calls),
	})
	return benchline.Write(lines...)
}

// buildDispatcher builds the sqs-dispatcher binary into a temporary directory.
func buildDispatcher(ctx context.Context) (string, error) {
	dir, err := os.MkdirTemp("", "dispatchbench-*")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sqs-dispatcher")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/hevc-encoder/hevc-encoder/services/sqs-dispatcher")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build sqs-dispatcher: %w: %s", err, out)
	}
	return bin, nil
}

// benchCase queues n events in a new bucket and queue and times the
// dispatcher until n tasks exist: in this process, or the binary bin (then
// with its peak RSS in KiB).
func benchCase(ctx context.Context, env *awstest.Env, n int, keepRunning bool, bin string) (float64, string, int64, error) {
	bucket := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	if _, err := env.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		return 0, "", 0, err
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("TODO/bench/clip %04d.mp4", i)
	}
	if err := putAll(ctx, env, bucket, keys); err != nil {
		return 0, "", 0, err
	}
	st, err := s3store.New(ctx, env.StoreConfig(bucket))
	if err != nil {
		return 0, "", 0, err
	}
	q, err := sqsqueue.New(ctx, env.QueueConfig(env.WorkQueueURL))
	if err != nil {
		return 0, "", 0, err
	}
	if err := env.Drain(ctx, env.WorkQueueURL); err != nil {
		return 0, "", 0, err
	}
	bodies := make([]string, n)
	for i, k := range keys {
		bodies[i] = events.Created(bucket, k, 1, "ObjectCreated:Put")
	}
	if err := q.Send(ctx, bodies...); err != nil {
		return 0, "", 0, err
	}

	task := func(context.Context, ecstest.Task) int { return 0 }
	if keepRunning {
		task = func(ctx context.Context, _ ecstest.Task) int { <-ctx.Done(); return 143 }
	}
	srv, err := ecstest.New(ecstest.Options{Cluster: "bench", Func: task, StopTimeout: time.Second})
	if err != nil {
		return 0, "", 0, err
	}
	defer srv.Close()
	l, err := ecslaunch.New(ctx, ecslaunch.Config{
		Cluster: "bench", TaskDefinition: "hevc-processor", Container: "hevc-processor",
		Subnets: []string{"subnet-bench"}, Endpoint: srv.URL, Region: env.Region, MaxTasks: 0,
	})
	if err != nil {
		return 0, "", 0, err
	}
	cfg := dispatcher.Config{Wait: time.Second, StartGrace: 10 * time.Minute, Busy: 100 * time.Millisecond}
	d := &dispatcher.Dispatcher{Store: st, Queue: q, Launcher: l, Log: zerolog.Nop(), Cfg: cfg}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var peak int64 // written by the poller until polled is closed
	polled := make(chan struct{})
	close(polled) // in this process: nothing to poll
	start := time.Now()
	if bin == "" {
		go func() { defer close(done); d.Run(runCtx) }()
	} else {
		cmd := exec.CommandContext(runCtx, bin, "run")
		cmd.Env = append(env.Environ(), "PATH="+os.Getenv("PATH"), "HOME="+os.TempDir(), "LOG_LEVEL=warn",
			"S3_BUCKET="+bucket, "LAUNCHER=ecs", "ECS_ENDPOINT="+srv.URL, "ECS_CLUSTER=bench",
			"ECS_TASK_DEFINITION=hevc-processor", "ECS_CONTAINER_NAME=hevc-processor", "ECS_SUBNETS=subnet-bench",
			"RECEIVE_WAIT="+cfg.Wait.String(), "BUSY_WAIT="+cfg.Busy.String(), "START_GRACE="+cfg.StartGrace.String(),
			"MAX_TASKS="+strconv.Itoa(n)) // as unbounded as the launcher above (the default is 10 on ECS)
		cmd.Stderr = os.Stderr
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 30 * time.Second
		if err := cmd.Start(); err != nil {
			cancel()
			return 0, "", 0, err
		}
		go func() {
			defer close(done)
			if err := cmd.Wait(); err != nil && runCtx.Err() == nil {
				fmt.Fprintln(os.Stderr, "dispatchbench: sqs-dispatcher:", err)
			}
		}()
		polled = make(chan struct{})
		go func() { // VmHWM is gone with the process: poll it until the stop
			defer close(polled)
			for runCtx.Err() == nil {
				peak = max(peak, procstat.PeakRSSKiB(cmd.Process.Pid))
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	deadline := start.Add(10 * time.Minute)
	for srv.Calls("RunTask") < n {
		if time.Now().After(deadline) {
			cancel()
			<-done
			return 0, "", 0, fmt.Errorf("only %d of %d dispatched after 10 minutes", srv.Calls("RunTask"), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cancel()
	<-done
	<-polled
	// The dispatcher's last long poll may still be open on the server,
	// which would hand the next case's first messages to a connection
	// nobody reads (they come back only after the visibility timeout).
	time.Sleep(2 * d.Cfg.Wait)
	if got := len(srv.Tasks()); got != n {
		return 0, "", 0, fmt.Errorf("%d tasks for %d events", got, n)
	}
	calls := fmt.Sprintf("%d events in %s; ECS calls: %d RunTask, %d ListTasks, %d DescribeTasks",
		n, elapsed.Round(time.Millisecond), srv.Calls("RunTask"), srv.Calls("ListTasks"), srv.Calls("DescribeTasks"))
	fmt.Fprintln(os.Stderr, "dispatchbench:", calls)
	return float64(n) / elapsed.Seconds(), calls, peak, nil
}

func putAll(ctx context.Context, env *awstest.Env, bucket string, keys []string) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	work := make(chan string)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				_, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(k), Body: strings.NewReader("x")})
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("put %s: %w", k, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	return first
}

func round(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
