package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/metrics/metricstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/internal/testutil"
)

var (
	scrape    = metricstest.Scrape
	waitUntil = metricstest.WaitUntil
)

// The running service (the binary, on MinIO with an SQS results queue)
// serves its metrics on METRICS_ADDR: installing one result and rejecting
// another (too short) move the results, bytes and queue metrics by exactly
// what was moved; /healthz is 200 while it works and 503 with the reason
// once SQS refuses its calls, and `healthcheck` agrees both times. The
// rejected original and its result stay where they were.
func TestMetricsAndHealth(t *testing.T) {
	l := newS3Lib(t, false)
	e := awstest.Shared(t)
	q := e.NewScratchQueue(t, 30*time.Second, 3)
	proxy := awstest.NewFaultProxy(t, e.SQSEndpoint)
	port, err := awstest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr, base := fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("http://127.0.0.1:%d", port)

	testutil.Clip(t, l.path("m/good.mp4"), clip2s)
	testutil.Clip(t, l.path("m/bad.mp4"), clip2s)
	origSize := func(rel string) int64 {
		fi, err := os.Stat(l.path(rel))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	goodOrig, badOrigSHA := origSize("m/good.mp4"), testutil.SHA(t, l.path("m/bad.mp4"))
	goodKey, goodSHA := testutil.PutResult(t, l.st, l.root, "m/good.mp4", testutil.ResultOpts{})
	badKey, _ := testutil.PutResult(t, l.st, l.root, "m/bad.mp4", testutil.ResultOpts{Seconds: 1})
	objSize := func(key string) int64 {
		o, err := l.st.Head(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		return o.Size
	}
	goodSize, badSize := objSize(goodKey), objSize(badKey)

	env := l.env("RESULTS_QUEUE_URL="+q.Name(), "SQS_ENDPOINT="+proxy.URL, "METRICS_ADDR="+addr, "AUTH_FAIL_AFTER=10m")
	cmd := exec.Command(bin)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cmd.Process.Signal(syscall.SIGTERM)
			if err := <-exited; err != nil {
				t.Errorf("result-downloader: %v\n%s", err, stderr.String())
			}
		}
	}
	defer stop()

	want := []string{
		`hevc_downloader_results_total{outcome="installed"} 1` + "\n",
		`hevc_downloader_results_total{outcome="rejected"} 1` + "\n",
		"hevc_downloader_downloaded_bytes_total " + strconv.FormatInt(goodSize+badSize, 10) + "\n",
		"hevc_downloader_original_bytes_total " + strconv.FormatInt(goodOrig, 10) + "\n",
		"hevc_downloader_installed_bytes_total " + strconv.FormatInt(goodSize, 10) + "\n",
		"hevc_downloader_saved_bytes_total " + strconv.FormatInt(max(0, goodOrig-goodSize), 10) + "\n",
		`hevc_queue_messages{queue="results",state="visible"} 0` + "\n",
		"go_goroutines ",
	}
	var body string
	waitUntil(t, 3*time.Minute, "the results' metrics", func() bool {
		var code int
		code, body = scrape(base + "/metrics")
		if code != http.StatusOK {
			return false
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	})
	if code, h := scrape(base + "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz while working: %d %s", code, h)
	}
	if out, _, err := command(t, env, "healthcheck"); err != nil || strings.TrimSpace(out) != "ok" {
		t.Fatalf("healthcheck while healthy: %v %q", err, out)
	}
	if testutil.SHA(t, l.path(library.HevcRel("m/good.mp4"))) != goodSHA {
		t.Error("installed file is not the result")
	}
	if testutil.SHA(t, l.path("m/bad.mp4")) != badOrigSHA {
		t.Error("the rejected result's original changed")
	}
	if ok, _ := storage.Exists(context.Background(), l.st, badKey); !ok {
		t.Error("the rejected result left DONE/")
	}

	// Credentials revoked: every receive is refused.
	proxy.Fail(1<<30, awstest.Fault{Status: http.StatusForbidden, Code: "AccessDenied", Message: "Access to the resource is denied."}, awstest.MatchTarget("ReceiveMessage"))
	var reason string
	waitUntil(t, 2*time.Minute, "/healthz 503", func() bool {
		var code int
		code, reason = scrape(base + "/healthz")
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(reason, "AWS refuses calls to queue") {
		t.Errorf("503 reason %q", reason)
	}
	if _, _, err := command(t, env, "healthcheck"); err == nil {
		t.Error("healthcheck passed while /healthz says 503")
	}
	stop()
}
