package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/adapters/preflighttest"
	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/ecstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/events"
)

// TestPreflightRefusesMisconfiguration runs the sqs-dispatcher binary with
// each of our own mistakes against MinIO, the SQS server and the ECS
// endpoint: it exits 2 within 10 s with one line naming the variable, and
// the work message waiting in the queue is neither received nor deleted.
func TestPreflightRefusesMisconfiguration(t *testing.T) {
	e := awstest.Shared(t)
	bin := filepath.Join(t.TempDir(), "sqs-dispatcher")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	q := e.NewScratchQueue(t, 30*time.Second, 3)
	if err := q.Send(context.Background(), events.Created(e.Bucket, "TODO/preflight/one.mp4", 1, "ObjectCreated:Put")); err != nil {
		t.Fatal(err)
	}
	srv := startECS(t, e, ecstest.Options{Func: func(ctx context.Context, _ ecstest.Task) int { <-ctx.Done(); return 143 }})
	base := append(os.Environ(), e.Environ()...)
	base = append(base, "WORK_QUEUE_URL="+q.Name(), "LOG_FORMAT=json", "LAUNCHER=exec", "PROCESSOR_BIN=/bin/false")
	cases := preflighttest.Cases(t, e, "WORK_QUEUE_URL")
	ecs := map[string]string{
		"LAUNCHER": "ecs", "ECS_ENDPOINT": srv.URL, "ECS_CLUSTER": cluster, "ECS_TASK_DEFINITION": taskDef,
		"ECS_CONTAINER_NAME": container, "ECS_SUBNETS": "subnet-0a",
	}
	with := func(m map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for kk, vv := range m {
			if kk != k {
				out[kk] = vv
			}
		}
		return out
	}
	cases = append(cases,
		preflighttest.Case{Name: "wrong cluster", Env: with(ecs, "ECS_CLUSTER", "no-such-cluster"), Var: "ECS_CLUSTER", Want: []string{`"no-such-cluster" does not exist`}},
		preflighttest.Case{Name: "wrong container", Env: with(ecs, "ECS_CONTAINER_NAME", "app"), Var: "ECS_CONTAINER_NAME", Want: []string{`no container "app"`}},
	)
	for _, cmd := range []string{"run", "trigger", "status"} {
		t.Run(cmd, func(t *testing.T) {
			cs := cases
			if cmd != "run" {
				cs = cases[:2]
			}
			preflighttest.Run(t, e, bin, []string{cmd}, base, cs)
		})
	}
	// The message was not touched: still visible, never received.
	d, err := q.Depth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.Visible != 1 || d.InFlight != 0 {
		t.Errorf("work queue after the refusals: %+v, want the one message visible", d)
	}
	// And with the right settings the binary starts (the preflight passes).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, bin, "status")
	c.Env = preflighttest.Env(base, ecs)
	if out, err := c.CombinedOutput(); err != nil {
		t.Errorf("status with good settings: %v\n%s", err, out)
	}
}
