package ecstest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"

	"github.com/hevc-encoder/hevc-encoder/pkg/ecstest"
)

func client(srv *ecstest.Server) *ecs.Client {
	return ecs.New(ecs.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("k", "s", ""),
		BaseEndpoint:     aws.String(srv.URL),
		RetryMaxAttempts: 1,
	})
}

func network() *types.NetworkConfiguration {
	return &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{Subnets: []string{"subnet-1"}}}
}

// run starts one task with env overrides and optional command override.
func run(t *testing.T, c *ecs.Client, env map[string]string, command ...string) string {
	t.Helper()
	co := types.ContainerOverride{Name: aws.String("hevc-processor"), Command: command}
	for k, v := range env {
		co.Environment = append(co.Environment, types.KeyValuePair{Name: aws.String(k), Value: aws.String(v)})
	}
	out, err := c.RunTask(context.Background(), &ecs.RunTaskInput{
		Cluster: aws.String("c"), TaskDefinition: aws.String("proc:2"), NetworkConfiguration: network(),
		Overrides: &types.TaskOverride{ContainerOverrides: []types.ContainerOverride{co}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Tasks) != 1 || aws.ToString(out.Tasks[0].LastStatus) != ecstest.Provisioning {
		t.Fatalf("RunTask: %+v %+v", out.Tasks, out.Failures)
	}
	return aws.ToString(out.Tasks[0].TaskArn)
}

// trapped runs a task whose shell installs trap first, and returns once it
// has (the shell touches $READY): a signal that came before would meet
// sh's default action instead (exit 143).
func trapped(t *testing.T, c *ecs.Client, trap string) string {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	arn := run(t, c, map[string]string{"READY": ready}, trap+`; : > "$READY"; while :; do sleep 0.05; done`)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			return arn
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s never installed its trap", arn)
		}
	}
}

func shell(t *testing.T, opts ecstest.Options) (*ecstest.Server, *ecs.Client) {
	t.Helper()
	opts.Cluster = "c"
	if opts.Command == nil && opts.Entrypoint == nil && opts.Func == nil {
		opts.Command = []string{"/bin/sh", "-c", "exit 0"}
	}
	if opts.Env == nil {
		opts.Env = []string{"PATH=" + os.Getenv("PATH"), "BASE=from-task-definition"}
	}
	srv := ecstest.Start(t, opts)
	return srv, client(srv)
}

func TestLifecycleAndExitCodes(t *testing.T) {
	srv, c := shell(t, ecstest.Options{Entrypoint: []string{"/bin/sh", "-c"}, Command: []string{"exit 0"}, StopTimeout: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	running := func(t ecstest.Task) bool { return t.LastStatus == ecstest.Running || t.LastStatus == ecstest.Stopped }

	// The environment is the task definition's plus the overrides; the
	// command override replaces the arguments.
	arn := run(t, c, map[string]string{"KEY": "TODO/a b/é.mp4"}, `test "$KEY" = "TODO/a b/é.mp4" && test "$BASE" = from-task-definition && exit 7`)
	tk, err := srv.WaitStopped(ctx, arn)
	if err != nil {
		t.Fatal(err)
	}
	if *tk.ExitCode != 7 || tk.StopCode != "EssentialContainerExited" || tk.DesiredStatus != ecstest.Stopped {
		t.Errorf("exit %d, stop code %s, desired %s", *tk.ExitCode, tk.StopCode, tk.DesiredStatus)
	}
	d, err := c.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("c"), Tasks: []string{arn, "missing"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Tasks) != 1 || aws.ToInt32(d.Tasks[0].Containers[0].ExitCode) != 7 || aws.ToString(d.Tasks[0].LastStatus) != "STOPPED" ||
		d.Tasks[0].StopCode != types.TaskStopCodeEssentialContainerExited || d.Tasks[0].StoppedAt == nil || d.Tasks[0].CreatedAt == nil {
		t.Errorf("described %+v", d.Tasks)
	}
	if len(d.Failures) != 1 || aws.ToString(d.Failures[0].Reason) != "MISSING" {
		t.Errorf("failures %+v", d.Failures)
	}

	// StopTask: SIGTERM to the container, whose handler decides the exit.
	arn = trapped(t, c, `trap 'exit 3' TERM`)
	if _, err := c.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("c"), Task: aws.String(arn), Reason: aws.String("scale in")}); err != nil {
		t.Fatal(err)
	}
	tk, _ = srv.WaitStopped(ctx, arn)
	if *tk.ExitCode != 3 || tk.StopCode != "UserInitiated" || tk.StoppedReason != "scale in" || tk.Leaked {
		t.Errorf("stopped: exit %d, %s %q, leaked %v", *tk.ExitCode, tk.StopCode, tk.StoppedReason, tk.Leaked)
	}

	// A container that ignores SIGTERM is killed after StopTimeout (137).
	arn = trapped(t, c, `trap '' TERM`)
	if err := srv.Interrupt(arn); err != nil {
		t.Fatal(err)
	}
	tk, _ = srv.WaitStopped(ctx, arn)
	if *tk.ExitCode != 128+int(syscall.SIGKILL) || tk.StopCode != "SpotInterruption" {
		t.Errorf("ignored SIGTERM: exit %d, %s", *tk.ExitCode, tk.StopCode)
	}

	// Kill: SIGKILL at once.
	arn = run(t, c, nil, `trap 'exit 3' TERM; while :; do sleep 0.05; done`)
	srv.Wait(ctx, arn, running)
	srv.Kill(arn)
	if tk, _ = srv.WaitStopped(ctx, arn); *tk.ExitCode != 137 {
		t.Errorf("killed: exit %d", *tk.ExitCode)
	}

	// Processes that outlive the main one are reported and killed.
	arn = run(t, c, nil, `sleep 60 & exit 0`)
	if tk, _ = srv.WaitStopped(ctx, arn); !tk.Leaked || *tk.ExitCode != 0 {
		t.Errorf("leak not detected: %+v", tk)
	}
	if srv.Active() != 0 || srv.MaxActive() < 1 {
		t.Errorf("active %d, max %d", srv.Active(), srv.MaxActive())
	}
}

func TestStopBeforeStart(t *testing.T) {
	srv, c := shell(t, ecstest.Options{ProvisioningDelay: time.Hour})
	arn := run(t, c, nil)
	if _, err := c.StopTask(context.Background(), &ecs.StopTaskInput{Cluster: aws.String("c"), Task: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	tk, _ := srv.WaitStopped(context.Background(), arn)
	if tk.ExitCode != nil || !tk.Started.IsZero() {
		t.Errorf("a task stopped while provisioning ran: %+v", tk)
	}
}

func TestListTasksFiltersAndPaginates(t *testing.T) {
	block := func(ctx context.Context, _ ecstest.Task) int { <-ctx.Done(); return 143 }
	srv, c := shell(t, ecstest.Options{Func: block})
	ctx := context.Background()
	var arns []string
	for i := 0; i < 5; i++ {
		arns = append(arns, run(t, c, nil))
	}
	if _, err := c.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("other"), NetworkConfiguration: network(), StartedBy: aws.String("me")}); err != nil {
		t.Fatal(err)
	}
	c.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("c"), Task: aws.String(arns[0])})
	srv.WaitStopped(ctx, arns[0])

	var got []string
	p := ecs.NewListTasksPaginator(c, &ecs.ListTasksInput{Cluster: aws.String("c"), Family: aws.String("proc"), MaxResults: aws.Int32(2)})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, page.TaskArns...)
	}
	if strings.Join(got, ",") != strings.Join(arns[1:], ",") || pages != 2 {
		t.Errorf("listed %d in %d pages, want the 4 running of family proc in 2", len(got), pages)
	}
	out, err := c.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("c"), DesiredStatus: types.DesiredStatusStopped})
	if err != nil || len(out.TaskArns) != 1 || out.TaskArns[0] != arns[0] {
		t.Errorf("stopped: %v, %v", out.TaskArns, err)
	}
	out, err = c.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("c"), StartedBy: aws.String("me")})
	if err != nil || len(out.TaskArns) != 1 {
		t.Errorf("startedBy: %v, %v", out.TaskArns, err)
	}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestRunTaskChecksAndFaults(t *testing.T) {
	srv, c := shell(t, ecstest.Options{})
	ctx := context.Background()
	base := func() *ecs.RunTaskInput {
		return &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("proc"), NetworkConfiguration: network()}
	}
	for name, tc := range map[string]struct {
		mod  func(*ecs.RunTaskInput)
		code string
	}{
		"no network": {func(in *ecs.RunTaskInput) { in.NetworkConfiguration = nil }, "InvalidParameterException"},
		"both": {func(in *ecs.RunTaskInput) {
			in.LaunchType = types.LaunchTypeFargate
			in.CapacityProviderStrategy = []types.CapacityProviderStrategyItem{{CapacityProvider: aws.String("FARGATE")}}
		}, "InvalidParameterException"},
		"provider": {func(in *ecs.RunTaskInput) {
			in.CapacityProviderStrategy = []types.CapacityProviderStrategyItem{{CapacityProvider: aws.String("EC2")}}
		}, "InvalidParameterException"},
		"startedBy":     {func(in *ecs.RunTaskInput) { in.StartedBy = aws.String("TODO/a b.mp4") }, "InvalidParameterException"},
		"startedBy len": {func(in *ecs.RunTaskInput) { in.StartedBy = aws.String(strings.Repeat("a", 37)) }, "InvalidParameterException"},
		"tag value": {func(in *ecs.RunTaskInput) {
			in.Tags = []types.Tag{{Key: aws.String("k"), Value: aws.String("clip (1).mp4")}}
		}, "InvalidParameterException"},
		"container": {func(in *ecs.RunTaskInput) {
			in.Overrides = &types.TaskOverride{ContainerOverrides: []types.ContainerOverride{{Name: aws.String("other")}}}
		}, "InvalidParameterException"},
		"overrides": {func(in *ecs.RunTaskInput) {
			in.Overrides = &types.TaskOverride{ContainerOverrides: []types.ContainerOverride{{Name: aws.String("hevc-processor"),
				Environment: []types.KeyValuePair{{Name: aws.String("K"), Value: aws.String(strings.Repeat("x", 8200))}}}}}
		}, "InvalidParameterException"},
		"cluster": {func(in *ecs.RunTaskInput) { in.Cluster = aws.String("nope") }, "ClusterNotFoundException"},
	} {
		in := base()
		tc.mod(in)
		if _, err := c.RunTask(ctx, in); apiCode(err) != tc.code {
			t.Errorf("%s: error %v, want %s", name, err, tc.code)
		}
	}
	if len(srv.Tasks()) != 0 {
		t.Fatalf("invalid requests started tasks")
	}

	// Idempotency: a retried request (same client token) starts nothing new.
	in := base()
	in.ClientToken = aws.String("token-1")
	a, err := c.RunTask(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.RunTask(ctx, in)
	if err != nil || aws.ToString(a.Tasks[0].TaskArn) != aws.ToString(b.Tasks[0].TaskArn) || len(srv.Tasks()) != 1 {
		t.Errorf("same client token: %v, %d tasks", err, len(srv.Tasks()))
	}

	// Spot capacity failures, then throttling.
	srv.FailSpotCapacity(1)
	in = base()
	in.CapacityProviderStrategy = []types.CapacityProviderStrategyItem{{CapacityProvider: aws.String("FARGATE_SPOT"), Weight: 1}}
	out, err := c.RunTask(ctx, in)
	if err != nil || len(out.Tasks) != 0 || len(out.Failures) != 1 || aws.ToString(out.Failures[0].Reason) != ecstest.SpotCapacityReason {
		t.Errorf("spot failure: %+v, %v", out, err)
	}
	if out, err = c.RunTask(ctx, in); err != nil || len(out.Tasks) != 1 || aws.ToString(out.Tasks[0].CapacityProviderName) != "FARGATE_SPOT" {
		t.Errorf("after the failure: %+v, %v", out, err)
	}
	srv.Throttle("", 1)
	if _, err := c.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("c")}); apiCode(err) != "ThrottlingException" {
		t.Errorf("throttled: %v", err)
	}
	if _, err := c.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("c")}); err != nil {
		t.Errorf("after throttling: %v", err)
	}
}
