package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/notify"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/internal/testutil"
)

// notifyReceiver is a real HTTP server standing in for ntfy/Gotify/Apprise:
// it records the JSON bodies; hang makes it never answer.
type notifyReceiver struct {
	mu   sync.Mutex
	got  []map[string]any
	srv  *httptest.Server
	stop chan struct{}
}

func newNotifyReceiver(t *testing.T, hang bool) *notifyReceiver {
	rc := &notifyReceiver{stop: make(chan struct{})}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("notification is not JSON: %q", b)
		}
		rc.mu.Lock()
		rc.got = append(rc.got, m)
		rc.mu.Unlock()
		if hang {
			select {
			case <-rc.stop:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(func() { close(rc.stop); rc.srv.Close() })
	return rc
}

func (rc *notifyReceiver) events() []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]map[string]any(nil), rc.got...)
}

func refusedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// tamperedResult puts a result of t/clip.mp4 whose bytes no longer match
// its checksum: the downloader rejects it.
func tamperedResult(t *testing.T, l *lib) (key, origSHA string) {
	testutil.Clip(t, l.path("t/clip.mp4"), clip2s)
	origSHA = testutil.SHA(t, l.path("t/clip.mp4"))
	key, _ = testutil.PutResult(t, l.st, l.root, "t/clip.mp4", testutil.ResultOpts{})
	data := filepath.Join(l.bucket, filepath.FromSlash(key))
	b, _ := os.ReadFile(data)
	b[len(b)/2] ^= 1
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return key, origSHA
}

func putFailedRecord(t *testing.T, st storage.Store, rel, reason string, at time.Time) {
	b, _ := json.Marshal(map[string]any{"status": "failed", "reason": reason, "time": at})
	if _, err := st.Put(context.Background(), "FAILED/"+rel+".json", strings.NewReader(string(b)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestNotifyProcessBinary: `process` with NOTIFY_URL sends a file_failed
// for the result it could not install and a run_finished with the
// summary. A receiver that refuses connections or never answers changes
// neither the report nor the exit status, and the run still ends.
func TestNotifyProcessBinary(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	for _, mode := range []string{"receiver", "refused", "hangs"} {
		t.Run(mode, func(t *testing.T) {
			l := newLib(t)
			key, sha := tamperedResult(t, l)
			var rc *notifyReceiver
			url := refusedURL(t)
			if mode != "refused" {
				rc = newNotifyReceiver(t, mode == "hangs")
				url = rc.srv.URL
			}
			stdout, stderr, err := command(t, l.env("NOTIFY_URL="+url+"/message?token=SECRETTOKEN"), "process", "--skip-upload", "--poll-interval", "200ms", "--timeout", "2m")
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("want exit status 1, got %v\n%s\n%s", err, stdout, stderr)
			}
			if !strings.Contains(stdout, key+": not installed (rejected)") {
				t.Errorf("report:\n%s", stdout)
			}
			if testutil.SHA(t, l.path("t/clip.mp4")) != sha || exists(l.path("t/clip-hevc.mp4")) {
				t.Errorf("original changed or tampered result installed")
			}
			if strings.Contains(stderr, "SECRETTOKEN") {
				t.Errorf("the URL's token was logged:\n%s", stderr)
			}
			switch mode {
			case "refused":
				if !strings.Contains(stderr, "notification not delivered") {
					t.Errorf("delivery failure not logged:\n%s", stderr)
				}
				return
			case "hangs":
				if !strings.Contains(stderr, "notifications not delivered before the deadline") {
					t.Errorf("abandoned notifications not logged:\n%s", stderr)
				}
				return
			}
			got := rc.events()
			if len(got) != 2 {
				t.Fatalf("received %d notifications, want file_failed and run_finished: %v", len(got), got)
			}
			f, r := got[0], got[1]
			if f["event"] != notify.FileFailed || f["key"] != "t/clip.mp4" || !strings.Contains(f["message"].(string), "not installed") {
				t.Errorf("file_failed: %v", f)
			}
			d, _ := r["details"].(map[string]any)
			if r["event"] != notify.RunFinished || r["type"] != "failure" || d["failed"] != 1.0 || d["ok"] != false || r["source"] != "result-downloader process" {
				t.Errorf("run_finished: %v", r)
			}
			t.Logf("run_finished:\n%s", r["text"])
		})
	}
}

// TestNotifyDownloaderOnce: the downloader notifies a rejected result and
// a new FAILED/ record once, however often it meets them again (the
// history remembers them across runs); a record older than a day (found
// when the history is first written) is recorded without a notification.
func TestNotifyDownloaderOnce(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	l := newLib(t)
	tamperedResult(t, l)
	putFailedRecord(t, l.st, "t/bad.mp4", "bad.mp4 is not a readable video: test", time.Now())
	putFailedRecord(t, l.st, "t/old.mp4", "old failure", time.Now().Add(-72*time.Hour))
	rc := newNotifyReceiver(t, false)
	env := l.env("NOTIFY_URL="+rc.srv.URL+"/notify/apprise", "ONCE=true")
	for i := 0; i < 2; i++ {
		if stdout, stderr, err := command(t, env); err == nil {
			t.Fatalf("run %d: want exit status 1 (a result not installed)\n%s\n%s", i, stdout, stderr)
		}
	}
	got := rc.events()
	keys := map[string]string{}
	for _, e := range got {
		if e["event"] != notify.FileFailed || e["type"] != "failure" {
			t.Errorf("unexpected notification %v", e)
		}
		k, _ := e["key"].(string)
		keys[k], _ = e["body"].(string)
	}
	if len(got) != 2 || !strings.Contains(keys["t/clip.mp4"], "not installed") || !strings.Contains(keys["t/bad.mp4"], "not a readable video") {
		t.Errorf("want one notification each for t/clip.mp4 and t/bad.mp4, got %v", got)
	}
}

// TestNotifyService: the long-running service notifies a rejected result
// and stops on SIGTERM as usual.
func TestNotifyService(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	l := newLib(t)
	tamperedResult(t, l)
	rc := newNotifyReceiver(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = l.env("NOTIFY_URL="+rc.srv.URL+"/message", "NOTIFY_FORMAT=json", "RECONCILE_INTERVAL=1h")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logs []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		logs = append(logs, sc.Text())
		if strings.Contains(sc.Text(), "not installed; original kept") {
			break
		}
	}
	// The notification follows the log line; then stop the service.
	for deadline := time.Now().Add(time.Minute); len(rc.events()) == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	go io.Copy(io.Discard, stderr)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("service: %v\n%s", err, strings.Join(logs, "\n"))
	}
	got := rc.events()
	if len(got) != 1 || got[0]["event"] != notify.FileFailed || got[0]["key"] != "t/clip.mp4" || got[0]["source"] != "result-downloader" {
		t.Errorf("notifications: %v", got)
	}
}
