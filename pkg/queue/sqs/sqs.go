// Package sqs is the queue.Queue (and queue.Redriver) adapter for Amazon SQS
// and servers speaking its JSON protocol, on aws-sdk-go-v2.
package sqs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/hevc-encoder/hevc-encoder/pkg/awsconf"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
)

const (
	// DefaultMaxAttempts is the SDK retryer's attempts per request.
	DefaultMaxAttempts = awsconf.DefaultMaxAttempts
	maxBatch           = 10
	maxBatchBytes      = 256 << 10 // SendMessageBatch payload limit (classic)
	maxWait            = 20 * time.Second
	sendRetries        = 4 // resends of entries that failed on the server side
)

// Config configures a Queue. Credentials and (unless Region is set) the
// region come from the standard AWS chain.
type Config struct {
	// QueueURLOrName is the queue's URL (https://sqs.<region>.amazonaws.com/<account>/<name>)
	// or its name (looked up with GetQueueUrl).
	QueueURLOrName string
	// DLQURLOrName is the dead-letter queue; empty: the RedrivePolicy's
	// deadLetterTargetArn, if any.
	DLQURLOrName string
	// NoDeadLetter skips the dead-letter lookup (GetQueueAttributes): for
	// hevc-processor, whose role may only heartbeat and delete its message.
	NoDeadLetter bool
	Region       string
	// Endpoint overrides the SQS endpoint; empty for AWS, or for a local
	// server whose queue URL (http://host:port/…) then gives the endpoint.
	// AWS_ENDPOINT_URL_SQS is honoured too.
	Endpoint string
	// VisibilityTimeout applies to received messages; 0: the queue's own.
	VisibilityTimeout time.Duration
	// MaxAttempts is the SDK standard retryer's attempts per request
	// (default 5); MaxBackoff caps its backoff (default 20 s).
	MaxAttempts int
	MaxBackoff  time.Duration
	// HTTPClient replaces the SDK's HTTP client (tests).
	HTTPClient aws.HTTPClient
}

// Queue is the SQS queue.Queue.
type Queue struct {
	client     *sqs.Client
	url        string
	dlq        string
	visibility time.Duration
}

var (
	_ queue.Queue    = (*Queue)(nil)
	_ queue.Redriver = (*Queue)(nil)
)

// New resolves the queue (and its dead-letter queue) and returns the Queue.
func New(ctx context.Context, cfg Config) (*Queue, error) {
	if cfg.QueueURLOrName == "" {
		return nil, errors.New("sqs queue: queue URL or name is required")
	}
	client, err := NewClient(ctx, cfg)
	if err != nil {
		return nil, err
	}
	q := &Queue{client: client, visibility: cfg.VisibilityTimeout}
	if q.url, err = resolve(ctx, client, cfg.QueueURLOrName, ""); err != nil {
		return nil, err
	}
	if cfg.DLQURLOrName != "" {
		if q.dlq, err = resolve(ctx, client, cfg.DLQURLOrName, ""); err != nil {
			return nil, err
		}
	} else if !cfg.NoDeadLetter {
		if q.dlq, err = q.dlqFromPolicy(ctx); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// Check asks the server once, without retries, whether the queue exists
// and these credentials may use it: GetQueueUrl for a name, then
// GetQueueAttributes (QueueArn). The error is the SDK's, for
// awserr.Classify.
func Check(ctx context.Context, cfg Config) error {
	if cfg.QueueURLOrName == "" {
		return errors.New("sqs queue: queue URL or name is required")
	}
	cfg.MaxAttempts = 1
	client, err := NewClient(ctx, cfg)
	if err != nil {
		return err
	}
	url, err := resolve(ctx, client, cfg.QueueURLOrName, "")
	if err != nil {
		return err
	}
	_, err = client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	return err
}

// NewClient builds the SDK client that New uses.
func NewClient(ctx context.Context, cfg Config) (*sqs.Client, error) {
	awsCfg, err := awsconf.Load(ctx, awsconf.Options{Region: cfg.Region, MaxAttempts: cfg.MaxAttempts, MaxBackoff: cfg.MaxBackoff, HTTPClient: cfg.HTTPClient})
	if err != nil {
		return nil, fmt.Errorf("sqs queue: load AWS config: %w", err)
	}
	if awsCfg.Region == "" {
		if r := regionFromURL(cfg.QueueURLOrName); r != "" {
			awsCfg.Region = r
		} else if cfg.Endpoint != "" {
			awsCfg.Region = "us-east-1"
		} else {
			return nil, errors.New("sqs queue: no AWS region (set AWS_REGION)")
		}
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = localEndpoint(cfg.QueueURLOrName)
	}
	return sqs.NewFromConfig(awsCfg, func(o *sqs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// localEndpoint is the scheme and host of a queue URL that is not on AWS
// (a local server: its queue URL names its endpoint), else "".
func localEndpoint(queueURL string) string {
	if !isURL(queueURL) {
		return ""
	}
	u, err := url.Parse(queueURL)
	if err != nil || u.Host == "" || strings.HasSuffix(u.Hostname(), ".amazonaws.com") || strings.HasSuffix(u.Hostname(), ".amazonaws.com.cn") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// regionFromURL reads the region of https://sqs.<region>.amazonaws.com/….
func regionFromURL(u string) string {
	rest, ok := strings.CutPrefix(u, "https://sqs.")
	if !ok {
		return ""
	}
	region, _, ok := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	return region
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

func resolve(ctx context.Context, client *sqs.Client, urlOrName, owner string) (string, error) {
	if isURL(urlOrName) {
		return urlOrName, nil
	}
	in := &sqs.GetQueueUrlInput{QueueName: &urlOrName}
	if owner != "" {
		in.QueueOwnerAWSAccountId = &owner
	}
	out, err := client.GetQueueUrl(ctx, in)
	if err != nil {
		return "", fmt.Errorf("sqs queue: URL of queue %q: %w", urlOrName, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// dlqFromPolicy finds the dead-letter queue named by the RedrivePolicy.
func (q *Queue) dlqFromPolicy(ctx context.Context) (string, error) {
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       &q.url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy},
	})
	if err != nil {
		return "", fmt.Errorf("sqs queue %s: read RedrivePolicy: %w", q.url, err)
	}
	raw := out.Attributes[string(types.QueueAttributeNameRedrivePolicy)]
	if raw == "" {
		return "", nil
	}
	var policy struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	}
	if err := json.Unmarshal([]byte(raw), &policy); err != nil {
		return "", fmt.Errorf("sqs queue %s: parse RedrivePolicy %q: %w", q.url, raw, err)
	}
	// arn:aws:sqs:<region>:<account>:<name>
	f := strings.Split(policy.DeadLetterTargetArn, ":")
	if len(f) != 6 || f[2] != "sqs" {
		return "", fmt.Errorf("sqs queue %s: RedrivePolicy has no usable deadLetterTargetArn: %q", q.url, raw)
	}
	return resolve(ctx, q.client, f[5], f[4])
}

// Name is the queue URL.
func (q *Queue) Name() string { return q.url }

// DeadLetterURL is the dead-letter queue's URL, "" without one.
func (q *Queue) DeadLetterURL() string { return q.dlq }

// Client exposes the SDK client (for tests and tools).
func (q *Queue) Client() *sqs.Client { return q.client }

// Receive long-polls for up to max (1..10) messages, waiting at most wait
// (capped at SQS's 20 s).
func (q *Queue) Receive(ctx context.Context, n int, wait time.Duration) ([]queue.Message, error) {
	return receive(ctx, q.client, q.url, n, wait, q.visibility)
}

func receive(ctx context.Context, client *sqs.Client, url string, n int, wait, visibility time.Duration) ([]queue.Message, error) {
	n = min(maxBatch, max(1, n))
	wait = min(maxWait, max(0, wait))
	in := &sqs.ReceiveMessageInput{
		QueueUrl:                    &url,
		MaxNumberOfMessages:         int32(n),
		WaitTimeSeconds:             int32(math.Ceil(wait.Seconds())),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp},
		// The deprecated spelling too: SQS accepts both, and some local
		// servers (local-aws-sqs) read only this one.
		//lint:ignore SA1019 kept on purpose for servers that read only the old name
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeName(types.MessageSystemAttributeNameApproximateReceiveCount), types.QueueAttributeName(types.MessageSystemAttributeNameSentTimestamp)},
	}
	if visibility > 0 {
		in.VisibilityTimeout = seconds(visibility)
	}
	out, err := client.ReceiveMessage(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("sqs receive from %s: %w", url, err)
	}
	msgs := make([]queue.Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		n, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
		var sent time.Time
		if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil && ms > 0 {
			sent = time.UnixMilli(ms) // epoch milliseconds
		}
		msgs = append(msgs, queue.Message{
			ID:           aws.ToString(m.MessageId),
			Body:         aws.ToString(m.Body),
			Receipt:      aws.ToString(m.ReceiptHandle),
			ReceiveCount: n,
			Sent:         sent,
		})
	}
	return msgs, nil
}

// seconds rounds d up to whole seconds (SQS's unit).
func seconds(d time.Duration) int32 {
	return int32(math.Ceil(d.Seconds()))
}

// Delete deletes one received message.
func (q *Queue) Delete(ctx context.Context, receipt string) error {
	if _, err := q.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &q.url, ReceiptHandle: &receipt}); err != nil {
		return fmt.Errorf("sqs delete from %s: %w", q.url, err)
	}
	return nil
}

// DeleteBatch deletes received messages, ten per request.
func (q *Queue) DeleteBatch(ctx context.Context, receipts ...string) error {
	return deleteBatch(ctx, q.client, q.url, receipts)
}

func deleteBatch(ctx context.Context, client *sqs.Client, url string, receipts []string) error {
	var errs []error
	for start := 0; start < len(receipts); start += maxBatch {
		chunk := receipts[start:min(start+maxBatch, len(receipts))]
		entries := make([]types.DeleteMessageBatchRequestEntry, len(chunk))
		for i, r := range chunk {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(r)}
		}
		out, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries})
		if err != nil {
			return fmt.Errorf("sqs delete batch from %s: %w", url, err)
		}
		for _, f := range out.Failed {
			errs = append(errs, fmt.Errorf("sqs delete batch from %s: entry %s: %s: %s", url, aws.ToString(f.Id), aws.ToString(f.Code), aws.ToString(f.Message)))
		}
	}
	return errors.Join(errs...)
}

// ChangeVisibility hides the message for timeout from now (0: visible now).
func (q *Queue) ChangeVisibility(ctx context.Context, receipt string, timeout time.Duration) error {
	_, err := q.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: &q.url, ReceiptHandle: &receipt, VisibilityTimeout: seconds(max(0, timeout)),
	})
	if err != nil {
		return fmt.Errorf("sqs change visibility on %s: %w", q.url, err)
	}
	return nil
}

// Send enqueues bodies with SendMessageBatch, ten (and at most 256 KiB) per
// request. Entries that fail on the server side are resent with backoff; the
// error names those that could not be sent.
func (q *Queue) Send(ctx context.Context, bodies ...string) error {
	_, err := sendBatch(ctx, q.client, q.url, bodies)
	return err
}

// sendBatch sends bodies and reports, per body, whether it was sent.
func sendBatch(ctx context.Context, client *sqs.Client, url string, bodies []string) ([]bool, error) {
	sent := make([]bool, len(bodies))
	var errs []error
	for start := 0; start < len(bodies); {
		end, size := start, 0
		for end < len(bodies) && end-start < maxBatch && (end == start || size+len(bodies[end]) <= maxBatchBytes) {
			size += len(bodies[end])
			end++
		}
		pending := make([]int, 0, end-start)
		for i := start; i < end; i++ {
			pending = append(pending, i)
		}
		for attempt := 0; len(pending) > 0; attempt++ {
			entries := make([]types.SendMessageBatchRequestEntry, len(pending))
			for j, i := range pending {
				entries[j] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(bodies[i])}
			}
			out, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries})
			if err != nil {
				return sent, errors.Join(append(errs, fmt.Errorf("sqs send batch to %s: %w", url, err))...)
			}
			for _, ok := range out.Successful {
				if i, err := strconv.Atoi(aws.ToString(ok.Id)); err == nil && i >= 0 && i < len(bodies) {
					sent[i] = true
				}
			}
			var retry []int
			for _, f := range out.Failed {
				i, err := strconv.Atoi(aws.ToString(f.Id))
				if err != nil || i < 0 || i >= len(bodies) {
					continue
				}
				if f.SenderFault || attempt >= sendRetries {
					errs = append(errs, fmt.Errorf("sqs send to %s: message %d: %s: %s", url, i, aws.ToString(f.Code), aws.ToString(f.Message)))
					continue
				}
				retry = append(retry, i)
			}
			pending = retry
			if len(pending) > 0 {
				select {
				case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
				case <-ctx.Done():
					return sent, errors.Join(append(errs, fmt.Errorf("sqs send to %s: %w", url, ctx.Err()))...)
				}
			}
		}
		start = end
	}
	return sent, errors.Join(errs...)
}

// Depth reports the approximate numbers of visible and in-flight messages.
func (q *Queue) Depth(ctx context.Context) (queue.Depth, error) {
	return depth(ctx, q.client, q.url)
}

func depth(ctx context.Context, client *sqs.Client, url string) (queue.Depth, error) {
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &url,
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return queue.Depth{}, fmt.Errorf("sqs depth of %s: %w", url, err)
	}
	visible, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	inFlight, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	delayed, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesDelayed)])
	return queue.Depth{Visible: visible, InFlight: inFlight, Delayed: delayed}, nil
}

// ErrNoDeadLetterQueue is returned by Redrive and DeadLetterDepth on a queue
// without a dead-letter queue.
var ErrNoDeadLetterQueue = errors.New("queue has no dead-letter queue")

// DeadLetterDepth is the Depth of the dead-letter queue.
func (q *Queue) DeadLetterDepth(ctx context.Context) (queue.Depth, error) {
	if q.dlq == "" {
		return queue.Depth{}, fmt.Errorf("sqs %s: %w", q.url, ErrNoDeadLetterQueue)
	}
	return depth(ctx, q.client, q.dlq)
}

// Redrive moves up to limit messages (limit <= 0: all that are visible) from the
// dead-letter queue back to this queue: receive, send, then delete what was
// sent. A message is never deleted from the DLQ before it is on the queue;
// a crash in between leaves a duplicate, never a loss.
func (q *Queue) Redrive(ctx context.Context, limit int) (int, error) {
	if q.dlq == "" {
		return 0, fmt.Errorf("sqs %s: %w", q.url, ErrNoDeadLetterQueue)
	}
	moved := 0
	for limit <= 0 || moved < limit {
		n := maxBatch
		if limit > 0 {
			n = min(n, limit-moved)
		}
		msgs, err := receive(ctx, q.client, q.dlq, n, time.Second, 30*time.Second)
		if err != nil {
			return moved, fmt.Errorf("sqs redrive %s → %s: %w", q.dlq, q.url, err)
		}
		if len(msgs) == 0 {
			return moved, nil
		}
		bodies := make([]string, len(msgs))
		for i, m := range msgs {
			bodies[i] = m.Body
		}
		sent, sendErr := sendBatch(ctx, q.client, q.url, bodies)
		var done []string
		for i, ok := range sent {
			if ok {
				done = append(done, msgs[i].Receipt)
			}
		}
		if err := deleteBatch(ctx, q.client, q.dlq, done); err != nil {
			return moved, fmt.Errorf("sqs redrive %s → %s: %w", q.dlq, q.url, err)
		}
		moved += len(done)
		if sendErr != nil {
			return moved, fmt.Errorf("sqs redrive %s → %s: %w", q.dlq, q.url, sendErr)
		}
	}
	return moved, nil
}
