package adapters

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/awsconf"
	"github.com/hevc-encoder/hevc-encoder/pkg/awserr"
	ecslaunch "github.com/hevc-encoder/hevc-encoder/pkg/launch/ecs"
	"github.com/hevc-encoder/hevc-encoder/pkg/neterr"
	sqsqueue "github.com/hevc-encoder/hevc-encoder/pkg/queue/sqs"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
)

// PreflightTimeout bounds the whole preflight: a service with a wrong
// setting exits within it (and well within the 10 s an operator waits).
const PreflightTimeout = 7 * time.Second

// noAnswer is Preflight's error when an endpoint could not be reached or
// did not answer in time: a wrong S3_ENDPOINT, or a peer that is down or
// slow for now (IsNoAnswer).
type noAnswer struct{ error }

// IsNoAnswer reports whether Preflight failed because an endpoint could not
// be reached or did not answer in time. A job (the processor) retries that
// later rather than taking it for bad configuration.
func IsNoAnswer(err error) bool {
	var e noAnswer
	return errors.As(err, &e)
}

// Checks name what a service is about to use.
type Checks struct {
	// Store: its bucket, when STORAGE=s3.
	Store *Store
	// Queues: WORK_QUEUE_URL and RESULTS_QUEUE_URL, those that are set.
	Queues *Queues
	// ECS: the cluster, task definition and container (LAUNCHER=ecs).
	ECS *ecslaunch.Config
	// Timeout bounds the preflight (default PreflightTimeout).
	Timeout time.Duration
	// Log receives warnings about checks the credentials may not run.
	Log zerolog.Logger
}

// Preflight checks, before a service does anything, that what it will use
// is there and answers to these credentials: credentials are found, the
// bucket exists and may be listed, each queue exists and may be read, and
// (LAUNCHER=ecs) the cluster and task definition exist. Every request is
// made once, without the retryer's backoff, under one short deadline, so
// that a wrong bucket, queue, secret, missing credentials or an unreachable
// endpoint end the service at once with one line that names the variable
// and what was wrong (never a secret's value).
func Preflight(ctx context.Context, c Checks) error {
	usesAWS := c.Store != nil && c.Store.Kind == "s3"
	if c.Queues != nil && (c.Queues.Work != "" || c.Queues.Results != "") {
		usesAWS = true
	}
	if c.ECS != nil {
		usesAWS = true
	}
	if !usesAWS {
		return nil
	}
	if c.Timeout <= 0 {
		c.Timeout = PreflightTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	region := ""
	if c.Store != nil {
		region = c.Store.Region
	}
	if err := checkCredentials(ctx, region, c.Timeout); err != nil {
		return err
	}
	if c.Store != nil && c.Store.Kind == "s3" {
		s := c.Store
		t := target{service: "S3", varName: "S3_BUCKET", what: fmt.Sprintf("bucket %q", s.Bucket), endpointVar: "S3_ENDPOINT", endpoint: s.Endpoint, region: s.Region}
		err := s3store.Check(ctx, s3store.Config{Bucket: s.Bucket, Endpoint: s.Endpoint, Region: s.Region, PathStyle: s.PathStyle, DualStack: s.DualStack})
		if err != nil {
			return t.describe(ctx, err, c.Timeout)
		}
	}
	if q := c.Queues; q != nil {
		for _, v := range []struct{ name, url string }{{"WORK_QUEUE_URL", q.Work}, {"RESULTS_QUEUE_URL", q.Results}} {
			if v.url == "" {
				continue
			}
			t := target{service: "SQS", varName: v.name, what: fmt.Sprintf("queue %q", v.url), endpointVar: "SQS_ENDPOINT", endpoint: q.Endpoint, region: region}
			if t.endpoint == "" {
				t.endpoint = os.Getenv("AWS_ENDPOINT_URL_SQS")
				if t.endpoint == "" && strings.HasPrefix(v.url, "http://") {
					t.endpoint, t.endpointVar = v.url, v.name
				}
			}
			if err := sqsqueue.Check(ctx, sqsqueue.Config{QueueURLOrName: v.url, Region: region, Endpoint: q.Endpoint}); err != nil {
				return t.describe(ctx, err, c.Timeout)
			}
		}
	}
	if c.ECS != nil {
		return checkECS(ctx, *c.ECS, c.Timeout, c.Log)
	}
	return nil
}

// checkCredentials finds the credentials (environment, profile, task or
// instance role) before any request is signed with them.
func checkCredentials(ctx context.Context, region string, timeout time.Duration) error {
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	switch {
	case id != "" && secret == "":
		return errors.New("AWS_SECRET_ACCESS_KEY: empty while AWS_ACCESS_KEY_ID is set")
	case id == "" && secret != "":
		return errors.New("AWS_ACCESS_KEY_ID: empty while AWS_SECRET_ACCESS_KEY is set")
	}
	cfg, err := awsconf.Load(ctx, awsconf.Options{Region: region, MaxAttempts: 1})
	if err != nil {
		return fmt.Errorf("AWS_PROFILE: load the AWS configuration: %s", oneLine(err.Error()))
	}
	if cfg.Credentials == nil {
		return errors.New("AWS_ACCESS_KEY_ID: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a task role)")
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		why := oneLine(err.Error())
		if ctx.Err() != nil {
			why = fmt.Sprintf("none in the environment or profile, and no task or instance role answered within %s", timeout)
		}
		return fmt.Errorf("AWS_ACCESS_KEY_ID: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a task role): %s", why)
	}
	return nil
}

// target is what one check asked about, for its error line.
type target struct {
	service     string // S3, SQS, ECS
	varName     string // the variable that names the resource
	what        string // `bucket "x"`
	endpointVar string
	endpoint    string // "" for AWS
	region      string
}

func (t target) at() string {
	if t.endpoint != "" {
		return t.endpoint
	}
	if t.region != "" {
		return "AWS " + t.service + " (" + t.region + ")"
	}
	return "AWS " + t.service
}

// describe turns a check's error into the one line an operator reads.
func (t target) describe(ctx context.Context, err error, timeout time.Duration) error {
	code := awserr.Code(err)
	paren := ""
	if code != "" {
		paren = " (" + code + ")"
	}
	endpointVar := t.endpointVar
	if t.endpoint == "" {
		endpointVar = "AWS_REGION"
	}
	switch awserr.Classify(err) {
	case awserr.NoBucket, awserr.NoQueue, awserr.NoCluster:
		return fmt.Errorf("%s: %s does not exist at %s%s", t.varName, t.what, t.at(), paren)
	case awserr.Signature:
		return fmt.Errorf("AWS_SECRET_ACCESS_KEY: signature rejected by %s%s: the secret key does not belong to AWS_ACCESS_KEY_ID", t.service, paren)
	case awserr.AccessKey:
		return fmt.Errorf("AWS_ACCESS_KEY_ID: access key not known to %s at %s%s", t.service, t.at(), paren)
	case awserr.Token:
		return fmt.Errorf("AWS_SESSION_TOKEN: session token rejected by %s%s (expired or invalid)", t.service, paren)
	case awserr.Clock:
		return fmt.Errorf("%s: %s rejected the request's time%s: this machine's clock is off", t.varName, t.service, paren)
	case awserr.Denied:
		if paren == "" {
			paren = " (AccessDenied)"
		}
		return fmt.Errorf("%s: access to %s denied%s: check the name and what these credentials may do (IAM policy)", t.varName, t.what, paren)
	case awserr.NoCredentials:
		return fmt.Errorf("AWS_ACCESS_KEY_ID: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a task role)")
	case awserr.WrongRegion:
		return fmt.Errorf("AWS_REGION: %s is not in region %q%s", t.what, t.region, paren)
	case awserr.Unreachable:
		return noAnswer{fmt.Errorf("%s: cannot reach %s at %s: %s", endpointVar, t.service, t.at(), neterr.Reason(err))}
	}
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return noAnswer{fmt.Errorf("%s: no answer from %s at %s within %s", endpointVar, t.service, t.at(), timeout)}
	}
	return fmt.Errorf("%s: checking %s at %s: %s", t.varName, t.what, t.at(), oneLine(err.Error()))
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// checkECS checks the cluster (DescribeClusters), the task definition
// (DescribeTaskDefinition) and that it has the container the job's
// environment goes to. Credentials that may not describe them (an older
// IAM policy) only earn a warning: RunTask will tell.
func checkECS(ctx context.Context, cfg ecslaunch.Config, timeout time.Duration, log zerolog.Logger) error {
	awsCfg, err := awsconf.Load(ctx, awsconf.Options{Region: cfg.Region, MaxAttempts: 1})
	if err != nil {
		return fmt.Errorf("AWS_PROFILE: load the AWS configuration: %s", oneLine(err.Error()))
	}
	if awsCfg.Region == "" {
		// As the launcher does: the region of an ARN, any for a test endpoint.
		for _, arn := range []string{cfg.TaskDefinition, cfg.Cluster} {
			if f := strings.Split(arn, ":"); len(f) > 3 && f[0] == "arn" && f[3] != "" {
				awsCfg.Region = f[3]
				break
			}
		}
		if awsCfg.Region == "" && cfg.Endpoint == "" {
			return errors.New("AWS_REGION: no AWS region for ECS (set AWS_REGION)")
		}
		if awsCfg.Region == "" {
			awsCfg.Region = "us-east-1"
		}
	}
	client := ecs.NewFromConfig(awsCfg, func(o *ecs.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	t := target{service: "ECS", varName: "ECS_CLUSTER", what: fmt.Sprintf("cluster %q", cfg.Cluster), endpointVar: "ECS_ENDPOINT", endpoint: cfg.Endpoint, region: cfg.Region}
	if t.endpoint == "" {
		t.endpoint = os.Getenv("AWS_ENDPOINT_URL_ECS")
	}
	out, err := client.DescribeClusters(ctx, &ecs.DescribeClustersInput{Clusters: []string{cfg.Cluster}})
	switch {
	case awserr.Classify(err) == awserr.Denied:
		log.Warn().Err(err).Msg("cannot check ECS_CLUSTER: these credentials may not call ecs:DescribeClusters")
	case err != nil:
		return t.describe(ctx, err, timeout)
	case len(out.Clusters) == 0:
		reason := "MISSING"
		if len(out.Failures) > 0 {
			reason = aws.ToString(out.Failures[0].Reason)
		}
		return fmt.Errorf("ECS_CLUSTER: cluster %q does not exist at %s (%s)", cfg.Cluster, t.at(), reason)
	case aws.ToString(out.Clusters[0].Status) != "ACTIVE":
		return fmt.Errorf("ECS_CLUSTER: cluster %q is %s, not ACTIVE", cfg.Cluster, aws.ToString(out.Clusters[0].Status))
	}
	t.varName, t.what = "ECS_TASK_DEFINITION", fmt.Sprintf("task definition %q", cfg.TaskDefinition)
	td, err := client.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: &cfg.TaskDefinition})
	switch {
	case awserr.Classify(err) == awserr.Denied:
		log.Warn().Err(err).Msg("cannot check ECS_TASK_DEFINITION: these credentials may not call ecs:DescribeTaskDefinition")
		return nil
	case awserr.Code(err) == "ClientException":
		// ECS's answer for a task definition that does not exist.
		return fmt.Errorf("ECS_TASK_DEFINITION: task definition %q does not exist at %s (ClientException)", cfg.TaskDefinition, t.at())
	case err != nil:
		return t.describe(ctx, err, timeout)
	}
	if td.TaskDefinition == nil {
		return fmt.Errorf("ECS_TASK_DEFINITION: task definition %q: empty answer from %s", cfg.TaskDefinition, t.at())
	}
	if s := td.TaskDefinition.Status; s != "" && s != "ACTIVE" {
		return fmt.Errorf("ECS_TASK_DEFINITION: task definition %q is %s, not ACTIVE", cfg.TaskDefinition, s)
	}
	var names []string
	for _, c := range td.TaskDefinition.ContainerDefinitions {
		if aws.ToString(c.Name) == cfg.Container {
			return nil
		}
		names = append(names, aws.ToString(c.Name))
	}
	return fmt.Errorf("ECS_CONTAINER_NAME: task definition %q has no container %q (it has %s)", cfg.TaskDefinition, cfg.Container, strings.Join(names, ", "))
}
