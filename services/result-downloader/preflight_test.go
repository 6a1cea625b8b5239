package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/adapters/preflighttest"
	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
)

// TestPreflightRefusesMisconfiguration: result-downloader (the service and
// `process`), run with each of our own mistakes against MinIO and the SQS
// server, exits non-zero within 10 s with one line naming the variable.
func TestPreflightRefusesMisconfiguration(t *testing.T) {
	e := awstest.Shared(t)
	base := append(os.Environ(), e.Environ()...)
	base = append(base, "LIBRARY_ROOT="+t.TempDir(), "LOG_FORMAT=json")
	t.Run("run", func(t *testing.T) {
		preflighttest.Run(t, e, bin, nil, base, preflighttest.Cases(t, e, "RESULTS_QUEUE_URL"))
	})
	t.Run("process", func(t *testing.T) {
		preflighttest.Run(t, e, bin, []string{"process", "--skip-upload"}, base, preflighttest.Cases(t, e, "WORK_QUEUE_URL"))
	})
}

// TestAuthFailureEndsTheService: credentials that S3 starts refusing after
// the start (a rotated secret) are logged at error level and, after
// AUTH_FAIL_AFTER of nothing but refusals, end the service with a non-zero
// status instead of a retry loop that runs forever.
func TestAuthFailureEndsTheService(t *testing.T) {
	e := awstest.Shared(t)
	bucket := e.ScratchBucket(t)
	proxy := awstest.NewFaultProxy(t, e.S3Endpoint)
	// Everything but the preflight's listing (max-keys=1) is refused.
	refused := awstest.Fault{Status: http.StatusForbidden, Code: "SignatureDoesNotMatch", Message: "The request signature we calculated does not match the signature you provided."}
	proxy.Fail(1<<30, refused, func(r *http.Request) bool { return r.URL.Query().Get("max-keys") != "1" })
	env := append(os.Environ(), e.Environ()...)
	env = append(env, "LIBRARY_ROOT="+t.TempDir(), "LOG_FORMAT=json", "S3_BUCKET="+bucket, "S3_ENDPOINT="+proxy.URL,
		"RESULTS_QUEUE_URL=", "RECONCILE_INTERVAL=1s", "AUTH_FAIL_AFTER=2s")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if ctx.Err() != nil || !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("exit %v (context %v), want a non-zero status\n%s", err, ctx.Err(), stderr.String())
	}
	out := stderr.String()
	for _, want := range []string{`"level":"error"`, "SignatureDoesNotMatch", "AUTH_FAIL_AFTER"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if proxy.Injected() == 0 {
		t.Error("no request was refused")
	}
}
