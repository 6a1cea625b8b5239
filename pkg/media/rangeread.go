package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mp4box"
)

// urlKeyframes is mp4box.KeyframeTimes of the MP4 at u, read with ranged
// GETs: the movie box's tables are some KiB of a file that may be GiBs.
func urlKeyframes(ctx context.Context, u string) ([]float64, error) {
	r := &rangeReader{ctx: ctx, url: u}
	size, err := r.size()
	if err != nil {
		return nil, err
	}
	return mp4box.KeyframeTimes(r, size)
}

// rangeClient follows no redirects: the URL is the processor's loopback
// view of one object, never a way to reach another.
var rangeClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
	return errors.New("redirect refused")
}}

// rangeReader is an io.ReaderAt over HTTP range requests.
type rangeReader struct {
	ctx context.Context
	url string
}

// get asks for bytes [off, off+n) and checks the answer is that range.
func (r *rangeReader) get(off, n int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	resp, err := rangeClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read %d bytes at %d: %w", n, off, redactURL(err))
	}
	if resp.StatusCode != http.StatusPartialContent {
		resp.Body.Close()
		return nil, fmt.Errorf("read %d bytes at %d: HTTP %d, not a range", n, off, resp.StatusCode)
	}
	return resp, nil
}

// size is the object's length, from the Content-Range of its first byte.
func (r *rangeReader) size() (int64, error) {
	resp, err := r.get(0, 1)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, total, ok := strings.Cut(resp.Header.Get("Content-Range"), "/")
	n, err := strconv.ParseInt(total, 10, 64)
	if !ok || err != nil || n <= 0 {
		return 0, fmt.Errorf("no length in Content-Range %q", resp.Header.Get("Content-Range"))
	}
	return n, nil
}

// ReadAt implements io.ReaderAt.
func (r *rangeReader) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	resp, err := r.get(off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.ReadFull(resp.Body, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}

// redactURL drops the URL from a client error: a presigned one is a secret.
func redactURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}
