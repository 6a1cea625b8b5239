package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/queue/local"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type failing string

func (f *failing) Failing() string { return string(*f) }

// The listener serves /metrics (Go and process collectors and the
// service's own) and /healthz (503 until ready and while a check fails),
// the healthcheck client agrees, and it shuts down with its context.
func TestServeMetricsAndHealth(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := NewRegistry()
	d := NewDownloader(reg)
	h := NewHealth("start-up checks running")
	srv, err := Serve(ctx, "127.0.0.1:0", reg, h, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.Addr().String()
	addr := ":" + strings.Split(srv.Addr().String(), ":")[1] // as METRICS_ADDR is written

	if code, body := get(t, base+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "start-up checks running") {
		t.Fatalf("before ready: %d %q", code, body)
	}
	var out bytes.Buffer
	if err := Healthcheck(ctx, addr, &out); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("healthcheck before ready: %v", err)
	}
	h.Ready()
	w := failing("")
	h.AddWatchdog(&w)
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Fatalf("ready: %d %q", code, body)
	}
	out.Reset()
	if err := Healthcheck(ctx, addr, &out); err != nil || strings.TrimSpace(out.String()) != "ok" {
		t.Fatalf("healthcheck when ready: %v %q", err, out.String())
	}
	w = "AWS refuses calls to queue q"
	if code, body := get(t, base+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "aws: AWS refuses calls to queue q") {
		t.Fatalf("watchdog failing: %d %q", code, body)
	}
	w = ""
	hb := h.Loop("loop", time.Hour)
	hb.Beat()
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("loop beaten: %d", code)
	}
	h.Loop("stuck", -time.Second) // already too old
	if code, body := get(t, base+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "stuck: no progress") {
		t.Fatalf("stuck loop: %d %q", code, body)
	}

	d.Result(DownloadResult{Outcome: "installed", Before: 1000, After: 400, Downloaded: 400})
	d.Result(DownloadResult{Outcome: "rejected", Downloaded: 300})
	d.Result(DownloadResult{Err: errors.New("network")})
	_, body := get(t, base+"/metrics")
	for _, want := range []string{
		`hevc_downloader_results_total{outcome="installed"} 1`,
		`hevc_downloader_results_total{outcome="rejected"} 1`,
		`hevc_downloader_downloaded_bytes_total 700`,
		`hevc_downloader_saved_bytes_total 600`,
		`hevc_downloader_install_errors_total 1`,
		"go_goroutines ", "process_start_time_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	cancel()
	if err := srv.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("still serving after its context ended")
	}
}

// The queue metrics: receives count messages and redeliveries and set the
// age of the oldest message received; an empty receive resets it.
func TestQueueObserve(t *testing.T) {
	ctx := context.Background()
	reg := NewRegistry()
	m := NewQueue(reg)
	q := local.New("work", time.Minute, 0, nil)
	if err := q.Send(ctx, "a", "b"); err != nil {
		t.Fatal(err)
	}
	var hb Heartbeat
	oq := m.Observe(q, "work", &hb)
	msgs, err := oq.Receive(ctx, 10, 0)
	if err != nil || len(msgs) != 2 || msgs[0].Sent.IsZero() {
		t.Fatalf("receive: %v %+v", err, msgs)
	}
	if hb.last.Load() == 0 {
		t.Error("receive did not beat")
	}
	pctx, cancel := context.WithCancel(ctx)
	cancel() // one poll, then return
	m.Poll(pctx, oq, "work", time.Hour, zerolog.Nop())
	text := gather(t, reg)
	for _, want := range []string{
		`hevc_queue_messages_received_total{queue="work"} 2`,
		`hevc_queue_messages{queue="work",state="in_flight"} 2`,
		`hevc_queue_messages{queue="work",state="visible"} 0`,
		`hevc_queue_oldest_message_age_seconds{queue="work"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, `hevc_queue_oldest_message_age_seconds{queue="work"} 0`+"\n") {
		t.Error("oldest age is 0 after receiving messages")
	}
	if _, err := oq.Receive(ctx, 10, 0); err != nil {
		t.Fatal(err)
	}
	if text := gather(t, reg); !strings.Contains(text, `hevc_queue_oldest_message_age_seconds{queue="work"} 0`+"\n") {
		t.Errorf("oldest age not reset by an empty receive:\n%s", text)
	}
}

// gather renders reg as /metrics would.
func gather(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}

func TestProbeAddr(t *testing.T) {
	for in, want := range map[string]string{
		":9090": "127.0.0.1:9090", "0.0.0.0:9090": "127.0.0.1:9090", "[::]:9090": "[::1]:9090",
		"10.0.0.2:9100": "10.0.0.2:9100", "localhost:1": "localhost:1",
	} {
		if got, err := probeAddr(in); err != nil || got != want {
			t.Errorf("probeAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"9090", "host", ":http-alt", ":70000"} {
		if _, err := probeAddr(bad); err == nil {
			t.Errorf("probeAddr(%q) accepted", bad)
		}
	}
	var out bytes.Buffer
	if err := Healthcheck(context.Background(), "", &out); err != nil || !strings.Contains(out.String(), "METRICS_ADDR is empty") {
		t.Errorf("empty METRICS_ADDR: %v %q", err, out.String())
	}
}
