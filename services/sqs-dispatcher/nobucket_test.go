package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/ecstest"
)

// Issue 18, point 3: the bucket disappears after the dispatcher started
// (its preflight passed). A HEAD of a key then answers 404 as for a key
// that is gone, yet the work message is not taken for "already processed"
// and deleted: it stays in the queue, no processor is launched, and the
// refusals end the service after AUTH_FAIL_AFTER, visibly.
func TestBucketGoneKeepsMessages(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	q := env.NewScratchQueue(t, 30*time.Second, 10)
	srv := startECS(t, env, ecstest.Options{})
	explainOnFailure(t, env)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addr, base := metricsPort(t)
	m := vars(env, st.Bucket(), q.Name(), srv, map[string]string{
		"AUTH_FAIL_AFTER": "3s", "RECONCILE_INTERVAL": "0", "METRICS_ADDR": addr})
	done := make(chan error, 1)
	go func() { done <- realMain(ctx, []string{"run"}, getenv(m), &strings.Builder{}) }()

	// Started against a bucket that exists (ready: its checks passed);
	// then it is deleted (empty, as S3 requires) and a work message
	// arrives for it.
	waitFor(t, time.Minute, "/healthz 200", func() (bool, error) {
		code, _ := scrape(base + "/healthz")
		return code == http.StatusOK, nil
	})
	bucket := st.Bucket()
	if _, err := st.Client().DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: &bucket}); err != nil {
		t.Fatal(err)
	}
	sendEvents(t, env, q.Name(), bucket, "TODO/family/party.mp4")

	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		t.Fatal("the dispatcher did not end although every call to the bucket failed")
	}
	if err == nil || errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "AUTH_FAIL_AFTER") {
		t.Errorf("dispatcher ended with %v, want the refusals named (AUTH_FAIL_AFTER)", err)
	}
	if v, i := depth(t, env, q.Name()); v+i != 1 {
		t.Errorf("%d visible + %d in flight work messages, want the one kept", v, i)
	}
	if n := len(srv.Tasks()); n != 0 {
		t.Errorf("%d processors launched for a bucket that is gone", n)
	}
}
