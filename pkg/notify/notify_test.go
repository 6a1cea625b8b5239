package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
)

// receiver is a real HTTP server that records what it is sent.
type receiver struct {
	mu    sync.Mutex
	reqs  []received
	srv   *httptest.Server
	reply func(w http.ResponseWriter, r *http.Request)
}

type received struct {
	path, query, contentType string
	body                     map[string]any
}

func newReceiver(t *testing.T, reply func(w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{reply: reply}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("body is not JSON: %v: %q", err, b)
		}
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, received{path: r.URL.Path, query: r.URL.RawQuery, contentType: r.Header.Get("Content-Type"), body: m})
		rc.mu.Unlock()
		if rc.reply != nil {
			rc.reply(w, r)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

func closeWithin(t *testing.T, n *Notifier, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return n.Close(ctx)
}

func TestCommonBodyCarriesEveryReceiversFields(t *testing.T) {
	rc := newReceiver(t, nil)
	n := New(Config{URL: rc.srv.URL + "/message?token=Aabc", Source: "test"}, zerolog.Nop())
	n.Notify(File("TODO/phone/a b.mp4", "not a video", map[string]any{"bytes": 12}))
	n.Notify(Event{Kind: RunFinished, Title: "run finished", Message: "converted 2", Details: map[string]any{"converted": 2}})
	if err := closeWithin(t, n, time.Minute); err != nil {
		t.Fatal(err)
	}
	got := rc.got()
	if len(got) != 2 {
		t.Fatalf("received %d POSTs, want 2", len(got))
	}
	f, r := got[0], got[1]
	if f.path != "/message" || f.query != "token=Aabc" || f.contentType != "application/json" {
		t.Errorf("posted to %s?%s as %s", f.path, f.query, f.contentType)
	}
	for _, k := range []string{"title", "message", "body", "text"} {
		if s, _ := f.body[k].(string); !strings.Contains(s, "a b.mp4") {
			t.Errorf("file_failed %s = %q, want the file named", k, s)
		}
	}
	if f.body["event"] != FileFailed || f.body["type"] != "failure" || f.body["priority"] != 4.0 || f.body["key"] != "TODO/phone/a b.mp4" || f.body["source"] != "test" {
		t.Errorf("file_failed body %v", f.body)
	}
	if d, _ := f.body["details"].(map[string]any); d["reason"] != "not a video" || d["bytes"] != 12.0 {
		t.Errorf("details %v", f.body["details"])
	}
	if _, ok := f.body["topic"]; ok {
		t.Errorf("topic sent without NOTIFY_FORMAT=ntfy: %v", f.body)
	}
	if r.body["event"] != RunFinished || r.body["type"] != "success" || r.body["priority"] != 3.0 || r.body["message"] != "converted 2" || r.body["text"] != "run finished\nconverted 2" {
		t.Errorf("run_finished body %v", r.body)
	}
	if s := n.Stats(); s.Sent != 2 || s.Failed != 0 || s.Dropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestNtfyFormatPostsToTheRootWithTheTopic(t *testing.T) {
	rc := newReceiver(t, nil)
	n := New(Config{URL: rc.srv.URL + "/videos_x1?auth=QmVhcmVy", Format: FormatNtfy}, zerolog.Nop())
	n.Notify(File("TODO/a.mp4", "bad", nil))
	if err := closeWithin(t, n, time.Minute); err != nil {
		t.Fatal(err)
	}
	got := rc.got()
	if len(got) != 1 || got[0].path != "/" || got[0].query != "auth=QmVhcmVy" || got[0].body["topic"] != "videos_x1" || got[0].body["message"] != "TODO/a.mp4: bad" {
		t.Fatalf("got %+v", got)
	}
}

func TestSlackFormatSendsOnlyText(t *testing.T) {
	rc := newReceiver(t, nil)
	n := New(Config{URL: rc.srv.URL + "/hooks/x", Format: FormatSlack}, zerolog.Nop())
	n.Notify(Event{Kind: RunFinished, Title: "t", Message: "m"})
	if err := closeWithin(t, n, time.Minute); err != nil {
		t.Fatal(err)
	}
	got := rc.got()
	if len(got) != 1 || len(got[0].body) != 1 || got[0].body["text"] != "t\nm" {
		t.Fatalf("got %+v", got)
	}
}

// A receiver that fails, hangs or is not there never makes Notify block,
// and Close returns by its deadline; failures are logged, not returned,
// and the log never shows the URL's path or query.
func TestBadReceiversNeverBlock(t *testing.T) {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	refused := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr
	}()
	for _, tc := range []struct {
		name     string
		url      func() (string, *receiver)
		attempts int  // POSTs the receiver sees
		abandons bool // Close's deadline passes
	}{
		{"500", func() (string, *receiver) {
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "oops at "+r.URL.String(), http.StatusInternalServerError)
			})
			return rc.srv.URL, rc
		}, 3, false},
		{"400", func() (string, *receiver) {
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "bad token "+r.URL.Query().Get("token")+" for "+r.URL.Path, http.StatusUnauthorized)
			})
			return rc.srv.URL, rc
		}, 1, false},
		{"redirect", func() (string, *receiver) {
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					http.Redirect(w, r, "https://elsewhere.example"+r.URL.RequestURI(), http.StatusMovedPermanently)
				}
			})
			return rc.srv.URL, rc
		}, 1, false},
		{"refused", func() (string, *receiver) { return refused, nil }, 0, false},
		{"hangs", func() (string, *receiver) {
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-hang:
				case <-r.Context().Done():
				}
			})
			return rc.srv.URL, rc
		}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, rc := tc.url()
			var logs bytes.Buffer
			var mu sync.Mutex
			log := zerolog.New(zerolog.SyncWriter(writerFunc(func(p []byte) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				return logs.Write(p)
			}))).With().Str("service", "test").Logger()
			n := New(Config{URL: base + "/hooks/SECRETPATH?token=SECRETTOKEN", Timeout: time.Hour, Queue: 2, Backoff: time.Millisecond}, log)
			for i := 0; i < 10; i++ {
				n.Notify(File("TODO/a.mp4", "bad", nil)) // returns at once: more than the queue holds
			}
			deadline := time.Minute
			if tc.abandons {
				deadline = 200 * time.Millisecond
			}
			err := closeWithin(t, n, deadline)
			if tc.abandons != (err != nil) {
				t.Fatalf("Close: %v", err)
			}
			if tc.abandons && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Close: %v, want the deadline's error", err)
			}
			st := n.Stats()
			if tc.abandons && (st.Sent != 0 || st.Dropped < 7 || st.Dropped > 8) {
				t.Errorf("stats %+v: want nothing sent and 7 or 8 of 10 dropped (queue 2, one in flight)", st)
			}
			if !tc.abandons && (st.Sent != 0 || st.Failed+st.Dropped != 10 || st.Failed == 0) {
				t.Errorf("stats %+v: want every one of 10 failed or dropped", st)
			}
			if rc != nil && !tc.abandons && len(rc.got()) != int(st.Failed)*tc.attempts {
				t.Errorf("receiver saw %d POSTs for %d failed notifications, want %d attempts each", len(rc.got()), st.Failed, tc.attempts)
			}
			mu.Lock()
			out := logs.String()
			mu.Unlock()
			if !tc.abandons && !strings.Contains(out, "notification not delivered") {
				t.Errorf("failure not logged:\n%s", out)
			}
			if !strings.Contains(out, `"level":"warn"`) || !strings.Contains(out, `"service":"test"`) {
				t.Errorf("want warn lines with the service field:\n%s", out)
			}
			if tc.name == "redirect" && !strings.Contains(out, "redirected to https://elsewhere.example;") {
				t.Errorf("redirect not explained:\n%s", out)
			}
			if strings.Contains(out, "SECRET") || (err != nil && strings.Contains(err.Error(), "SECRET")) {
				t.Errorf("the URL's path or query was logged:\n%s\n%v", out, err)
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestNilNotifierIsOff(t *testing.T) {
	n := New(Config{}, zerolog.Nop())
	if n != nil {
		t.Fatal("New without a URL must return nil")
	}
	n.Notify(Event{Kind: RunFinished})
	if err := n.Close(context.Background()); err != nil || n.Stats() != (Stats{}) {
		t.Fatal(err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string // "" ok
	}{
		{map[string]string{}, ""},
		{map[string]string{"NOTIFY_URL": "https://gotify.example/message?token=abc"}, ""},
		{map[string]string{"NOTIFY_URL": "https://ntfy.sh/mytopic", "NOTIFY_FORMAT": "ntfy"}, ""},
		{map[string]string{"NOTIFY_URL": "ftp://x/secret", "NOTIFY_FORMAT": "json"}, "NOTIFY_URL must be an http"},
		{map[string]string{"NOTIFY_URL": "hooks.slack.com/services/secret"}, "NOTIFY_URL must be an http"},
		{map[string]string{"NOTIFY_URL": "https://ntfy.sh/", "NOTIFY_FORMAT": "ntfy"}, "NOTIFY_URL must name the ntfy topic"},
		{map[string]string{"NOTIFY_FORMAT": "discord"}, "NOTIFY_FORMAT must be"},
	} {
		var c Config
		s := config.New("t", "")
		s.FlagSet().SetOutput(io.Discard)
		c.Bind(s)
		s.SetGetenv(func(k string) string { return tc.env[k] })
		err := s.Parse(nil)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: got %v, want %q", tc.env, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%v: the error repeats the URL: %v", tc.env, err)
		}
	}
	if got := Target("https://user:pw@hooks.example:8443/services/T/B/X?token=y"); got != "https://hooks.example:8443" {
		t.Errorf("Target = %q", got)
	}
}

func TestLongTextIsClipped(t *testing.T) {
	long := strings.Repeat("é", 5000)
	if s := clip(long, maxMessage); len(s) > maxMessage || !strings.HasSuffix(s, "…") {
		t.Errorf("clip: %d bytes", len(s))
	}
	if s := List([]string{"a", "b", "c"}, 2); s != "a\nb\n… and 1 more" {
		t.Errorf("List = %q", s)
	}
	var d Dedup
	if !d.First("k", "r") || d.First("k", "r") || !d.First("k", "r2") {
		t.Error("Dedup")
	}
	d.Forget("k")
	if !d.First("k", "r2") {
		t.Error("Dedup after Forget")
	}
}
