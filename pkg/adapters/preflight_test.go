package adapters

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/adapters/preflighttest"
	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/ecstest"
	ecslaunch "github.com/hevc-encoder/hevc-encoder/pkg/launch/ecs"
)

func TestMain(m *testing.M) { awstest.Main(m) }

func goodChecks(e *awstest.Env) (Store, Queues) {
	return Store{Kind: "s3", Bucket: e.Bucket, Endpoint: e.S3Endpoint, Region: e.Region, PathStyle: true},
		Queues{Kind: "sqs", Endpoint: e.SQSEndpoint, Work: e.WorkQueueURL, Results: e.ResultsQueueURL}
}

// TestPreflight runs the checks against MinIO and the SQS server: a good
// configuration passes; each of our own mistakes fails at once with one
// line naming the variable, and never prints the secret.
func TestPreflight(t *testing.T) {
	e := awstest.Shared(t)
	ctx := context.Background()
	st, qs := goodChecks(e)
	if err := Preflight(ctx, Checks{Store: &st, Queues: &qs}); err != nil {
		t.Fatalf("good configuration refused: %v", err)
	}
	byName := qs // a queue name, resolved with GetQueueUrl
	byName.Work = e.WorkQueueURL[strings.LastIndex(e.WorkQueueURL, "/")+1:]
	if err := Preflight(ctx, Checks{Queues: &byName}); err != nil {
		t.Errorf("queue by name %q refused: %v", byName.Work, err)
	}

	closed := preflighttest.ClosedPort(t)
	cases := []struct {
		name  string
		env   map[string]string
		store func(*Store)
		queue func(*Queues)
		want  []string
	}{
		{name: "wrong bucket", store: func(s *Store) { s.Bucket = "no-such-bucket" },
			want: []string{`S3_BUCKET: bucket "no-such-bucket" does not exist at ` + e.S3Endpoint}},
		{name: "wrong queue", queue: func(q *Queues) { q.Work = strings.TrimSuffix(e.SQSEndpoint, "/") + "/000000000000/no-such-queue" },
			want: []string{"WORK_QUEUE_URL: queue", "no-such-queue", "does not exist"}},
		{name: "wrong queue name", queue: func(q *Queues) { q.Results = "no-such-queue" },
			want: []string{`RESULTS_QUEUE_URL: queue "no-such-queue" does not exist`}},
		{name: "wrong secret", env: map[string]string{"AWS_SECRET_ACCESS_KEY": preflighttest.WrongSecret},
			want: []string{"AWS_SECRET_ACCESS_KEY: signature rejected by S3 (SignatureDoesNotMatch)"}},
		{name: "unknown access key", env: map[string]string{"AWS_ACCESS_KEY_ID": "AKIDUNKNOWN"},
			want: []string{"AWS_ACCESS_KEY_ID: access key not known to S3", "InvalidAccessKeyId"}},
		{name: "secret without key", env: map[string]string{"AWS_ACCESS_KEY_ID": ""},
			want: []string{"AWS_ACCESS_KEY_ID: empty while AWS_SECRET_ACCESS_KEY is set"}},
		{name: "missing credentials", env: map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
			want: []string{"AWS_ACCESS_KEY_ID: no AWS credentials found"}},
		{name: "unreachable S3", store: func(s *Store) { s.Endpoint = closed },
			want: []string{"S3_ENDPOINT: cannot reach S3 at " + closed + ": connection refused"}},
		{name: "unreachable SQS", queue: func(q *Queues) { q.Endpoint = closed },
			want: []string{"SQS_ENDPOINT: cannot reach SQS at " + closed + ": connection refused"}},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
				if v == "" {
					os.Unsetenv(k)
				}
			}
			st, qs := goodChecks(e)
			if c.store != nil {
				c.store(&st)
			}
			if c.queue != nil {
				c.queue(&qs)
			}
			start := time.Now()
			err := Preflight(ctx, Checks{Store: &st, Queues: &qs})
			took := time.Since(start)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") || strings.Contains(msg, preflighttest.WrongSecret) || strings.Contains(msg, e.SecretKey) {
				t.Errorf("not one line, or a secret in it: %q", msg)
			}
			if took >= preflighttest.Deadline {
				t.Errorf("took %s, want < %s", took, preflighttest.Deadline)
			}
		})
	}
}

// TestPreflightECS checks the cluster, task definition and container
// against the ECS endpoint (DescribeClusters, DescribeTaskDefinition).
func TestPreflightECS(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	srv := ecstest.Start(t, ecstest.Options{Cluster: "hevc", Families: []string{"hevc-processor"}, Command: []string{"true"}})
	good := ecslaunch.Config{Cluster: "hevc", TaskDefinition: "hevc-processor:3", Container: "hevc-processor", Endpoint: srv.URL, Region: "us-east-1"}
	ctx := context.Background()
	if err := Preflight(ctx, Checks{ECS: &good, Log: zerolog.Nop()}); err != nil {
		t.Fatalf("good ECS configuration refused: %v", err)
	}
	arn := good
	arn.Cluster = srv.ClusterARN()
	if err := Preflight(ctx, Checks{ECS: &arn}); err != nil {
		t.Errorf("cluster by ARN refused: %v", err)
	}
	closed := preflighttest.ClosedPort(t)
	for _, c := range []struct {
		edit func(*ecslaunch.Config)
		want string
	}{
		{func(c *ecslaunch.Config) { c.Cluster = "nope" }, `ECS_CLUSTER: cluster "nope" does not exist`},
		{func(c *ecslaunch.Config) { c.TaskDefinition = "other:1" }, `ECS_TASK_DEFINITION: task definition "other:1" does not exist`},
		{func(c *ecslaunch.Config) { c.Container = "app" }, `ECS_CONTAINER_NAME: task definition "hevc-processor:3" has no container "app" (it has hevc-processor)`},
		{func(c *ecslaunch.Config) { c.Endpoint = closed }, "ECS_ENDPOINT: cannot reach ECS at " + closed + ": connection refused"},
	} {
		cfg := good
		c.edit(&cfg)
		err := Preflight(ctx, Checks{ECS: &cfg})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", cfg, err, c.want)
		}
	}
}
