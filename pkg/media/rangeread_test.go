package media

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

// A streamed original's keyframes come from its index by ranged reads:
// the same as from the local file, reading a small part of it.
func TestURLKeyframesReadTheIndexOnly(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	p := filepath.Join(t.TempDir(), "in.mp4")
	lavfi(t, p, "testsrc2=size=320x240:rate=30:duration=6,noise=alls=30:allf=t", "libx264")
	want, err := boxKeyframes(p)
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w, n: &served}
		http.ServeFile(cw, r, p)
	}))
	defer srv.Close()
	got, err := urlKeyframes(context.Background(), srv.URL+"/in.mp4")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) || len(got) == 0 {
		t.Errorf("keyframes by URL %v, from the file %v", got, want)
	}
	size := fileSize(t, p)
	if n := served.Load(); n*4 > size {
		t.Errorf("read %d of %d bytes for the index", n, size)
	}
	t.Logf("read %d of %d bytes", served.Load(), size)
	// A server that ignores ranges is refused, not read whole.
	whole := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Range")
		http.ServeFile(w, r, p)
	}))
	defer whole.Close()
	if _, err := urlKeyframes(context.Background(), whole.URL+"/in.mp4"); err == nil {
		t.Error("a server without ranges was accepted")
	}
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
