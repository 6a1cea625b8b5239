package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/ecstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/metrics/metricstest"
)

var scrape = metricstest.Scrape

func metricsPort(t *testing.T) (addr, base string) {
	t.Helper()
	port, err := awstest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("http://127.0.0.1:%d", port)
}

// A running dispatcher serves its metrics on METRICS_ADDR: a real job
// (launched on the ECS endpoint, encoded by the real processor) moves the
// launch, message and job-end counters, an unusable message counts as
// dropped, the queue gauges are there; /healthz is 200 while it works and
// 503 with the reason once SQS refuses its calls (the watchdog's view),
// and the healthcheck command agrees both times.
func TestMetricsAndHealth(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	q := env.NewScratchQueue(t, 30*time.Second, 3)
	srv := startECS(t, env, ecstest.Options{})
	proxy := awstest.NewFaultProxy(t, env.SQSEndpoint)
	addr, base := metricsPort(t)

	const key = "TODO/metrics/a.mp4"
	put(t, st, key, clip(t, false))
	sendEvents(t, env, q.Name(), st.Bucket(), key)
	sendRaw(t, env, q.Name(), "not an event")
	m := vars(env, st.Bucket(), q.Name(), srv, map[string]string{
		"SQS_ENDPOINT": proxy.URL, "METRICS_ADDR": addr, "AUTH_FAIL_AFTER": "10m", "RECONCILE_INTERVAL": "0",
	})
	dispatch(t, m)

	waitFor(t, time.Minute, "/healthz 200", func() (bool, error) {
		code, _ := scrape(base + "/healthz")
		return code == http.StatusOK, nil
	})
	want := []string{
		"hevc_dispatcher_jobs_launched_total 1\n",
		`hevc_dispatcher_jobs_ended_total{reason="exit_0",result="succeeded"} 1` + "\n",
		`hevc_dispatcher_messages_total{outcome="launched"} 1` + "\n",
		`hevc_dispatcher_messages_total{outcome="dropped"} 1` + "\n",
		`hevc_queue_messages_received_total{queue="work"} 2` + "\n",
		`hevc_queue_messages{queue="work",state="visible"} `,
		`hevc_queue_oldest_message_age_seconds{queue="work"} `,
		"go_goroutines ", "process_resident_memory_bytes ",
	}
	var body string
	waitFor(t, 3*time.Minute, "the job's metrics", func() (bool, error) {
		var code int
		code, body = scrape(base + "/metrics")
		if code != http.StatusOK {
			return false, nil
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false, nil
			}
		}
		return true, nil
	})
	if exists(t, st, key) || !exists(t, st, "DONE/metrics/a-hevc.mp4") {
		t.Fatalf("the job did not end with its result in DONE/ and TODO/ empty")
	}
	if strings.Contains(body, `result="failed"`) {
		t.Errorf("a job counted as failed:\n%s", body)
	}
	if out, err := command(t, m, "healthcheck"); err != nil || strings.TrimSpace(out) != "ok" {
		t.Fatalf("healthcheck while healthy: %v %q", err, out)
	}

	// Credentials revoked: every receive is refused.
	proxy.Fail(1<<30, awstest.Fault{Status: http.StatusForbidden, Code: "AccessDenied", Message: "Access to the resource is denied."}, awstest.MatchTarget("ReceiveMessage"))
	var reason string
	waitFor(t, time.Minute, "/healthz 503", func() (bool, error) {
		var code int
		code, reason = scrape(base + "/healthz")
		return code == http.StatusServiceUnavailable, nil
	})
	if !strings.Contains(reason, "AWS refuses calls to queue") || !strings.Contains(reason, "AUTH_FAIL_AFTER") {
		t.Errorf("503 reason %q", reason)
	}
	if _, err := command(t, m, "healthcheck"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("healthcheck while refused: %v", err)
	}
}

// METRICS_ADDR is served from the start: while the start-up checks run
// (here the bucket's endpoint never answers) /healthz says not ready.
func TestHealthNotReadyDuringPreflight(t *testing.T) {
	env := awstest.Shared(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr, base := metricsPort(t)
	m := vars(env, "no-answer", "work", nil, map[string]string{
		"S3_ENDPOINT": "http://" + ln.Addr().String(), "METRICS_ADDR": addr, "LAUNCHER": "exec",
	})
	done := make(chan error, 1)
	go func() { done <- realMain(context.Background(), []string{"run"}, getenv(m), io.Discard) }()
	var body string
	waitFor(t, time.Minute, "/healthz 503 during the start-up checks", func() (bool, error) {
		var code int
		code, body = scrape(base + "/healthz")
		return code == http.StatusServiceUnavailable, nil
	})
	if !strings.Contains(body, "not ready: start-up checks") {
		t.Errorf("reason %q", body)
	}
	var ue usageError
	if err := <-done; !errors.As(err, &ue) {
		t.Errorf("preflight against a silent endpoint: %v", err)
	}
	if code, _ := scrape(base + "/healthz"); code != 0 {
		t.Errorf("still serving after the service ended: %d", code)
	}
}
