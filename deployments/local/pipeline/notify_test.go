package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/notify"
)

// TestNotifications runs the embedded pipeline on a good clip and one that
// is not a video, with NOTIFY_URL pointing at a real HTTP server: it gets
// a file_failed for the bad file, then a run_finished. A receiver that
// hangs changes nothing in the run's result, and Close still returns by
// its deadline.
func TestNotifications(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	for _, tc := range []struct {
		name string
		hang bool
	}{{"receiver", false}, {"receiver_hangs", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu   sync.Mutex
				got  []map[string]any
				hang = make(chan struct{})
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				var m map[string]any
				if err := json.Unmarshal(b, &m); err != nil {
					t.Errorf("not JSON: %q", b)
				}
				mu.Lock()
				got = append(got, m)
				mu.Unlock()
				if tc.hang {
					select {
					case <-hang:
					case <-r.Context().Done():
					}
				}
			}))
			defer srv.Close()
			defer close(hang)

			root := t.TempDir()
			clips := []clip{
				{rel: "phone/good.mp4", opts: meta},
				{rel: "phone/notes.mp4", make: func(t *testing.T, p string) { mediatest.TextFile(t, p) }},
			}
			sums := makeLibrary(t, root, clips)
			n := notify.New(notify.Config{URL: srv.URL + "/message?token=x", Source: "test", Timeout: time.Hour, Backoff: time.Millisecond},
				zerolog.New(zerolog.NewTestWriter(t)).With().Str("service", "hevc-encoder").Logger())
			sum, err := Run(context.Background(), Options{Library: root, Processor: fastSettings(), Jobs: 2, Logger: testLogger(t), Notify: n})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			// The pipeline's result is the same whatever the receiver does.
			if sum.Converted != 1 || len(sum.Failed) != 1 {
				t.Errorf("summary: converted %d, failed %v", sum.Converted, sum.Failed)
			}
			if _, err := os.Stat(filepath.Join(root, "phone/good-hevc.mp4")); err != nil {
				t.Errorf("good clip not converted: %v", err)
			}
			if sha(t, filepath.Join(root, "phone/notes.mp4")) != sums["phone/notes.mp4"] {
				t.Error("the bad file changed")
			}

			deadline := time.Minute
			if tc.hang {
				deadline = 500 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			cerr := n.Close(ctx)
			if tc.hang {
				if !errors.Is(cerr, context.DeadlineExceeded) {
					t.Fatalf("Close with a hanging receiver: %v, want the deadline's error", cerr)
				}
				return
			}
			if cerr != nil {
				t.Fatal(cerr)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 2 {
				t.Fatalf("received %d notifications, want file_failed then run_finished: %v", len(got), got)
			}
			f, r := got[0], got[1]
			if f["event"] != notify.FileFailed || f["key"] != "phone/notes.mp4" || f["type"] != "failure" || f["message"] == "" {
				t.Errorf("file_failed: %v", f)
			}
			d, _ := r["details"].(map[string]any)
			if r["event"] != notify.RunFinished || r["type"] != "failure" || d["converted"] != 1.0 || d["failed"] != 1.0 {
				t.Errorf("run_finished: %v", r)
			}
			t.Logf("run_finished text: %s", r["text"])
		})
	}
}
