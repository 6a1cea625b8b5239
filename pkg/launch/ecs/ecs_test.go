package ecs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/ecstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch/ecs"
)

func credentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test-key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
}

// blockUntilStopped is a task that runs until it is stopped, then exits 143
// as a processor does on SIGTERM.
func blockUntilStopped(ctx context.Context, _ ecstest.Task) int {
	<-ctx.Done()
	return 143
}

func setup(t *testing.T, opts ecstest.Options, mod func(*ecs.Config)) (*ecstest.Server, *ecs.Launcher) {
	t.Helper()
	credentials(t)
	if opts.Func == nil && opts.Command == nil {
		opts.Func = blockUntilStopped
	}
	opts.Cluster = "hevc"
	srv := ecstest.Start(t, opts)
	cfg := ecs.Config{
		Cluster: "hevc", TaskDefinition: "hevc-processor:7", Container: "hevc-processor",
		Subnets: []string{"subnet-a", "subnet-b"}, SecurityGroups: []string{"sg-1"}, AssignPublicIP: true,
		MaxTasks: 4, Endpoint: srv.URL, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		LaunchAttempts: 4, MaxAttempts: 2, Log: zerolog.New(zerolog.NewTestWriter(t)),
	}
	if mod != nil {
		mod(&cfg)
	}
	l, err := ecs.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv, l
}

func job(key string) launch.Job {
	return launch.Job{Bucket: "media", Key: key, QueueURL: "http://127.0.0.1:1/000000000000/work", Receipt: "receipt+/=" + key, ReceiveCount: 2}
}

func onlyTask(t *testing.T, srv *ecstest.Server, key string) ecstest.Task {
	t.Helper()
	ts := srv.TasksFor(key)
	if len(ts) != 1 {
		t.Fatalf("tasks for %q: %d, want 1 (all: %+v)", key, len(ts), srv.Tasks())
	}
	return ts[0]
}

func TestLaunchCarriesJobAndIdentity(t *testing.T) {
	srv, l := setup(t, ecstest.Options{}, func(c *ecs.Config) { c.Env = map[string]string{"X265_PRESET": "fast", "S3_BUCKET": "overridden"} })
	ctx := context.Background()
	keys := []string{
		"TODO/2024/a b/clip é, #1 (copy) & more+plus%20.mp4",
		"TODO/日本/ビデオ 01.MP4",
		"TODO/" + strings.Repeat("long-directory-name/", 40) + "x.mp4",
	}
	for _, k := range keys {
		if err := l.Launch(ctx, job(k)); err != nil {
			t.Fatalf("launch %q: %v", k, err)
		}
	}
	for _, k := range keys {
		tk := onlyTask(t, srv, k)
		want := job(k).Env()
		want["X265_PRESET"] = "fast"
		for name, v := range want {
			if tk.Env[name] != v {
				t.Errorf("%q: env %s = %q, want %q", k, name, tk.Env[name], v)
			}
		}
		if tk.StartedBy != ecs.StartedBy(k) || len(tk.StartedBy) > 36 {
			t.Errorf("%q: startedBy %q, want %q", k, tk.StartedBy, ecs.StartedBy(k))
		}
		if tk.Tags[ecs.TagJob] != ecs.JobID(k) || tk.Tags[ecs.TagBucket] != "media" || tk.Tags[ecs.TagFile] == "" {
			t.Errorf("%q: tags %v", k, tk.Tags)
		}
		if tk.CapacityProvider != ecs.FargateSpot {
			t.Errorf("%q: capacity provider %s, want FARGATE_SPOT", k, tk.CapacityProvider)
		}
		if strings.Join(tk.Subnets, ",") != "subnet-a,subnet-b" || strings.Join(tk.SecurityGroups, ",") != "sg-1" || tk.AssignPublicIP != "ENABLED" {
			t.Errorf("%q: network %v %v %s", k, tk.Subnets, tk.SecurityGroups, tk.AssignPublicIP)
		}
		if tk.Family != "hevc-processor" {
			t.Errorf("%q: family %s", k, tk.Family)
		}
	}
	in, err := l.InFlight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != len(keys) {
		t.Errorf("in flight %v, want the %d keys", in, len(keys))
	}
	for _, k := range keys {
		if !in[k] {
			t.Errorf("%q not in flight: %v", k, in)
		}
	}

	// A stopped task's key is no longer in flight; a second launch for the
	// same key is a new task.
	tk := onlyTask(t, srv, keys[0])
	if _, err := l.Client().StopTask(ctx, &awsecs.StopTaskInput{Cluster: aws.String("hevc"), Task: aws.String(tk.ARN), Reason: aws.String("test")}); err != nil {
		t.Fatal(err)
	}
	stopped, err := srv.WaitStopped(ctx, tk.ARN)
	if err != nil {
		t.Fatal(err)
	}
	if stopped.ExitCode == nil || *stopped.ExitCode != 143 || stopped.StopCode != "UserInitiated" {
		t.Errorf("stopped task: exit %v, stop code %s", stopped.ExitCode, stopped.StopCode)
	}
	in, err = l.InFlight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in[keys[0]] || len(in) != len(keys)-1 {
		t.Errorf("after stop, in flight %v", in)
	}
}

func TestSpotCapacityFallsBackToFargate(t *testing.T) {
	srv, l := setup(t, ecstest.Options{}, func(c *ecs.Config) { c.SpotFallbackAfter = 2; c.SpotRetryAfter = time.Hour })
	ctx := context.Background()
	srv.FailSpotCapacity(1000) // no Spot capacity at all
	if err := l.Launch(ctx, job("TODO/a.mp4")); err != nil {
		t.Fatal(err)
	}
	if tk := onlyTask(t, srv, "TODO/a.mp4"); tk.CapacityProvider != ecs.Fargate {
		t.Errorf("capacity provider %s, want FARGATE after the fallback", tk.CapacityProvider)
	}
	if n := srv.Calls("RunTask"); n != 3 {
		t.Errorf("RunTask calls %d, want 2 on Spot + 1 on FARGATE", n)
	}
	// Further launches stay on FARGATE for SpotRetryAfter, without trying Spot.
	if err := l.Launch(ctx, job("TODO/b.mp4")); err != nil {
		t.Fatal(err)
	}
	if tk := onlyTask(t, srv, "TODO/b.mp4"); tk.CapacityProvider != ecs.Fargate {
		t.Errorf("second launch on %s, want FARGATE", tk.CapacityProvider)
	}
	if n := srv.Calls("RunTask"); n != 4 {
		t.Errorf("RunTask calls %d, want 4", n)
	}
}

func TestSpotRetriedAfterFallbackPeriod(t *testing.T) {
	srv, l := setup(t, ecstest.Options{}, func(c *ecs.Config) { c.SpotFallbackAfter = 1; c.SpotRetryAfter = time.Millisecond })
	ctx := context.Background()
	srv.FailSpotCapacity(1) // one failure: fall back for 1 ms
	if err := l.Launch(ctx, job("TODO/a.mp4")); err != nil {
		t.Fatal(err)
	}
	if tk := onlyTask(t, srv, "TODO/a.mp4"); tk.CapacityProvider != ecs.Fargate {
		t.Errorf("first task on %s, want FARGATE", tk.CapacityProvider)
	}
	time.Sleep(10 * time.Millisecond) // past SpotRetryAfter
	if err := l.Launch(ctx, job("TODO/b.mp4")); err != nil {
		t.Fatal(err)
	}
	if tk := onlyTask(t, srv, "TODO/b.mp4"); tk.CapacityProvider != ecs.FargateSpot {
		t.Errorf("after the fallback period the task runs on %s, want FARGATE_SPOT", tk.CapacityProvider)
	}
}

func TestFargateOnlyDoesNotUseSpot(t *testing.T) {
	srv, l := setup(t, ecstest.Options{}, func(c *ecs.Config) { c.CapacityProvider = ecs.Fargate })
	srv.FailSpotCapacity(10)
	if err := l.Launch(context.Background(), job("TODO/a.mp4")); err != nil {
		t.Fatal(err)
	}
	if tk := onlyTask(t, srv, "TODO/a.mp4"); tk.CapacityProvider != ecs.Fargate {
		t.Errorf("capacity provider %s", tk.CapacityProvider)
	}
	if n := srv.Calls("RunTask"); n != 1 {
		t.Errorf("RunTask calls %d, want 1", n)
	}
}

func TestFailuresBackOffThenGiveUp(t *testing.T) {
	srv, l := setup(t, ecstest.Options{}, nil)
	srv.FailRunTask(100, "RESOURCE:ENI", nil)
	err := l.Launch(context.Background(), job("TODO/a.mp4"))
	var le *ecs.LaunchError
	if !errors.As(err, &le) {
		t.Fatalf("error %v (%T), want a *LaunchError", err, err)
	}
	if le.Attempts != 4 || len(le.Reasons) == 0 || !strings.Contains(err.Error(), "RESOURCE:ENI") || !strings.Contains(err.Error(), "TODO/a.mp4") {
		t.Errorf("error %v (attempts %d)", err, le.Attempts)
	}
	if n := srv.Calls("RunTask"); n != 4 {
		t.Errorf("RunTask calls %d, want LaunchAttempts (4)", n)
	}
	if len(srv.Tasks()) != 0 {
		t.Errorf("tasks started: %v", srv.Tasks())
	}
	// Failures that pass: the launch succeeds after backing off.
	srv2, l2 := setup(t, ecstest.Options{}, nil)
	srv2.FailRunTask(2, "RESOURCE:ENI", nil)
	if err := l2.Launch(context.Background(), job("TODO/b.mp4")); err != nil {
		t.Fatal(err)
	}
	onlyTask(t, srv2, "TODO/b.mp4")
}

func TestThrottlingIsRetried(t *testing.T) {
	srv, l := setup(t, ecstest.Options{}, nil)
	ctx := context.Background()
	// MaxAttempts 2 per SDK call: 3 throttles exhaust one call's retries,
	// and the launcher's own backoff carries on.
	srv.Throttle("RunTask", 3)
	if err := l.Launch(ctx, job("TODO/a.mp4")); err != nil {
		t.Fatalf("launch through throttling: %v", err)
	}
	onlyTask(t, srv, "TODO/a.mp4")
	if n := srv.Calls("RunTask"); n != 4 {
		t.Errorf("RunTask calls %d, want 3 throttled + 1", n)
	}
	srv.Throttle("ListTasks", 1)
	srv.Throttle("DescribeTasks", 1)
	in, err := l.InFlight(ctx)
	if err != nil || !in["TODO/a.mp4"] {
		t.Errorf("in flight through throttling: %v, %v", in, err)
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	srv, l := setup(t, ecstest.Options{}, func(c *ecs.Config) { c.Cluster = "no-such-cluster" })
	err := l.Launch(context.Background(), job("TODO/a.mp4"))
	if err == nil || !strings.Contains(err.Error(), "ClusterNotFoundException") {
		t.Fatalf("error %v, want ClusterNotFoundException", err)
	}
	if n := srv.Calls("RunTask"); n != 1 {
		t.Errorf("RunTask calls %d, want 1", n)
	}
	if _, err := l.InFlight(context.Background()); err == nil {
		t.Error("InFlight on a missing cluster: no error")
	}
}

func TestOverridesTooLong(t *testing.T) {
	srv, l := setup(t, ecstest.Options{}, nil)
	key := "TODO/" + strings.Repeat("x", 8200) + ".mp4"
	err := l.Launch(context.Background(), job(key))
	if err == nil || !strings.Contains(err.Error(), "8192") {
		t.Fatalf("error %v, want an overrides-length error", err)
	}
	if n := srv.Calls("RunTask"); n != 0 {
		t.Errorf("RunTask calls %d, want 0", n)
	}
}

func TestInFlightPaginatesAndCountsForeignTasks(t *testing.T) {
	srv, l := setup(t, ecstest.Options{}, nil)
	// Counted as API calls: an SDK retry of a dropped connection is not a
	// second page.
	ctx := context.Background()
	const n = 230
	for i := 0; i < n; i++ {
		if err := l.Launch(ctx, job(fmt.Sprintf("TODO/clip %03d.mp4", i))); err != nil {
			t.Fatal(err)
		}
	}
	// A task of the family started by hand, without a key.
	_, err := l.Client().RunTask(ctx, &awsecs.RunTaskInput{
		Cluster: aws.String("hevc"), TaskDefinition: aws.String("hevc-processor"),
		NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{Subnets: []string{"subnet-a"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A task of another family does not count.
	_, err = l.Client().RunTask(ctx, &awsecs.RunTaskInput{
		Cluster: aws.String("hevc"), TaskDefinition: aws.String("other"),
		NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{Subnets: []string{"subnet-a"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	lists, describes := srv.Invocations("ListTasks"), srv.Invocations("DescribeTasks")
	in, err := l.InFlight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != n+1 {
		t.Fatalf("in flight: %d entries, want %d", len(in), n+1)
	}
	for i := 0; i < n; i++ {
		if k := fmt.Sprintf("TODO/clip %03d.mp4", i); !in[k] {
			t.Fatalf("%q missing from in flight", k)
		}
	}
	foreign := 0
	for k := range in {
		if strings.HasPrefix(k, ecs.NoKeyPrefix) {
			foreign++
		}
	}
	if foreign != 1 {
		t.Errorf("tasks without a key: %d, want 1", foreign)
	}
	if got := srv.Invocations("ListTasks") - lists; got != 3 {
		t.Errorf("ListTasks pages: %d, want 3 for %d tasks", got, n+1)
	}
	if got := srv.Invocations("DescribeTasks") - describes; got != 1 {
		t.Errorf("DescribeTasks calls: %d, want 1 (only the task whose key this launcher does not know)", got)
	}
	describes = srv.Invocations("DescribeTasks")
	if in, err := l.InFlight(ctx); err != nil || len(in) != n+1 || srv.Invocations("DescribeTasks") != describes {
		t.Errorf("steady state: %d in flight, %v, %d DescribeTasks calls (want none)", len(in), err, srv.Invocations("DescribeTasks")-describes)
	}

	// A launcher that knows no task (a restarted dispatcher) reads every
	// key back from the overrides, 100 tasks per DescribeTasks.
	fresh, err := ecs.New(ctx, ecs.Config{Cluster: "hevc", TaskDefinition: "hevc-processor:7", Container: "hevc-processor",
		Subnets: []string{"subnet-a"}, Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	describes = srv.Invocations("DescribeTasks")
	in2, err := fresh.InFlight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(in2) != n+1 || !in2["TODO/clip 123.mp4"] {
		t.Errorf("fresh launcher: %d in flight", len(in2))
	}
	if got := srv.Invocations("DescribeTasks") - describes; got != 3 {
		t.Errorf("fresh launcher: DescribeTasks calls %d, want 3 (100 per call)", got)
	}
	// Tasks (status) describes everything, with details.
	ts, err := fresh.Tasks(ctx)
	if err != nil || len(ts) != n+1 || ts[0].LastStatus != "RUNNING" || ts[0].CapacityProvider == "" || ts[0].Started.IsZero() {
		t.Errorf("Tasks: %d, %v, first %+v", len(ts), err, ts[0])
	}
}

func TestStartedByAndTagValue(t *testing.T) {
	for _, k := range []string{"TODO/a.mp4", "TODO/é è/#?.mp4", ""} {
		sb := ecs.StartedBy(k)
		if len(sb) != 36 || !strings.HasPrefix(sb, ecs.StartedByPrefix) || strings.Trim(sb[5:], "0123456789abcdef") != "" {
			t.Errorf("StartedBy(%q) = %q", k, sb)
		}
	}
	if ecs.StartedBy("TODO/a.mp4") == ecs.StartedBy("TODO/b.mp4") {
		t.Error("StartedBy does not tell keys apart")
	}
	for in, want := range map[string]string{
		"hevc-processor":    "hevc-processor",
		"hevc-processor:12": "hevc-processor",
		"arn:aws:ecs:eu-west-1:123456789012:task-definition/hevc-processor:3": "hevc-processor",
	} {
		if got := ecs.Family(in); got != want {
			t.Errorf("Family(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	credentials(t)
	_, err := ecs.New(context.Background(), ecs.Config{CapacityProvider: "EC2"})
	for _, want := range []string{"ECS_CLUSTER", "ECS_TASK_DEFINITION", "ECS_CONTAINER_NAME", "ECS_SUBNETS", "ECS_CAPACITY_PROVIDER"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}
