// Package ecstest is an Amazon ECS endpoint for tests: an HTTP server that
// speaks the ECS JSON 1.1 protocol (RunTask, DescribeTasks, ListTasks,
// StopTask, and DescribeClusters / DescribeTaskDefinition for the
// dispatcher's preflight) and runs each task as a local process (the container's
// command with the task definition's environment plus the task's
// container-override environment), or as a Go function.
//
// Tasks go PROVISIONING → PENDING → RUNNING → (DEACTIVATING →) STOPPED with
// the container's exit code (128+signal when killed, as Docker reports it).
// StopTask sends SIGTERM to the container's main process and SIGKILL to its
// process group after StopTimeout, like `docker stop`; Interrupt does the
// same with stop code SpotInterruption; Kill crashes a task (SIGKILL).
//
// Faults: FailRunTask and FailSpotCapacity make RunTask answer failures[]
// (no task) as ECS does when Fargate (Spot) has no capacity; Throttle makes
// requests answer ThrottlingException.
//
// The server checks requests the way ECS would (cluster, awsvpc network
// configuration, capacity provider strategy vs launch type, startedBy and
// tag character sets and lengths, 8192-character overrides, container
// names), so that a launcher that passes here does not fail on AWS for
// those reasons.
package ecstest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode"
)

// Target prefix of the ECS JSON API.
const targetPrefix = "AmazonEC2ContainerServiceV20141113."

// SpotCapacityReason is the failures[] reason ECS gives when Fargate (Spot)
// has no capacity.
const SpotCapacityReason = "Capacity is unavailable at this time. Please try again later or in a different availability zone"

// Task statuses.
const (
	Provisioning = "PROVISIONING"
	Pending      = "PENDING"
	Running      = "RUNNING"
	Deactivating = "DEACTIVATING"
	Stopped      = "STOPPED"
)

// Options configure a Server.
type Options struct {
	// Cluster is the one cluster that exists (default "default").
	Cluster string
	Region  string // default us-east-1
	Account string // default 123456789012
	// Families, if set, are the task definition families that exist;
	// otherwise any family does.
	Families []string
	// Container is the name of the task definition's container (default
	// "hevc-processor"); container overrides must name it.
	Container string
	// Entrypoint and Command make the container's argv, as in a Docker
	// image: Entrypoint followed by Command, where a container override's
	// command replaces Command. One of them (or Func) is needed.
	Entrypoint []string
	Command    []string
	// Func, if set instead of Command, runs each task in-process: ctx is
	// cancelled on stop (like SIGTERM); the result is the exit code.
	Func func(ctx context.Context, t Task) int
	// Env is the task definition's environment (KEY=value), given to every
	// task before its overrides; nil means os.Environ().
	Env []string
	// ProvisioningDelay keeps new tasks in PROVISIONING that long.
	ProvisioningDelay time.Duration
	// StopTimeout is the wait between SIGTERM and SIGKILL on StopTask
	// (default 30 s, the ECS default).
	StopTimeout time.Duration
	// LogDir receives each task's output as <task id>.log (default: a
	// temporary directory removed by Close).
	LogDir string
}

// Task is a snapshot of one task.
type Task struct {
	ARN, ID          string
	Family           string
	StartedBy        string
	Group            string
	CapacityProvider string
	LastStatus       string
	DesiredStatus    string
	// Env is the container-override environment of the task's container.
	Env  map[string]string
	Tags map[string]string
	// Network configuration as requested.
	Subnets, SecurityGroups []string
	AssignPublicIP          string
	ExitCode                *int
	StopCode, StoppedReason string
	// Leaked is set when processes of the task's process group outlived
	// its main process (they were killed).
	Leaked                            bool
	Created, Started, Stopping, Ended time.Time
	LogPath                           string
}

// Server is a running ECS endpoint. Point the SDK's BaseEndpoint (or
// AWS_ENDPOINT_URL_ECS) at URL.
type Server struct {
	URL string

	opts   Options
	http   *httptest.Server
	tmpLog bool

	mu        sync.Mutex
	tasks     []*task
	byArn     map[string]*task
	tokens    map[string][]*task
	calls     map[string]int
	invoked   map[string]map[string]bool // op → SDK invocation IDs seen
	failRules []*failRule
	throttles []*throttleRule
	active    int
	maxActive int
	closed    bool
	wg        sync.WaitGroup
}

type task struct {
	Task
	req     RunTaskRequest
	command []string
	version int64
	stop    chan struct{} // closed when the task is asked to stop
	kill    chan struct{} // closed on Kill (SIGKILL now)
	done    chan struct{} // closed when STOPPED
	stopped bool
	killed  bool
}

type failRule struct {
	left   int
	match  func(RunTaskRequest) bool
	reason string
}

type throttleRule struct {
	left int
	op   string
}

// New starts a server. Close stops it and its tasks.
func New(opts Options) (*Server, error) {
	if opts.Cluster == "" {
		opts.Cluster = "default"
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Account == "" {
		opts.Account = "123456789012"
	}
	if opts.Container == "" {
		opts.Container = "hevc-processor"
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 30 * time.Second
	}
	if len(opts.Entrypoint)+len(opts.Command) == 0 && opts.Func == nil {
		return nil, errors.New("ecstest: Options need an Entrypoint, a Command or a Func")
	}
	s := &Server{opts: opts, byArn: map[string]*task{}, tokens: map[string][]*task{}, calls: map[string]int{}, invoked: map[string]map[string]bool{}}
	if s.opts.LogDir == "" {
		d, err := os.MkdirTemp("", "ecstest-*")
		if err != nil {
			return nil, fmt.Errorf("ecstest: log dir: %w", err)
		}
		s.opts.LogDir, s.tmpLog = d, true
	}
	s.http = httptest.NewServer(s)
	s.URL = s.http.URL
	return s, nil
}

// Start starts a server for t, closed at t's cleanup (task logs are
// printed when t failed).
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, tk := range s.Tasks() {
				if s.opts.Func != nil {
					continue // no output to show
				}
				t.Logf("ecstest: task %s (%s, exit %v, %s %s) log:\n%s", tk.ID, tk.Env["S3_OBJECT_KEY"], fmtExit(tk.ExitCode), tk.StopCode, tk.StoppedReason, s.Logs(tk.ARN))
			}
		}
		s.Close()
	})
	return s
}

func fmtExit(p *int) string {
	if p == nil {
		return "-"
	}
	return strconv.Itoa(*p)
}

// ClusterARN is the cluster's ARN.
func (s *Server) ClusterARN() string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/%s", s.opts.Region, s.opts.Account, s.opts.Cluster)
}

// Close stops every task (SIGTERM, then SIGKILL after StopTimeout) and the
// server.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for _, t := range s.tasks {
		s.requestStop(t, "TaskFailedToStart", "ecstest server closed")
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.http.Close()
	if s.tmpLog {
		os.RemoveAll(s.opts.LogDir)
	}
}

// FailRunTask makes the next n RunTask requests that match (nil: all)
// answer failures[] with reason and start no task.
func (s *Server) FailRunTask(n int, reason string, match func(RunTaskRequest) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRules = append(s.failRules, &failRule{left: n, match: match, reason: reason})
}

// FailSpotCapacity makes the next n RunTask requests for FARGATE_SPOT
// answer the capacity failure ECS gives when Spot has no capacity.
func (s *Server) FailSpotCapacity(n int) {
	s.FailRunTask(n, SpotCapacityReason, func(r RunTaskRequest) bool { return r.Provider() == "FARGATE_SPOT" })
}

// Throttle makes the next n requests for op ("RunTask", …; "" any) answer
// ThrottlingException.
func (s *Server) Throttle(op string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttles = append(s.throttles, &throttleRule{left: n, op: op})
}

// Calls is the number of requests received for op (throttled ones
// included).
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Invocations is the number of API calls made for op: requests that the
// SDK retried (same amz-sdk-invocation-id, e.g. after a dropped
// keep-alive connection) count once, unlike in Calls.
func (s *Server) Invocations(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.invoked[op])
}

// MaxActive is the largest number of tasks that were not STOPPED at the
// same time.
func (s *Server) MaxActive() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxActive
}

// Active is the number of tasks not STOPPED now.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// Tasks returns snapshots of every task, oldest first.
func (s *Server) Tasks() []Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Task, len(s.tasks))
	for i, t := range s.tasks {
		out[i] = t.snapshot()
	}
	return out
}

// TasksFor returns the tasks whose overrides carry S3_OBJECT_KEY=key.
func (s *Server) TasksFor(key string) []Task {
	var out []Task
	for _, t := range s.Tasks() {
		if t.Env["S3_OBJECT_KEY"] == key {
			out = append(out, t)
		}
	}
	return out
}

// Task returns the snapshot of the task with this ARN or ID.
func (s *Server) Task(arnOrID string) (Task, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.lookup(arnOrID)
	if t == nil {
		return Task{}, false
	}
	return t.snapshot(), true
}

func (t *task) snapshot() Task {
	c := t.Task
	c.Env = copyMap(t.Env)
	c.Tags = copyMap(t.Tags)
	if t.ExitCode != nil {
		v := *t.ExitCode
		c.ExitCode = &v
	}
	return c
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Logs is the output of a task's process.
func (s *Server) Logs(arnOrID string) string {
	t, ok := s.Task(arnOrID)
	if !ok || t.LogPath == "" {
		return ""
	}
	b, _ := os.ReadFile(t.LogPath)
	return string(b)
}

// Wait polls until cond holds for the task's snapshot, or ctx ends.
func (s *Server) Wait(ctx context.Context, arnOrID string, cond func(Task) bool) (Task, error) {
	for {
		t, ok := s.Task(arnOrID)
		if ok && cond(t) {
			return t, nil
		}
		select {
		case <-ctx.Done():
			return t, fmt.Errorf("ecstest: wait for task %s (now %s): %w", arnOrID, t.LastStatus, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitStopped waits until the task is STOPPED.
func (s *Server) WaitStopped(ctx context.Context, arnOrID string) (Task, error) {
	return s.Wait(ctx, arnOrID, func(t Task) bool { return t.LastStatus == Stopped })
}

// Interrupt stops a task as a Fargate Spot interruption does: stop code
// SpotInterruption, SIGTERM, SIGKILL after StopTimeout.
func (s *Server) Interrupt(arnOrID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.lookup(arnOrID)
	if t == nil {
		return fmt.Errorf("ecstest: no task %s", arnOrID)
	}
	s.requestStop(t, "SpotInterruption", "Your Spot Task was interrupted.")
	return nil
}

// Kill crashes a task: SIGKILL to its processes at once (no SIGTERM), as
// when the container is OOM-killed or its host dies. The task stops with
// exit code 137.
func (s *Server) Kill(arnOrID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.lookup(arnOrID)
	if t == nil {
		return fmt.Errorf("ecstest: no task %s", arnOrID)
	}
	if t.killed || t.LastStatus == Stopped {
		return nil
	}
	t.killed = true
	t.DesiredStatus = Stopped
	t.version++
	close(t.kill)
	return nil
}

func (s *Server) lookup(arnOrID string) *task {
	if t := s.byArn[arnOrID]; t != nil {
		return t
	}
	for _, t := range s.tasks {
		if t.ID == arnOrID {
			return t
		}
	}
	return nil
}

// requestStop sets the desired status to STOPPED and signals the task's
// runner. Caller holds s.mu.
func (s *Server) requestStop(t *task, code, reason string) {
	if t.stopped || t.LastStatus == Stopped {
		return
	}
	t.stopped = true
	t.DesiredStatus = Stopped
	if t.StopCode == "" {
		t.StopCode, t.StoppedReason = code, reason
	}
	t.Stopping = time.Now()
	t.version++
	close(t.stop)
}

// ServeHTTP implements the ECS JSON 1.1 protocol.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if r.Method != http.MethodPost || !ok {
		writeError(w, http.StatusBadRequest, "UnknownOperationException", "unknown operation "+r.Header.Get("X-Amz-Target"))
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeError(w, http.StatusBadRequest, "MissingAuthenticationTokenException", "Missing Authentication Token")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	s.mu.Lock()
	s.calls[op]++
	if s.invoked[op] == nil {
		s.invoked[op] = map[string]bool{}
	}
	id := r.Header.Get("Amz-Sdk-Invocation-Id")
	if id == "" {
		id = fmt.Sprintf("call-%d", s.calls[op]) // not the SDK: every request counts
	}
	s.invoked[op][id] = true
	throttled := false
	for _, th := range s.throttles {
		if th.left > 0 && (th.op == "" || th.op == op) {
			th.left--
			throttled = true
			break
		}
	}
	s.mu.Unlock()
	if throttled {
		writeError(w, http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
		return
	}
	var (
		out    any
		status = http.StatusOK
		code   string
		msg    string
	)
	switch op {
	case "RunTask":
		var req RunTaskRequest
		if err = json.Unmarshal(body, &req); err == nil {
			out, code, msg = s.runTask(req)
		}
	case "ListTasks":
		var req listTasksRequest
		if err = json.Unmarshal(body, &req); err == nil {
			out, code, msg = s.listTasks(req)
		}
	case "DescribeTasks":
		var req describeTasksRequest
		if err = json.Unmarshal(body, &req); err == nil {
			out, code, msg = s.describeTasks(req)
		}
	case "StopTask":
		var req stopTaskRequest
		if err = json.Unmarshal(body, &req); err == nil {
			out, code, msg = s.stopTask(req)
		}
	case "DescribeClusters":
		var req struct {
			Clusters []string `json:"clusters"`
		}
		if err = json.Unmarshal(body, &req); err == nil {
			out = s.describeClusters(req.Clusters)
		}
	case "DescribeTaskDefinition":
		var req struct {
			TaskDefinition string `json:"taskDefinition"`
		}
		if err = json.Unmarshal(body, &req); err == nil {
			out, code, msg = s.describeTaskDefinition(req.TaskDefinition)
		}
	default:
		writeError(w, http.StatusBadRequest, "UnknownOperationException", "ecstest does not implement "+op)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	if code != "" {
		status = http.StatusBadRequest
		if code == "ServerException" {
			status = http.StatusInternalServerError
		}
		writeError(w, status, code, msg)
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "ServerException", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", newID()[:32])
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	_, _ = w.Write(b)
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// checkCluster accepts the cluster's name or ARN ("" is "default").
func (s *Server) checkCluster(c string) (string, string) {
	if c == "" {
		c = "default"
	}
	if c == s.opts.Cluster || c == s.ClusterARN() {
		return "", ""
	}
	return "ClusterNotFoundException", "Cluster not found."
}

// describeClusters answers as ECS does: the clusters found, and a MISSING
// failure for each one that is not (no error).
func (s *Server) describeClusters(names []string) any {
	if len(names) == 0 {
		names = []string{"default"}
	}
	clusters, failures := []map[string]any{}, []map[string]any{}
	for _, n := range names {
		if c, _ := s.checkCluster(n); c != "" {
			arn := n
			if !strings.HasPrefix(arn, "arn:") {
				arn = fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/%s", s.opts.Region, s.opts.Account, n)
			}
			failures = append(failures, map[string]any{"arn": arn, "reason": "MISSING"})
			continue
		}
		s.mu.Lock()
		running := s.active
		s.mu.Unlock()
		clusters = append(clusters, map[string]any{
			"clusterArn": s.ClusterARN(), "clusterName": s.opts.Cluster, "status": "ACTIVE",
			"runningTasksCount": running, "capacityProviders": []string{"FARGATE", "FARGATE_SPOT"},
		})
	}
	return map[string]any{"clusters": clusters, "failures": failures}
}

// describeTaskDefinition answers with the one container the server runs;
// an unknown family is ECS's ClientException.
func (s *Server) describeTaskDefinition(td string) (any, string, string) {
	family, arn, ok := s.taskDefinition(td)
	if !ok {
		return nil, "ClientException", "Unable to describe task definition."
	}
	rev, _ := strconv.Atoi(arn[strings.LastIndexByte(arn, ':')+1:])
	return map[string]any{"taskDefinition": map[string]any{
		"taskDefinitionArn": arn, "family": family, "revision": rev, "status": "ACTIVE",
		"networkMode": "awsvpc", "requiresCompatibilities": []string{"FARGATE"},
		"containerDefinitions": []map[string]any{{"name": s.opts.Container, "essential": true}},
	}}, "", ""
}

// taskDefinition resolves family, family:revision or an ARN.
func (s *Server) taskDefinition(td string) (family, arn string, ok bool) {
	rest := td
	if strings.HasPrefix(rest, "arn:") {
		_, after, found := strings.Cut(rest, ":task-definition/")
		if !found {
			return "", "", false
		}
		rest = after
	}
	family, rev, hasRev := strings.Cut(rest, ":")
	if !hasRev {
		rev = "1"
	}
	if family == "" {
		return "", "", false
	}
	if n, err := strconv.Atoi(rev); err != nil || n < 1 {
		return "", "", false
	}
	if len(s.opts.Families) > 0 {
		found := false
		for _, f := range s.opts.Families {
			found = found || f == family
		}
		if !found {
			return "", "", false
		}
	}
	return family, fmt.Sprintf("arn:aws:ecs:%s:%s:task-definition/%s:%s", s.opts.Region, s.opts.Account, family, rev), true
}

func validStartedBy(s string) bool {
	if len(s) > 36 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '/') {
			return false
		}
	}
	return true
}

// validTagText: letters, numbers, spaces representable in UTF-8, and + - = . _ : / @.
func validTagText(s string) bool {
	for _, r := range s {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == ' ' || strings.ContainsRune("+-=._:/@", r)) {
			return false
		}
	}
	return true
}

func (s *Server) runTask(req RunTaskRequest) (any, string, string) {
	if c, m := s.checkCluster(req.Cluster); c != "" {
		return nil, c, m
	}
	family, tdArn, ok := s.taskDefinition(req.TaskDefinition)
	if !ok {
		return nil, "ClientException", "TaskDefinition not found."
	}
	if req.Count == 0 {
		req.Count = 1
	}
	if req.Count < 1 || req.Count > 10 {
		return nil, "InvalidParameterException", "count must be between 1 and 10."
	}
	if req.LaunchType != "" && len(req.CapacityProviderStrategy) > 0 {
		return nil, "InvalidParameterException", "Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again."
	}
	if req.LaunchType != "" && req.LaunchType != "FARGATE" {
		return nil, "InvalidParameterException", "ecstest runs only FARGATE tasks, got launch type " + req.LaunchType
	}
	for _, it := range req.CapacityProviderStrategy {
		if it.CapacityProvider != "FARGATE" && it.CapacityProvider != "FARGATE_SPOT" {
			return nil, "InvalidParameterException", "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again."
		}
		if it.Weight < 0 || it.Weight > 1000 || it.Base < 0 || it.Base > 100000 {
			return nil, "InvalidParameterException", "capacity provider weight must be 0..1000 and base 0..100000."
		}
	}
	nc := req.NetworkConfiguration
	if nc == nil || nc.AwsvpcConfiguration == nil || len(nc.AwsvpcConfiguration.Subnets) == 0 {
		return nil, "InvalidParameterException", "Network Configuration must be provided when networkMode 'awsvpc' is specified."
	}
	switch nc.AwsvpcConfiguration.AssignPublicIP {
	case "", "ENABLED", "DISABLED":
	default:
		return nil, "InvalidParameterException", "assignPublicIp must be ENABLED or DISABLED."
	}
	if len(nc.AwsvpcConfiguration.Subnets) > 16 || len(nc.AwsvpcConfiguration.SecurityGroups) > 5 {
		return nil, "InvalidParameterException", "at most 16 subnets and 5 security groups are allowed."
	}
	if req.StartedBy != "" && !validStartedBy(req.StartedBy) {
		return nil, "InvalidParameterException", "startedBy: up to 36 letters (uppercase and lowercase), numbers, hyphens (-), forward slash (/), and underscores (_) are allowed."
	}
	if len(req.Tags) > 50 {
		return nil, "InvalidParameterException", "a resource can have at most 50 tags."
	}
	tags := map[string]string{}
	for _, tg := range req.Tags {
		if tg.Key == "" || len([]rune(tg.Key)) > 128 || len([]rune(tg.Value)) > 256 || !validTagText(tg.Key) || !validTagText(tg.Value) {
			return nil, "InvalidParameterException", fmt.Sprintf("The following supplied tag is not valid: %q=%q. Tag keys (1-128) and values (0-256) may contain letters, numbers, spaces and + - = . _ : / @.", tg.Key, tg.Value)
		}
		tags[tg.Key] = tg.Value
	}
	env := map[string]string{}
	var command []string
	if req.Overrides != nil {
		b, _ := json.Marshal(req.Overrides)
		if len(b) > 8192 {
			return nil, "InvalidParameterException", fmt.Sprintf("Container Overrides length must be at most 8192, was %d.", len(b))
		}
		for _, co := range req.Overrides.ContainerOverrides {
			if co.Name != s.opts.Container {
				return nil, "InvalidParameterException", fmt.Sprintf("Override for container named %s is not a container in the TaskDefinition.", co.Name)
			}
			for _, kv := range co.Environment {
				if kv.Name == "" {
					return nil, "InvalidParameterException", "environment variable names must not be empty."
				}
				env[kv.Name] = kv.Value
			}
			if co.Command != nil {
				command = co.Command
			}
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, "ServerException", "ecstest server closed"
	}
	if req.ClientToken != "" {
		if prev, ok := s.tokens[req.ClientToken]; ok {
			return runTaskOutput(s, prev, nil), "", ""
		}
	}
	for _, rule := range s.failRules {
		if rule.left > 0 && (rule.match == nil || rule.match(req)) {
			rule.left--
			return map[string]any{"tasks": []wireTask{}, "failures": []failure{{Arn: tdArn, Reason: rule.reason}}}, "", ""
		}
	}
	var created []*task
	for i := 0; i < req.Count; i++ {
		id := newID()
		t := &task{
			Task: Task{
				ARN:              fmt.Sprintf("arn:aws:ecs:%s:%s:task/%s/%s", s.opts.Region, s.opts.Account, s.opts.Cluster, id),
				ID:               id,
				Family:           family,
				StartedBy:        req.StartedBy,
				Group:            req.Group,
				CapacityProvider: req.Provider(),
				LastStatus:       Provisioning,
				DesiredStatus:    Running,
				Env:              env,
				Tags:             tags,
				Subnets:          nc.AwsvpcConfiguration.Subnets,
				SecurityGroups:   nc.AwsvpcConfiguration.SecurityGroups,
				AssignPublicIP:   nc.AwsvpcConfiguration.AssignPublicIP,
				Created:          time.Now(),
				LogPath:          filepath.Join(s.opts.LogDir, id+".log"),
			},
			req:     req,
			command: command,
			version: 1,
			stop:    make(chan struct{}),
			kill:    make(chan struct{}),
			done:    make(chan struct{}),
		}
		if t.Group == "" {
			t.Group = "family:" + family
		}
		t.Task.Family = family
		t.req.TaskDefinition = tdArn
		s.tasks = append(s.tasks, t)
		s.byArn[t.ARN] = t
		s.active++
		s.maxActive = max(s.maxActive, s.active)
		created = append(created, t)
		s.wg.Add(1)
		go s.run(t)
	}
	if req.ClientToken != "" {
		s.tokens[req.ClientToken] = created
	}
	return runTaskOutput(s, created, nil), "", ""
}

func runTaskOutput(s *Server, ts []*task, f []failure) map[string]any {
	out := make([]wireTask, 0, len(ts))
	for _, t := range ts {
		out = append(out, s.wire(t, true))
	}
	if f == nil {
		f = []failure{}
	}
	return map[string]any{"tasks": out, "failures": f}
}

func epoch(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMilli()) / 1000
}

// wire renders a task. Caller holds s.mu.
func (s *Server) wire(t *task, withTags bool) wireTask {
	env := make([]kvPair, 0, len(t.Env))
	for k, v := range t.Env {
		env = append(env, kvPair{k, v})
	}
	sort.Slice(env, func(i, j int) bool { return env[i].Name < env[j].Name })
	co := containerOverride{Name: s.opts.Container, Command: t.command, Environment: env}
	cstatus := t.LastStatus
	if cstatus == Provisioning {
		cstatus = Pending
	}
	w := wireTask{
		TaskArn:              t.ARN,
		ClusterArn:           s.ClusterARN(),
		TaskDefinitionArn:    t.req.TaskDefinition,
		LastStatus:           t.LastStatus,
		DesiredStatus:        t.DesiredStatus,
		LaunchType:           "FARGATE",
		CapacityProviderName: t.CapacityProvider,
		PlatformVersion:      "1.4.0",
		StartedBy:            t.StartedBy,
		Group:                t.Group,
		CreatedAt:            epoch(t.Created),
		StartedAt:            epoch(t.Started),
		StoppingAt:           epoch(t.Stopping),
		StoppedAt:            epoch(t.Ended),
		StopCode:             t.StopCode,
		StoppedReason:        t.StoppedReason,
		Overrides:            taskOverride{ContainerOverrides: []containerOverride{co}},
		Containers: []wireContainer{{
			ContainerArn: fmt.Sprintf("arn:aws:ecs:%s:%s:container/%s/%s/%s", s.opts.Region, s.opts.Account, s.opts.Cluster, t.ID, s.opts.Container),
			TaskArn:      t.ARN, Name: s.opts.Container, LastStatus: cstatus, ExitCode: t.ExitCode,
		}},
		Version: t.version,
	}
	if t.LastStatus != Stopped {
		w.StopCode, w.StoppedReason = "", ""
		if t.DesiredStatus == Stopped {
			w.StopCode, w.StoppedReason = t.StopCode, t.StoppedReason
		}
	}
	if withTags {
		keys := make([]string, 0, len(t.Tags))
		for k := range t.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			w.Tags = append(w.Tags, tag{k, t.Tags[k]})
		}
	}
	return w
}

func (s *Server) listTasks(req listTasksRequest) (any, string, string) {
	if c, m := s.checkCluster(req.Cluster); c != "" {
		return nil, c, m
	}
	if req.MaxResults == 0 {
		req.MaxResults = 100
	}
	if req.MaxResults < 1 || req.MaxResults > 100 {
		return nil, "InvalidParameterException", "maxResults must be between 1 and 100."
	}
	if req.DesiredStatus == "" {
		req.DesiredStatus = Running
	}
	if req.DesiredStatus != Running && req.DesiredStatus != Stopped && req.DesiredStatus != Pending {
		return nil, "InvalidParameterException", "desiredStatus must be RUNNING, PENDING or STOPPED."
	}
	start := 0
	if req.NextToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(req.NextToken)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 {
			return nil, "InvalidParameterException", "Invalid nextToken."
		}
		start = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var arns []string
	for _, t := range s.tasks {
		desired := t.DesiredStatus
		if req.DesiredStatus == Pending {
			// PENDING lists tasks that are not running yet.
			if desired != Running || (t.LastStatus != Provisioning && t.LastStatus != Pending) {
				continue
			}
		} else if desired != req.DesiredStatus {
			continue
		}
		if req.Family != "" && t.Family != req.Family {
			continue
		}
		if req.StartedBy != "" && t.StartedBy != req.StartedBy {
			continue
		}
		if req.LaunchType != "" && req.LaunchType != "FARGATE" {
			continue
		}
		arns = append(arns, t.ARN)
	}
	out := map[string]any{"taskArns": []string{}}
	if start < len(arns) {
		end := min(len(arns), start+req.MaxResults)
		out["taskArns"] = arns[start:end]
		if end < len(arns) {
			out["nextToken"] = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
		}
	}
	return out, "", ""
}

func (s *Server) describeTasks(req describeTasksRequest) (any, string, string) {
	if c, m := s.checkCluster(req.Cluster); c != "" {
		return nil, c, m
	}
	if len(req.Tasks) == 0 || len(req.Tasks) > 100 {
		return nil, "InvalidParameterException", "Tasks cannot be empty and can hold at most 100 tasks."
	}
	withTags := false
	for _, inc := range req.Include {
		withTags = withTags || inc == "TAGS"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tasks, fails := []wireTask{}, []failure{}
	for _, a := range req.Tasks {
		t := s.lookup(a)
		if t == nil {
			fails = append(fails, failure{Arn: a, Reason: "MISSING"})
			continue
		}
		tasks = append(tasks, s.wire(t, withTags))
	}
	return map[string]any{"tasks": tasks, "failures": fails}, "", ""
}

func (s *Server) stopTask(req stopTaskRequest) (any, string, string) {
	if c, m := s.checkCluster(req.Cluster); c != "" {
		return nil, c, m
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.lookup(req.Task)
	if t == nil {
		return nil, "InvalidParameterException", "The referenced task was not found."
	}
	reason := req.Reason
	if reason == "" {
		reason = "Task stopped by user"
	}
	s.requestStop(t, "UserInitiated", reason)
	return map[string]any{"task": s.wire(t, false)}, "", ""
}

// setStatus changes a task's last status. Caller holds s.mu.
func (s *Server) setStatus(t *task, status string) {
	if t.LastStatus == status {
		return
	}
	if status == Stopped && t.LastStatus != Stopped {
		s.active--
	}
	t.LastStatus = status
	t.version++
}

// run drives one task through its lifecycle.
func (s *Server) run(t *task) {
	defer s.wg.Done()
	defer close(t.done)
	finish := func(exit *int, stopCode, reason string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		t.ExitCode = exit
		t.DesiredStatus = Stopped
		if t.StopCode == "" {
			t.StopCode, t.StoppedReason = stopCode, reason
		}
		t.Ended = time.Now()
		s.setStatus(t, Stopped)
	}
	if d := s.opts.ProvisioningDelay; d > 0 {
		select {
		case <-t.stop:
			finish(nil, "UserInitiated", "Task stopped before it started")
			return
		case <-t.kill:
			finish(nil, "TaskFailedToStart", "Task killed before it started")
			return
		case <-time.After(d):
		}
	}
	s.mu.Lock()
	if t.stopped || t.killed {
		s.mu.Unlock()
		finish(nil, "UserInitiated", "Task stopped before it started")
		return
	}
	s.setStatus(t, Pending)
	env := s.opts.Env
	if env == nil {
		env = os.Environ()
	}
	env = append([]string(nil), env...)
	for k, v := range t.Env {
		env = append(env, k+"="+v)
	}
	snap := t.snapshot()
	s.mu.Unlock()

	if s.opts.Func != nil {
		s.runFunc(t, snap, finish)
		return
	}
	argv := append([]string(nil), s.opts.Entrypoint...)
	if t.command != nil {
		argv = append(argv, t.command...)
	} else {
		argv = append(argv, s.opts.Command...)
	}
	if len(argv) == 0 {
		finish(nil, "TaskFailedToStart", "CannotStartContainerError: no command")
		return
	}
	logf, err := os.Create(t.LogPath)
	if err != nil {
		finish(nil, "TaskFailedToStart", "CannotStartContainerError: "+err.Error())
		return
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		finish(nil, "TaskFailedToStart", "CannotStartContainerError: "+err.Error())
		return
	}
	pgid := cmd.Process.Pid
	s.mu.Lock()
	t.Started = time.Now()
	s.setStatus(t, Running)
	s.mu.Unlock()

	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stopCh, killCh := t.stop, t.kill
	var killTimer <-chan time.Time
	for done := false; !done; {
		select {
		case <-exited:
			done = true
		case <-stopCh:
			stopCh = nil
			s.mu.Lock()
			s.setStatus(t, Deactivating)
			s.mu.Unlock()
			_ = cmd.Process.Signal(syscall.SIGTERM)
			killTimer = time.After(s.opts.StopTimeout)
		case <-killTimer:
			killTimer = nil
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		case <-killCh:
			killCh = nil
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}
	// Container teardown: nothing of the task outlives it.
	leaked := syscall.Kill(-pgid, 0) == nil
	if leaked {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	code := exitCode(cmd.ProcessState)
	s.mu.Lock()
	t.Leaked = leaked
	s.mu.Unlock()
	finish(&code, "EssentialContainerExited", "Essential container in task exited")
}

func (s *Server) runFunc(t *task, snap Task, finish func(*int, string, string)) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.mu.Lock()
	t.Started = time.Now()
	s.setStatus(t, Running)
	s.mu.Unlock()
	result := make(chan int, 1)
	go func() { result <- s.opts.Func(ctx, snap) }()
	stopCh, killCh := t.stop, t.kill
	var killTimer <-chan time.Time
	for {
		select {
		case code := <-result:
			finish(&code, "EssentialContainerExited", "Essential container in task exited")
			return
		case <-stopCh:
			stopCh = nil
			s.mu.Lock()
			s.setStatus(t, Deactivating)
			s.mu.Unlock()
			cancel()
			killTimer = time.After(s.opts.StopTimeout)
		case <-killTimer:
			code := 128 + int(syscall.SIGKILL)
			finish(&code, "EssentialContainerExited", "Essential container in task exited")
			return
		case <-killCh:
			cancel()
			code := 128 + int(syscall.SIGKILL)
			finish(&code, "EssentialContainerExited", "Essential container in task exited")
			return
		}
	}
}

// exitCode is the exit status as Docker reports it: 128+signal when the
// process was killed by a signal.
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
