package media

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

// The processor streams its input from a presigned URL: Probe and Encode
// must work on an HTTP URL served with range requests (moov at the end, as
// phones write it, so ffmpeg has to seek), and Command must add the
// reconnect flags for it (and only for it).
func TestEncodeFromHTTPURL(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "clip.mp4")
	mediatest.Clip(t, src, mediatest.ClipOpts{Seconds: 1, Width: 160, Height: 96})
	var ranged atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			ranged.Add(1)
		}
		http.ServeFile(w, r, src)
	}))
	defer srv.Close()
	u := srv.URL + "/clip.mp4?X-Amz-Signature=x"

	ctx := context.Background()
	info, err := Probe(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(info, Settings{CRF: 30, Preset: "ultrafast", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	cmd := Command(u, "out.mp4", plan)
	if i := slices.Index(cmd, "-reconnect"); i < 0 || i > slices.Index(cmd, "-i") {
		t.Fatalf("no -reconnect before -i in %q", cmd)
	}
	if slices.Contains(Command(src, "out.mp4", plan), "-reconnect") {
		t.Fatalf("-reconnect on a local file: ffmpeg rejects protocol options the file protocol lacks")
	}
	out := filepath.Join(dir, "out.mp4")
	if err := Encode(ctx, u, out, plan, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, info, out); err != nil {
		t.Fatal(err)
	}
	if ranged.Load() == 0 {
		t.Errorf("ffmpeg never sent a range request (expected with moov at the end)")
	}
}
