package syncer_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/metrics/metricstest"
	"github.com/hevc-encoder/hevc-encoder/services/nextcloud-syncer/syncer"
)

var (
	scrape    = metricstest.Scrape
	waitUntil = metricstest.WaitUntil
)

// The syncer running as a service (Main, passes every INTERVAL) serves its
// metrics on METRICS_ADDR: two files moved count as two, with their
// bytes; /healthz is 200, turns 503 naming the user once the server
// refuses the user's app password, and 200 again once it is accepted;
// `healthcheck` agrees. Nothing is lost.
func TestMetricsAndHealth(t *testing.T) {
	e := newEnv(t, "alice")
	a, b := data(1, 70_000), data(2, 1234)
	e.put("alice", "2024/a.jpg", a, "sha1")
	e.put("alice", "b.mp4", b, "")
	want := e.snapshot()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	vars := map[string]string{
		"NC_URL": e.srv.URL, "NC_USERS": "alice", "NC_PASS_alice": e.users["alice"],
		"LIBRARY_ROOT": e.lib, "INTERVAL": "100ms", "NC_RETRIES": "0", "METRICS_ADDR": addr,
	}
	getenv := func(k string) string { return vars[k] }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() { done <- syncer.Main(ctx, nil, getenv, &logs) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("syncer: %v", err)
		}
		if strings.Contains(logs.String(), e.users["alice"]) {
			t.Error("the password was logged")
		}
	}()

	metrics := []string{
		`hevc_syncer_files_total{outcome="moved"} 2` + "\n",
		"hevc_syncer_moved_bytes_total " + strconv.Itoa(len(a)+len(b)) + "\n",
		`hevc_syncer_passes_total{result="ok"} `,
		"hevc_syncer_last_pass_end_timestamp_seconds ",
		"go_goroutines ",
	}
	waitUntil(t, time.Minute, "the moves' metrics", func() bool {
		code, body := scrape(base + "/metrics")
		if code != http.StatusOK {
			return false
		}
		for _, w := range metrics {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	})
	e.checkAllMoved(want)
	if code, body := scrape(base + "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	var out bytes.Buffer
	if err := syncer.Main(ctx, []string{"healthcheck"}, getenv, &out); err != nil || strings.TrimSpace(out.String()) != "ok" {
		t.Fatalf("healthcheck while healthy: %v %q", err, out.String())
	}

	// The app password is revoked on the server.
	if err := e.srv.AddUser("alice", "revoked"); err != nil {
		t.Fatal(err)
	}
	var reason string
	waitUntil(t, time.Minute, "/healthz 503", func() bool {
		var code int
		code, reason = scrape(base + "/healthz")
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(reason, "user alice") || !strings.Contains(reason, "authentication failed") || strings.Contains(reason, e.users["alice"]) {
		t.Errorf("503 reason %q", reason)
	}
	if err := syncer.Main(ctx, []string{"healthcheck"}, getenv, io.Discard); err == nil || syncer.ExitCode(err) != 1 {
		t.Errorf("healthcheck while unhealthy: %v", err)
	}
	if err := e.srv.AddUser("alice", e.users["alice"]); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Minute, "/healthz 200 again", func() bool {
		code, _ := scrape(base + "/healthz")
		return code == http.StatusOK
	})
}
