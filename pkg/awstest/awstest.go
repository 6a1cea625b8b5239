// Package awstest starts real S3 and SQS servers for tests: MinIO (pinned,
// installed with `go install` when missing) and local-aws-sqs (pinned npm
// package, installed into the cache dir), on free loopback ports with
// temporary data. It creates a bucket, the work and results queues with
// their dead-letter queues, and relays MinIO's bucket notifications to SQS
// the way S3 → SQS works on AWS: ObjectCreated on TODO/*.mp4 to the work
// queue, on DONE/ to the results queue, each message body being the event
// JSON {"Records": […]} with URL-encoded keys, the records exactly as MinIO
// writes them (eventName "s3:ObjectCreated:Put", where S3 writes
// "ObjectCreated:Put").
//
// Use Start(t) for an environment of one test, or Shared(t) for one
// environment shared by a package's tests (with awstest.Main in TestMain
// stopping it), or New/Close outside tests (benchmarks). When a server
// cannot be installed or started, the test is skipped, or fails with
// CI=true.
package awstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	sqsqueue "github.com/hevc-encoder/hevc-encoder/pkg/queue/sqs"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
)

// Options tune New.
type Options struct {
	// Bucket is the bucket with notifications (default "hevc-encoder").
	Bucket string
	// MaxReceiveCount is the work and results queues' RedrivePolicy
	// maxReceiveCount (default 5).
	MaxReceiveCount int
	// VisibilityTimeout is the queues' default visibility timeout (default 30 s).
	VisibilityTimeout time.Duration
	// Logf receives progress lines (installs); default: discarded.
	Logf func(format string, args ...any)
}

// Env is a running MinIO + local-aws-sqs pair with the pipeline's bucket
// and queues.
type Env struct {
	Region    string
	AccessKey string
	SecretKey string

	S3Endpoint  string // http://127.0.0.1:<port>, path-style
	SQSEndpoint string // http://127.0.0.1:<port>
	Bucket      string

	WorkQueueURL      string
	WorkDLQURL        string
	ResultsQueueURL   string
	ResultsDLQURL     string
	MaxReceiveCount   int
	VisibilityTimeout time.Duration

	// S3 and SQS are raw SDK clients with the credentials above, for test
	// set-up and tampering.
	S3  *s3.Client
	SQS *sqs.Client

	dir      string
	minio    *process
	minioCmd *exec.Cmd
	sqsd     *process
	relay    *relay
	relaySv  *httptest.Server
	restore  []func()
	mu       sync.Mutex
	closed   bool
	seq      int
}

// New starts the servers and creates the bucket and queues. Close stops them.
func New(ctx context.Context, opts Options) (_ *Env, err error) {
	if opts.Bucket == "" {
		opts.Bucket = "hevc-encoder"
	}
	if opts.MaxReceiveCount <= 0 {
		opts.MaxReceiveCount = 5
	}
	if opts.VisibilityTimeout <= 0 {
		opts.VisibilityTimeout = 30 * time.Second
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	e := &Env{
		Region: "us-east-1", AccessKey: "awstest-key", SecretKey: "awstest-secret-key",
		Bucket: opts.Bucket, MaxReceiveCount: opts.MaxReceiveCount, VisibilityTimeout: opts.VisibilityTimeout,
	}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	removeStale()
	if e.dir, err = os.MkdirTemp("", "awstest-*"); err != nil {
		return nil, fmt.Errorf("awstest: temp dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, fmt.Errorf("awstest: %w", err)
	}

	// Binaries first (installs may take minutes, and run in parallel).
	var minioBin, sqsModules string
	var minioErr, sqsErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); minioBin, minioErr = MinioBinary(ctx, logf) }()
	go func() { defer wg.Done(); sqsModules, sqsErr = SQSServerDir(ctx, logf) }()
	wg.Wait()
	if err := errors.Join(minioErr, sqsErr); err != nil {
		return nil, fmt.Errorf("awstest: %w", err)
	}

	creds := credentials.NewStaticCredentialsProvider(e.AccessKey, e.SecretKey, "")
	if err := e.startSQS(ctx, sqsModules); err != nil {
		return nil, err
	}
	e.SQS = sqs.New(sqs.Options{Region: e.Region, Credentials: creds, BaseEndpoint: aws.String(e.SQSEndpoint),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 10; o.MaxBackoff = time.Second })})
	if e.WorkQueueURL, e.WorkDLQURL, err = e.createQueuePair(ctx, "work", e.MaxReceiveCount, e.VisibilityTimeout); err != nil {
		return nil, err
	}
	if e.ResultsQueueURL, e.ResultsDLQURL, err = e.createQueuePair(ctx, "results", e.MaxReceiveCount, e.VisibilityTimeout); err != nil {
		return nil, err
	}

	e.relay = &relay{sqs: e.SQS, routes: map[string]string{"/work": e.WorkQueueURL, "/results": e.ResultsQueueURL}}
	e.relaySv = httptest.NewServer(e.relay)

	if err := e.startMinio(ctx, minioBin); err != nil {
		return nil, err
	}
	e.S3 = s3.New(s3.Options{Region: e.Region, Credentials: creds, BaseEndpoint: aws.String(e.S3Endpoint), UsePathStyle: true,
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 10; o.MaxBackoff = time.Second })})
	if _, err := e.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &e.Bucket}); err != nil {
		return nil, fmt.Errorf("awstest: create bucket %s: %w", e.Bucket, err)
	}
	_, err = e.S3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: &e.Bucket,
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{
			// S3's suffix filter is case-sensitive and cameras write .MP4:
			// one rule per spelling, as terraform/ (work_suffixes) does.
			{
				Id:       aws.String("todo-to-work"),
				QueueArn: aws.String("arn:minio:sqs::WORK:webhook"),
				Events:   []s3types.Event{"s3:ObjectCreated:*"},
				Filter:   keyFilter("TODO/", ".mp4"),
			},
			{
				Id:       aws.String("todo-upper-to-work"),
				QueueArn: aws.String("arn:minio:sqs::WORK:webhook"),
				Events:   []s3types.Event{"s3:ObjectCreated:*"},
				Filter:   keyFilter("TODO/", ".MP4"),
			},
			{
				Id:       aws.String("done-to-results"),
				QueueArn: aws.String("arn:minio:sqs::RESULTS:webhook"),
				Events:   []s3types.Event{"s3:ObjectCreated:*"},
				Filter:   keyFilter("DONE/", ""),
			},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("awstest: bucket notifications: %w", err)
	}
	e.setenv()
	return e, nil
}

func keyFilter(prefix, suffix string) *s3types.NotificationConfigurationFilter {
	rules := []s3types.FilterRule{{Name: s3types.FilterRuleNamePrefix, Value: aws.String(prefix)}}
	if suffix != "" {
		rules = append(rules, s3types.FilterRule{Name: s3types.FilterRuleNameSuffix, Value: aws.String(suffix)})
	}
	return &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: rules}}
}

const sqsScript = `
const { createSqsServer } = require(process.env.AWSTEST_SQS_MODULE);
createSqsServer({
  port: Number(process.env.AWSTEST_SQS_PORT), hostname: "127.0.0.1",
  emulateQueueCreationLifecycle: false,
}).then(() => console.log("awstest: sqs ready"), (e) => { console.error(e); process.exit(1); });
process.on("SIGTERM", () => process.exit(0));
`

func (e *Env) startSQS(ctx context.Context, modules string) error {
	module, err := patchedSQSModule(modules)
	if err != nil {
		return fmt.Errorf("awstest: %w", err)
	}
	script := filepath.Join(e.dir, "sqs-server.js")
	if err := os.WriteFile(script, []byte(sqsScript), 0o644); err != nil {
		return fmt.Errorf("awstest: %w", err)
	}
	var last error
	for try := 0; try < 3; try++ { // a free port can be taken before we bind it
		port, err := FreePort()
		if err != nil {
			return fmt.Errorf("awstest: free port: %w", err)
		}
		cmd := exec.Command("node", script)
		cmd.Env = append(os.Environ(), "AWSTEST_SQS_MODULE="+module, "AWSTEST_SQS_PORT="+strconv.Itoa(port))
		p, err := startProcess("local-aws-sqs", cmd, filepath.Join(e.dir, "sqs.log"))
		if err != nil {
			return fmt.Errorf("awstest: %w", err)
		}
		endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
		if last = waitHTTP(ctx, p, endpoint+"/", 30*time.Second); last == nil {
			e.sqsd, e.SQSEndpoint = p, endpoint
			return nil
		}
		p.stop()
	}
	return fmt.Errorf("awstest: start local-aws-sqs: %w", last)
}

func (e *Env) startMinio(ctx context.Context, bin string) error {
	var last error
	for try := 0; try < 3; try++ {
		port, err1 := FreePort()
		console, err2 := FreePort()
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("awstest: free port: %w", err)
		}
		data := filepath.Join(e.dir, fmt.Sprintf("minio-data-%d", try))
		cmd := exec.Command(bin, "server", "--quiet",
			"--address", fmt.Sprintf("127.0.0.1:%d", port),
			"--console-address", fmt.Sprintf("127.0.0.1:%d", console), data)
		cmd.Env = append(os.Environ(),
			"MINIO_ROOT_USER="+e.AccessKey,
			"MINIO_ROOT_PASSWORD="+e.SecretKey,
			"MINIO_BROWSER=off",
			"MINIO_UPDATE=off",
			"MINIO_NOTIFY_WEBHOOK_ENABLE_WORK=on",
			"MINIO_NOTIFY_WEBHOOK_ENDPOINT_WORK="+e.relaySv.URL+"/work",
			"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_WORK="+filepath.Join(e.dir, "events-work"),
			"MINIO_NOTIFY_WEBHOOK_ENABLE_RESULTS=on",
			"MINIO_NOTIFY_WEBHOOK_ENDPOINT_RESULTS="+e.relaySv.URL+"/results",
			"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_RESULTS="+filepath.Join(e.dir, "events-results"),
		)
		p, err := startProcess("minio", cmd, filepath.Join(e.dir, "minio.log"))
		if err != nil {
			return fmt.Errorf("awstest: %w", err)
		}
		endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
		if last = waitHTTP(ctx, p, endpoint+"/minio/health/cluster", 60*time.Second); last == nil {
			e.minio, e.S3Endpoint = p, endpoint
			e.minioCmd = cmd // StartMinio starts it again alike (restart.go)
			return nil
		}
		p.stop()
	}
	return fmt.Errorf("awstest: start minio: %w", last)
}

// createQueuePair creates <name>-dlq and <name> with a RedrivePolicy.
func (e *Env) createQueuePair(ctx context.Context, name string, maxReceive int, visibility time.Duration) (string, string, error) {
	dlq, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq")})
	if err != nil {
		return "", "", fmt.Errorf("awstest: create queue %s-dlq: %w", name, err)
	}
	attrs, err := e.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: dlq.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", "", fmt.Errorf("awstest: ARN of %s-dlq: %w", name, err)
	}
	policy, _ := json.Marshal(map[string]string{
		"deadLetterTargetArn": attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)],
		"maxReceiveCount":     strconv.Itoa(maxReceive),
	})
	q, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(name),
		Attributes: map[string]string{
			string(sqstypes.QueueAttributeNameRedrivePolicy):     string(policy),
			string(sqstypes.QueueAttributeNameVisibilityTimeout): strconv.Itoa(int(max(1, visibility.Round(time.Second).Seconds()))),
		},
	})
	if err != nil {
		return "", "", fmt.Errorf("awstest: create queue %s: %w", name, err)
	}
	return aws.ToString(q.QueueUrl), aws.ToString(dlq.QueueUrl), nil
}

// setenv points the standard AWS credential chain of this process at the
// test servers' credentials; Close restores the previous values.
func (e *Env) setenv() {
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           e.AccessKey,
		"AWS_SECRET_ACCESS_KEY":       e.SecretKey,
		"AWS_REGION":                  e.Region,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
	} {
		old, had := os.LookupEnv(k)
		if v == "" {
			os.Unsetenv(k)
		} else {
			os.Setenv(k, v)
		}
		e.restore = append(e.restore, func() {
			if had {
				os.Setenv(k, old)
			} else {
				os.Unsetenv(k)
			}
		})
	}
}

// Environ is the environment (KEY=value) a service process needs to use
// this Env: credentials, region, STORAGE=s3 and QUEUE=sqs settings.
func (e *Env) Environ() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + e.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + e.SecretKey,
		"AWS_REGION=" + e.Region,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"STORAGE=s3",
		"S3_BUCKET=" + e.Bucket,
		"S3_ENDPOINT=" + e.S3Endpoint,
		"S3_PATH_STYLE=true",
		"QUEUE=sqs",
		"WORK_QUEUE_URL=" + e.WorkQueueURL,
		"RESULTS_QUEUE_URL=" + e.ResultsQueueURL,
		"AWS_ENDPOINT_URL_SQS=" + e.SQSEndpoint,
	}
}

// Relayed counts notifications forwarded to SQS, by route ("/work", "/results").
func (e *Env) Relayed(route string) int { return e.relay.count(route) }

// Dir is the Env's temporary directory (server data and logs).
func (e *Env) Dir() string { return e.dir }

// Close stops the servers and removes their data. Safe to call twice.
func (e *Env) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.closed = true
	for i := len(e.restore) - 1; i >= 0; i-- {
		e.restore[i]()
	}
	e.minio.stop()
	if e.relaySv != nil {
		e.relaySv.Close()
	}
	e.sqsd.stop()
	if e.dir != "" && os.Getenv("AWSTEST_KEEP") == "" {
		os.RemoveAll(e.dir)
	}
}

const ownerFile = "owner.pid"

// removeStale deletes the temporary dirs of Envs whose process died
// without Close (a killed test binary); their servers died with it.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "awstest-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
}

// Fail ends t on a harness error: Fatal when CI=true, else Skip.
func Fail(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%v", err)
	}
	t.Skipf("%v (with CI=true this is a failure)", err)
}

// Start starts an Env for t, stopped at t's cleanup.
func Start(t testing.TB, opts ...Options) *Env {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	e, err := New(context.Background(), o)
	if err != nil {
		Fail(t, err)
	}
	t.Cleanup(e.Close)
	return e
}

var shared struct {
	once sync.Once
	env  *Env
	err  error
}

// Shared returns one Env shared by every test of the package, started on
// first use with default Options. Call Main from TestMain to stop it; else
// the servers end with the test process. Tests that share it should use
// their own key prefixes, or the Scratch helpers.
func Shared(t testing.TB) *Env {
	t.Helper()
	shared.once.Do(func() {
		shared.env, shared.err = New(context.Background(), Options{Logf: func(f string, a ...any) {
			fmt.Fprintf(os.Stderr, f+"\n", a...)
		}})
	})
	if shared.err != nil {
		Fail(t, shared.err)
	}
	return shared.env
}

// Main runs the tests and stops the shared Env: func TestMain(m *testing.M) { awstest.Main(m) }.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run runs the tests, stops the shared Env and returns the exit code, for a
// TestMain that has more of its own to clean up before os.Exit.
func Run(m *testing.M) int {
	code := m.Run()
	if shared.env != nil {
		shared.env.Close()
	}
	return code
}

// StoreConfig is an s3 store Config for bucket on this Env (retries with
// short backoff to keep tests quick).
func (e *Env) StoreConfig(bucket string) s3store.Config {
	return s3store.Config{
		Bucket: bucket, Endpoint: e.S3Endpoint, Region: e.Region, PathStyle: true,
		MaxBackoff: 200 * time.Millisecond,
	}
}

// NewStore is an s3 Store on the Env's bucket (the one with notifications).
func (e *Env) NewStore(t testing.TB) *s3store.Store {
	t.Helper()
	s, err := s3store.New(context.Background(), e.StoreConfig(e.Bucket))
	if err != nil {
		t.Fatalf("awstest: s3 store: %v", err)
	}
	return s
}

// NewScratchStore is an s3 Store on a new empty bucket (no notifications),
// emptied and removed at t's cleanup.
func (e *Env) NewScratchStore(t testing.TB) *s3store.Store {
	t.Helper()
	bucket := e.ScratchBucket(t)
	s, err := s3store.New(context.Background(), e.StoreConfig(bucket))
	if err != nil {
		t.Fatalf("awstest: s3 store: %v", err)
	}
	return s
}

// ScratchBucket creates a new empty bucket, removed at t's cleanup.
func (e *Env) ScratchBucket(t testing.TB) string {
	t.Helper()
	bucket := "scratch-" + strconv.Itoa(e.next())
	ctx := context.Background()
	if _, err := e.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("awstest: create bucket %s: %v", bucket, err)
	}
	t.Cleanup(func() { e.removeBucket(bucket) })
	return bucket
}

func (e *Env) removeBucket(bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := s3.NewListObjectsV2Paginator(e.S3, &s3.ListObjectsV2Input{Bucket: &bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return
		}
		if len(page.Contents) == 0 {
			break
		}
		ids := make([]s3types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = s3types.ObjectIdentifier{Key: o.Key}
		}
		_, _ = e.S3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &bucket, Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
	}
	_, _ = e.S3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket})
}

func (e *Env) next() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	return e.seq
}

// QueueConfig is an sqs queue Config for url on this Env.
func (e *Env) QueueConfig(url string) sqsqueue.Config {
	return sqsqueue.Config{QueueURLOrName: url, Region: e.Region, Endpoint: e.SQSEndpoint, MaxBackoff: 200 * time.Millisecond}
}

func (e *Env) newQueue(t testing.TB, cfg sqsqueue.Config) *sqsqueue.Queue {
	t.Helper()
	q, err := sqsqueue.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("awstest: sqs queue: %v", err)
	}
	return q
}

// NewWorkQueue is the work queue (notifications of TODO/*.mp4).
func (e *Env) NewWorkQueue(t testing.TB) *sqsqueue.Queue {
	return e.newQueue(t, e.QueueConfig(e.WorkQueueURL))
}

// NewResultsQueue is the results queue (notifications of DONE/).
func (e *Env) NewResultsQueue(t testing.TB) *sqsqueue.Queue {
	return e.newQueue(t, e.QueueConfig(e.ResultsQueueURL))
}

// NewScratchQueue creates a new queue with its own DLQ (RedrivePolicy
// maxReceiveCount) and the given visibility timeout (whole seconds, at
// least 1), and returns it.
func (e *Env) NewScratchQueue(t testing.TB, visibility time.Duration, maxReceive int) *sqsqueue.Queue {
	t.Helper()
	if maxReceive <= 0 {
		maxReceive = e.MaxReceiveCount
	}
	url, _, err := e.createQueuePair(context.Background(), "scratch-"+strconv.Itoa(e.next()), maxReceive, visibility)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return e.newQueue(t, e.QueueConfig(url))
}

// Drain deletes every message that is visible in the queue at url now.
func (e *Env) Drain(ctx context.Context, url string) error {
	for {
		out, err := e.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
		if err != nil {
			return fmt.Errorf("awstest: drain %s: %w", url, err)
		}
		if len(out.Messages) == 0 {
			return nil
		}
		for _, m := range out.Messages {
			if _, err := e.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle}); err != nil {
				return fmt.Errorf("awstest: drain %s: %w", url, err)
			}
		}
	}
}
