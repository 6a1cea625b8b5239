package awserr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/rs/zerolog"
)

func apiErr(code string) error {
	return fmt.Errorf("operation error S3: ListObjectsV2: %w", &smithy.GenericAPIError{Code: code, Message: "m"})
}

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cases := []struct {
		err    error
		want   Kind
		config bool
	}{
		{nil, Other, false},
		{context.Canceled, Other, false},
		{errors.New("boom"), Other, false},
		{apiErr("SignatureDoesNotMatch"), Signature, true},
		{apiErr("InvalidAccessKeyId"), AccessKey, true},
		{apiErr("InvalidClientTokenId"), AccessKey, true}, // SQS
		{apiErr("UnrecognizedClientException"), AccessKey, true},
		{apiErr("ExpiredToken"), Token, true},
		{apiErr("AccessDenied"), Denied, true},
		{apiErr("AccessDeniedException"), Denied, true},
		{apiErr("NoSuchBucket"), NoBucket, true},
		{apiErr("AWS.SimpleQueueService.NonExistentQueue"), NoQueue, true},
		{apiErr("QueueDoesNotExist"), NoQueue, true},
		{apiErr("ClusterNotFoundException"), NoCluster, true},
		{apiErr("NoSuchKey"), Other, false},
		{apiErr("SlowDown"), Other, false},
		{fmt.Errorf("get: %w", refused), Unreachable, false},
		{fmt.Errorf("x: %w", &net.DNSError{Err: "no such host", Name: "nowhere.invalid"}), Unreachable, false},
		{fmt.Errorf("sign: %w", ErrNoCredentials), NoCredentials, true},
	}
	for _, c := range cases {
		if got := Classify(c.err); got != c.want || got.Config() != c.config || IsConfig(c.err) != c.config {
			t.Errorf("Classify(%v) = %v (config %v), want %v (config %v)", c.err, got, got.Config(), c.want, c.config)
		}
	}
	if Code(apiErr("NoSuchBucket")) != "NoSuchBucket" || Code(errors.New("x")) != "" {
		t.Error("Code")
	}
}

// TestWatchdog checks the rules with explicit times (check), not sleeps:
// a run of configuration failures fires after FailAfter; a success on the
// same target ends the run; a success elsewhere does not; other errors
// change nothing.
func TestWatchdog(t *testing.T) {
	var logs strings.Builder
	w, ctx := NewWatchdog(context.Background(), time.Hour, zerolog.New(&logs))
	defer w.Stop()
	denied := apiErr("AccessDenied")

	w.Report("bucket b", denied)
	w.Report("queue q", nil) // another target: the bucket still fails
	w.Report("bucket b", apiErr("SlowDown"))
	w.mu.Lock()
	since := w.runs["bucket b"].since
	w.mu.Unlock()
	w.check(since.Add(59 * time.Minute))
	if w.Err() != nil || ctx.Err() != nil {
		t.Fatal("fired before FailAfter")
	}
	if !strings.Contains(logs.String(), `"level":"error"`) || !strings.Contains(logs.String(), "AccessDenied") {
		t.Errorf("the failure was not logged at error level: %s", logs.String())
	}

	w.Report("bucket b", nil) // recovered: the run ends
	w.check(since.Add(2 * time.Hour))
	if w.Err() != nil {
		t.Fatal("fired after a success")
	}

	w.Report("bucket b", denied)
	w.mu.Lock()
	since = w.runs["bucket b"].since
	w.mu.Unlock()
	w.check(since.Add(time.Hour))
	if err := w.Err(); err == nil || !errors.Is(err, denied) || !strings.Contains(err.Error(), "AUTH_FAIL_AFTER") {
		t.Fatalf("Err = %v", err)
	}
	if ctx.Err() == nil || !errors.Is(context.Cause(ctx), denied) {
		t.Fatalf("context not cancelled with the cause: %v", context.Cause(ctx))
	}
}

// TestWatchdogFires lets the timer fire for real (a short FailAfter, a
// generous wait).
func TestWatchdogFires(t *testing.T) {
	w, ctx := NewWatchdog(context.Background(), 20*time.Millisecond, zerolog.Nop())
	defer w.Stop()
	w.Report("queue q", apiErr("InvalidClientTokenId"))
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("the watchdog did not fire")
	}
	if w.Err() == nil {
		t.Fatal("no error after firing")
	}
}
