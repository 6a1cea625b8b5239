// Package ecs is the launch.Launcher that runs one ECS task (Fargate, Spot
// by default) per job, on aws-sdk-go-v2.
//
// A task carries its job in the container overrides' environment
// (launch.Job.Env: bucket, decoded key, queue URL, receipt handle). Tag
// values and startedBy cannot hold every character of an object key, so
// they carry a hash of the key (JobID); InFlight reads the key itself back
// from the overrides of the running tasks.
package ecs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"
	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/awsconf"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
)

// Capacity providers of Fargate.
const (
	FargateSpot = "FARGATE_SPOT"
	Fargate     = "FARGATE"
)

// Tags and identifiers written on every task.
const (
	// TagJob holds JobID(key), the hex SHA-256 of the decoded key.
	TagJob = "hevc-encoder:job"
	// TagBucket holds the job's bucket.
	TagBucket = "hevc-encoder:bucket"
	// TagFile holds the key's file name reduced to the characters a tag
	// value may hold, for people reading the console (not unique).
	TagFile = "hevc-encoder:file"
	// StartedByPrefix starts every task's startedBy: "hevc-" and the first
	// 31 hex digits of JobID (startedBy holds at most 36 characters).
	StartedByPrefix = "hevc-"
	// EnvKey is the environment variable (of launch.Job.Env) that carries
	// the decoded key.
	EnvKey = "S3_OBJECT_KEY"
	// NoKeyPrefix prefixes the InFlight entry of a running task of our
	// family whose key cannot be read (started by hand): it still counts
	// against the capacity and never equals a real key.
	NoKeyPrefix = "ecs-task:"

	maxOverrides = 8192 // ECS: characters of the overrides JSON
	maxStartedBy = 36
	maxTagValue  = 256
	pageSize     = 100 // ListTasks maxResults and DescribeTasks tasks limit
)

// JobID is the hex SHA-256 of a decoded key: the job's identity in tags.
func JobID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// StartedBy is the startedBy value of the task for key.
func StartedBy(key string) string {
	return (StartedByPrefix + JobID(key))[:maxStartedBy]
}

// Config configures the launcher. Credentials and (unless Region is set)
// the region come from the standard AWS chain.
type Config struct {
	Cluster string
	// TaskDefinition is the family, family:revision or ARN of the
	// processor's task definition.
	TaskDefinition string
	// Container is the name of the processor's container in the task
	// definition (the one that receives the job's environment).
	Container string
	// Subnets and SecurityGroups are the awsvpc network configuration;
	// AssignPublicIP gives the task a public IP (needed in public subnets
	// without a NAT gateway to reach S3, SQS and ECR).
	Subnets        []string
	SecurityGroups []string
	AssignPublicIP bool
	// CapacityProvider is FARGATE_SPOT (default) or FARGATE.
	CapacityProvider string
	// SpotFallbackAfter is the number of consecutive Spot capacity failures
	// after which tasks run on FARGATE (default 3; negative: never).
	SpotFallbackAfter int
	// SpotRetryAfter is how long tasks run on FARGATE after a fallback
	// before Spot is tried again (default 15 min).
	SpotRetryAfter time.Duration
	// PlatformVersion is the Fargate platform version ("" = LATEST).
	PlatformVersion string
	// MaxTasks is Capacity: how many tasks may run at once (<= 0: no cap).
	MaxTasks int
	// Env is added to every task's container environment (the job's own
	// variables win).
	Env map[string]string

	Region string
	// Endpoint overrides the ECS endpoint (tests); AWS_ENDPOINT_URL_ECS is
	// honoured too.
	Endpoint string
	// MaxAttempts is the SDK retryer's attempts per request (throttling,
	// 5xx, network; default 5), MaxBackoff caps its backoff and the
	// launcher's own (default 20 s).
	MaxAttempts int
	MaxBackoff  time.Duration
	// LaunchAttempts is how many RunTask calls one Launch makes while RunTask
	// answers failures[] (capacity) or throttling (default 6); Backoff is the
	// first wait between them, doubled each time (default 1 s).
	LaunchAttempts int
	Backoff        time.Duration
	// PendingTTL is how long a launched task counts as in flight while
	// ListTasks/DescribeTasks do not show it yet (eventual consistency;
	// default 2 min).
	PendingTTL time.Duration
	// HTTPClient replaces the SDK's HTTP client (tests).
	HTTPClient aws.HTTPClient
	Log        zerolog.Logger
	// OnStopped, if set, is told of each task of known key that stopped
	// (seen by the listing behind InFlight), for metrics: stopped tasks are
	// then described once more to read their exit code.
	OnStopped func(Stopped)
}

// Stopped is a task that ended.
type Stopped struct {
	Key, ARN string
	// ExitCode is the processor container's; nil when ECS did not say
	// (the task never started, or ECS no longer describes it).
	ExitCode *int32
	// StopCode and StoppedReason are the task's (e.g. SpotInterruption).
	StopCode, StoppedReason string
}

// Launcher runs jobs as ECS tasks.
type Launcher struct {
	client *ecs.Client
	cfg    Config
	family string
	// listOnly is why Launch cannot run (NewLister without the launch
	// settings); nil otherwise.
	listOnly error

	mu           sync.Mutex
	known        map[string]*known // task ARN → its key (from RunTask or DescribeTasks)
	spotFailures int
	fargateUntil time.Time
}

// known is a task whose key is known: launched here, or described.
type known struct {
	key    string
	at     time.Time // launched or first described
	listed bool      // seen in ListTasks (until then it is pending)
	// stopping: described with desired status STOPPED before its
	// container stopped; described again until it has (OnStopped).
	stopping bool
}

var _ launch.Launcher = (*Launcher)(nil)

// listErrors names what is missing for listing the tasks (NewLister); a
// launch needs more (Validate).
func (c *Config) listErrors() []error {
	var errs []error
	if c.Cluster == "" {
		errs = append(errs, errors.New("ECS_CLUSTER is required"))
	}
	if c.TaskDefinition == "" {
		errs = append(errs, errors.New("ECS_TASK_DEFINITION is required"))
	}
	if c.Container == "" {
		errs = append(errs, errors.New("ECS_CONTAINER_NAME is required"))
	}
	return errs
}

// Validate checks cfg and fills defaults.
func (c *Config) Validate() error {
	errs := c.listErrors()
	if len(c.Subnets) == 0 {
		errs = append(errs, errors.New("ECS_SUBNETS is required (Fargate tasks use awsvpc networking)"))
	}
	switch c.CapacityProvider {
	case "":
		c.CapacityProvider = FargateSpot
	case FargateSpot, Fargate:
	default:
		errs = append(errs, fmt.Errorf("ECS_CAPACITY_PROVIDER must be %s or %s, got %q", FargateSpot, Fargate, c.CapacityProvider))
	}
	if c.SpotFallbackAfter == 0 {
		c.SpotFallbackAfter = 3
	}
	if c.SpotRetryAfter <= 0 {
		c.SpotRetryAfter = 15 * time.Minute
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 20 * time.Second
	}
	if c.LaunchAttempts <= 0 {
		c.LaunchAttempts = 6
	}
	if c.Backoff <= 0 {
		c.Backoff = time.Second
	}
	if c.PendingTTL <= 0 {
		c.PendingTTL = 2 * time.Minute
	}
	return errors.Join(errs...)
}

// New builds the launcher. It does not contact ECS.
func New(ctx context.Context, cfg Config) (*Launcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ecs launcher: %w", err)
	}
	return newLauncher(ctx, cfg)
}

// NewLister builds a launcher that is only used to list the running tasks
// (InFlight, Tasks: the status command): it needs ECS_CLUSTER and
// ECS_TASK_DEFINITION (and ECS_CONTAINER_NAME), not the network settings
// that only RunTask uses. Launch with it fails.
func NewLister(ctx context.Context, cfg Config) (*Launcher, error) {
	err := cfg.Validate()
	if err := errors.Join(cfg.listErrors()...); err != nil {
		return nil, fmt.Errorf("ecs task listing: %w", err)
	}
	l, lerr := newLauncher(ctx, cfg)
	if lerr != nil {
		return nil, lerr
	}
	l.listOnly = err // nil when the configuration could launch too
	return l, nil
}

func newLauncher(ctx context.Context, cfg Config) (*Launcher, error) {
	awsCfg, err := awsconf.Load(ctx, awsconf.Options{Region: cfg.Region, MaxAttempts: cfg.MaxAttempts, MaxBackoff: cfg.MaxBackoff, HTTPClient: cfg.HTTPClient})
	if err != nil {
		return nil, fmt.Errorf("ecs launcher: load AWS config: %w", err)
	}
	if awsCfg.Region == "" {
		if r := regionFromARN(cfg.TaskDefinition); r != "" {
			awsCfg.Region = r
		} else if r := regionFromARN(cfg.Cluster); r != "" {
			awsCfg.Region = r
		} else {
			return nil, errors.New("ecs launcher: no AWS region (set AWS_REGION)")
		}
	}
	client := ecs.NewFromConfig(awsCfg, func(o *ecs.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return &Launcher{client: client, cfg: cfg, family: Family(cfg.TaskDefinition), known: map[string]*known{}}, nil
}

// Client exposes the SDK client (tests and tools).
func (l *Launcher) Client() *ecs.Client { return l.client }

// Family is the task definition family of family, family:revision or an
// ARN (arn:aws:ecs:<region>:<account>:task-definition/<family>:<revision>).
func Family(taskDefinition string) string {
	s := taskDefinition
	if strings.HasPrefix(s, "arn:") {
		if _, after, ok := strings.Cut(s, ":task-definition/"); ok {
			s = after
		}
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		s = s[:i]
	}
	return s
}

func regionFromARN(s string) string {
	f := strings.Split(s, ":")
	if len(f) >= 6 && f[0] == "arn" && f[2] == "ecs" {
		return f[3]
	}
	return ""
}

// Capacity implements launch.Launcher.
func (l *Launcher) Capacity() int { return l.cfg.MaxTasks }

// LaunchError is returned by Launch when RunTask kept answering failures[]
// or throttling. Retry later.
type LaunchError struct {
	Key      string
	Provider string
	Attempts int
	Reasons  []string
	Err      error // the last API error, if the last attempt failed with one
}

func (e *LaunchError) Error() string {
	msg := fmt.Sprintf("ecs run task for %s: no task after %d attempts (last on %s)", e.Key, e.Attempts, e.Provider)
	if len(e.Reasons) > 0 {
		msg += ": " + strings.Join(e.Reasons, "; ")
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *LaunchError) Unwrap() error { return e.Err }

// provider is the capacity provider for the next RunTask.
func (l *Launcher) provider() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.CapacityProvider == FargateSpot && time.Now().Before(l.fargateUntil) {
		return Fargate
	}
	return l.cfg.CapacityProvider
}

// spotResult records the outcome of a RunTask on Spot: capacity failures
// count towards the fallback, a started task resets the count. It reports
// whether the launcher has just fallen back to FARGATE.
func (l *Launcher) spotResult(capacityFailure bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !capacityFailure {
		l.spotFailures = 0
		return false
	}
	l.spotFailures++
	if l.cfg.SpotFallbackAfter > 0 && l.spotFailures >= l.cfg.SpotFallbackAfter {
		l.spotFailures = 0
		l.fargateUntil = time.Now().Add(l.cfg.SpotRetryAfter)
		return true
	}
	return false
}

// IsCapacityFailure reports whether a RunTask failures[] reason says that
// there is no capacity ("Capacity is unavailable at this time…",
// "RESOURCE:…").
func IsCapacityFailure(reason string) bool {
	return strings.HasPrefix(reason, "RESOURCE:") || strings.Contains(strings.ToLower(reason), "capacity")
}

// retryable reports whether an API error may pass on its own (the SDK
// retryer has already retried it MaxAttempts times).
func retryable(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ThrottlingException", "Throttling", "ServerException", "ServiceUnavailable",
			"RequestLimitExceeded", "TooManyRequestsException", "LimitExceededException":
			return true
		}
		return ae.ErrorFault() == smithy.FaultServer
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// input builds the RunTask request for job on provider.
func (l *Launcher) input(job launch.Job, provider string) (*ecs.RunTaskInput, error) {
	env := map[string]string{}
	for k, v := range l.cfg.Env {
		env[k] = v
	}
	for k, v := range job.Env() {
		env[k] = v
	}
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	pairs := make([]types.KeyValuePair, 0, len(names))
	for _, k := range names {
		pairs = append(pairs, types.KeyValuePair{Name: aws.String(k), Value: aws.String(env[k])})
	}
	if n := overridesLen(l.cfg.Container, names, env); n > maxOverrides {
		return nil, fmt.Errorf("ecs run task for %s: container overrides are %d characters, ECS allows %d (key too long?)", job.Key, n, maxOverrides)
	}
	publicIP := types.AssignPublicIpDisabled
	if l.cfg.AssignPublicIP {
		publicIP = types.AssignPublicIpEnabled
	}
	id := JobID(job.Key)
	tags := []types.Tag{{Key: aws.String(TagJob), Value: aws.String(id)}}
	if job.Bucket != "" {
		tags = append(tags, types.Tag{Key: aws.String(TagBucket), Value: aws.String(tagValue(job.Bucket))})
	}
	if f := tagValue(path.Base(job.Key)); f != "" {
		tags = append(tags, types.Tag{Key: aws.String(TagFile), Value: aws.String(f)})
	}
	in := &ecs.RunTaskInput{
		Cluster:        aws.String(l.cfg.Cluster),
		TaskDefinition: aws.String(l.cfg.TaskDefinition),
		Count:          aws.Int32(1),
		StartedBy:      aws.String(StartedBy(job.Key)),
		CapacityProviderStrategy: []types.CapacityProviderStrategyItem{
			{CapacityProvider: aws.String(provider), Weight: 1},
		},
		NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{
			Subnets:        l.cfg.Subnets,
			SecurityGroups: l.cfg.SecurityGroups,
			AssignPublicIp: publicIP,
		}},
		Overrides: &types.TaskOverride{ContainerOverrides: []types.ContainerOverride{{
			Name:        aws.String(l.cfg.Container),
			Environment: pairs,
		}}},
		Tags:          tags,
		PropagateTags: types.PropagateTagsTaskDefinition,
	}
	if l.cfg.PlatformVersion != "" {
		in.PlatformVersion = aws.String(l.cfg.PlatformVersion)
	}
	return in, nil
}

// overridesLen is the length of the overrides JSON as ECS counts it.
func overridesLen(container string, names []string, env map[string]string) int {
	type kv struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	type co struct {
		Name        string `json:"name"`
		Environment []kv   `json:"environment"`
	}
	o := struct {
		ContainerOverrides []co `json:"containerOverrides"`
	}{[]co{{Name: container}}}
	for _, k := range names {
		o.ContainerOverrides[0].Environment = append(o.ContainerOverrides[0].Environment, kv{k, env[k]})
	}
	b, _ := json.Marshal(o)
	return len(b)
}

// tagValue keeps the characters a tag value may hold (letters, digits,
// spaces, + - = . _ : / @), replacing others with '_', at most 256.
func tagValue(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == maxTagValue {
			break
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == ' ' || strings.ContainsRune("+-=._:/@", r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		n++
	}
	return strings.TrimSpace(b.String())
}

// Launch implements launch.Launcher: one RunTask (count 1) for job, with
// backoff while RunTask answers failures[] or throttling, falling back from
// FARGATE_SPOT to FARGATE after SpotFallbackAfter capacity failures in a
// row. It returns once ECS has accepted the task (PROVISIONING).
func (l *Launcher) Launch(ctx context.Context, job launch.Job) error {
	if job.Key == "" {
		return errors.New("ecs launch: job has no key")
	}
	if l.listOnly != nil {
		return fmt.Errorf("ecs launch %s: %w", job.Key, l.listOnly)
	}
	log := l.cfg.Log.With().Str("key", job.Key).Logger()
	lerr := &LaunchError{Key: job.Key}
	wait := l.cfg.Backoff
	for attempt := 1; attempt <= l.cfg.LaunchAttempts; attempt++ {
		provider := l.provider()
		in, err := l.input(job, provider)
		if err != nil {
			return err
		}
		lerr.Attempts, lerr.Provider, lerr.Reasons, lerr.Err = attempt, provider, nil, nil
		out, err := l.client.RunTask(ctx, in)
		switch {
		case err != nil && !retryable(err):
			return fmt.Errorf("ecs run task for %s on %s: %w", job.Key, provider, err)
		case err != nil:
			lerr.Err = err
			log.Warn().Err(err).Int("attempt", attempt).Msg("ecs run task throttled or failed; backing off")
		case len(out.Tasks) > 0:
			t := out.Tasks[0]
			arn := aws.ToString(t.TaskArn)
			l.mu.Lock()
			l.known[arn] = &known{key: job.Key, at: time.Now()}
			l.mu.Unlock()
			if provider == FargateSpot {
				l.spotResult(false)
			}
			log.Info().Str("task", arn).Str("capacity_provider", provider).Int("attempt", attempt).Msg("ecs task started")
			return nil
		default:
			capacity := false
			for _, f := range out.Failures {
				r := aws.ToString(f.Reason)
				if d := aws.ToString(f.Detail); d != "" {
					r += " (" + d + ")"
				}
				lerr.Reasons = append(lerr.Reasons, r)
				capacity = capacity || IsCapacityFailure(aws.ToString(f.Reason))
			}
			if len(out.Failures) == 0 {
				lerr.Reasons = append(lerr.Reasons, "RunTask returned neither tasks nor failures")
			}
			log.Warn().Strs("reasons", lerr.Reasons).Str("capacity_provider", provider).Int("attempt", attempt).Msg("ecs run task failed")
			if capacity && provider == FargateSpot && l.spotResult(true) {
				log.Warn().Dur("for", l.cfg.SpotRetryAfter).Msg("no Fargate Spot capacity; falling back to FARGATE")
				continue // on the other provider at once
			}
		}
		if attempt == l.cfg.LaunchAttempts {
			break
		}
		// Full jitter on an exponential backoff.
		d := wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("ecs run task for %s: %w", job.Key, ctx.Err())
		case <-time.After(d):
		}
		wait = min(2*wait, l.cfg.MaxBackoff)
	}
	return lerr
}

// Task is a running (or starting) task of the processor's family.
type Task struct {
	ARN              string
	Key              string // "" when the overrides carry none
	LastStatus       string
	CapacityProvider string
	StartedBy        string
	Created, Started time.Time
}

// Tasks lists the family's tasks whose desired status is RUNNING (with the
// tasks launched here that ECS does not list yet), described in full, keys
// read back from the container overrides.
func (l *Launcher) Tasks(ctx context.Context) ([]Task, error) {
	return l.tasks(ctx, true)
}

// tasks lists the family's running tasks. Unless full, tasks whose key is
// known already (launched here, or described before: a task's overrides
// never change) are not described again, so that a steady state costs
// ListTasks calls only.
func (l *Launcher) tasks(ctx context.Context, full bool) ([]Task, error) {
	var listed []string
	isListed := map[string]bool{}
	p := ecs.NewListTasksPaginator(l.client, &ecs.ListTasksInput{
		Cluster:       aws.String(l.cfg.Cluster),
		Family:        aws.String(l.family),
		DesiredStatus: types.DesiredStatusRunning,
		MaxResults:    aws.Int32(pageSize),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("ecs list tasks of %s in %s: %w", l.family, l.cfg.Cluster, err)
		}
		for _, a := range page.TaskArns {
			if !isListed[a] {
				isListed[a] = true
				listed = append(listed, a)
			}
		}
	}

	// What to describe: listed tasks of unknown key (or all, when full),
	// and tasks launched here that ECS does not list (yet, or any more).
	var describe []string
	var tasks []Task
	l.mu.Lock()
	for _, a := range listed {
		if k, ok := l.known[a]; ok && !full {
			k.listed = true
			tasks = append(tasks, Task{ARN: a, Key: k.key, LastStatus: "RUNNING", Created: k.at})
		} else {
			describe = append(describe, a)
		}
	}
	for a, k := range l.known {
		if isListed[a] {
			continue
		}
		if k.listed && l.cfg.OnStopped == nil {
			delete(l.known, a) // listed before, not now: stopped
			continue
		}
		describe = append(describe, a)
	}
	l.mu.Unlock()
	var stopped []Stopped
	defer func() {
		for _, st := range stopped {
			l.cfg.OnStopped(st)
		}
	}()

	seen := map[string]bool{}
	for start := 0; start < len(describe); start += pageSize {
		chunk := describe[start:min(start+pageSize, len(describe))]
		out, err := l.client.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(l.cfg.Cluster), Tasks: chunk})
		if err != nil {
			return nil, fmt.Errorf("ecs describe tasks in %s: %w", l.cfg.Cluster, err)
		}
		l.mu.Lock()
		for _, t := range out.Tasks {
			arn := aws.ToString(t.TaskArn)
			seen[arn] = true
			if aws.ToString(t.DesiredStatus) == "STOPPED" || aws.ToString(t.LastStatus) == "STOPPED" {
				if k, ok := l.known[arn]; ok && l.cfg.OnStopped != nil {
					if aws.ToString(t.LastStatus) != "STOPPED" {
						k.stopping = true // its exit code comes later
						continue
					}
					stopped = append(stopped, l.stoppedTask(k.key, t))
				}
				delete(l.known, arn)
				continue
			}
			key := l.keyOf(t)
			if k, ok := l.known[arn]; ok {
				k.listed = k.listed || isListed[arn]
				if key == "" {
					key = k.key
				}
			} else {
				l.known[arn] = &known{key: key, at: aws.ToTime(t.CreatedAt), listed: isListed[arn]}
			}
			tasks = append(tasks, Task{
				ARN: arn, Key: key, LastStatus: aws.ToString(t.LastStatus),
				CapacityProvider: aws.ToString(t.CapacityProviderName), StartedBy: aws.ToString(t.StartedBy),
				Created: aws.ToTime(t.CreatedAt), Started: aws.ToTime(t.StartedAt),
			})
		}
		l.mu.Unlock()
	}
	// Launched here, neither listed nor described (ECS is eventually
	// consistent): in flight all the same, until PendingTTL.
	now := time.Now()
	l.mu.Lock()
	for a, k := range l.known {
		if isListed[a] || seen[a] {
			continue
		}
		if k.listed || k.stopping || now.Sub(k.at) > l.cfg.PendingTTL {
			// Gone from ECS's answers (it forgets stopped tasks).
			if l.cfg.OnStopped != nil {
				stopped = append(stopped, Stopped{Key: k.key, ARN: a})
			}
			delete(l.known, a)
			continue
		}
		tasks = append(tasks, Task{ARN: a, Key: k.key, LastStatus: "PROVISIONING", Created: k.at})
	}
	l.mu.Unlock()
	return tasks, nil
}

// stoppedTask describes the end of task t of key.
func (l *Launcher) stoppedTask(key string, t types.Task) Stopped {
	st := Stopped{Key: key, ARN: aws.ToString(t.TaskArn), StopCode: string(t.StopCode), StoppedReason: aws.ToString(t.StoppedReason)}
	for _, c := range t.Containers {
		if aws.ToString(c.Name) == l.cfg.Container && c.ExitCode != nil {
			v := *c.ExitCode
			st.ExitCode = &v
		}
	}
	return st
}

// keyOf reads the job's key from the task's container overrides.
func (l *Launcher) keyOf(t types.Task) string {
	if t.Overrides == nil {
		return ""
	}
	for _, c := range t.Overrides.ContainerOverrides {
		if aws.ToString(c.Name) != l.cfg.Container {
			continue
		}
		for _, kv := range c.Environment {
			if aws.ToString(kv.Name) == EnvKey {
				return aws.ToString(kv.Value)
			}
		}
	}
	return ""
}

// InFlight implements launch.Launcher: the keys of the family's tasks that
// are starting or running. A task without a readable key counts as
// NoKeyPrefix+ARN.
func (l *Launcher) InFlight(ctx context.Context) (map[string]bool, error) {
	tasks, err := l.tasks(ctx, false)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		if t.Key != "" {
			out[t.Key] = true
		} else {
			out[NoKeyPrefix+t.ARN] = true
		}
	}
	return out, nil
}
