package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// The processor hands ffmpeg a presigned URL: plain GETs and range
// requests must work on it without credentials, and not after it expires.
func TestPresignGetServesRanges(t *testing.T) {
	env := awstest.Shared(t)
	s := env.NewScratchStore(t)
	c := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	key := "TODO/presign/a clip é.mp4"
	if _, err := s.Put(c, key, bytes.NewReader(data), storage.PutOptions{Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	var ps storage.Presigner = s
	u, err := ps.PresignGet(c, key, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	get := func(rng string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	if code, b := get(""); code != http.StatusOK || !bytes.Equal(b, data) {
		t.Fatalf("GET: status %d, %d bytes (want 200, %d bytes)", code, len(b), len(data))
	}
	off := len(data) - 1000
	if code, b := get(fmt.Sprintf("bytes=%d-", off)); code != http.StatusPartialContent || !bytes.Equal(b, data[off:]) {
		t.Fatalf("ranged GET: status %d, %d bytes (want 206, %d bytes)", code, len(b), len(data)-off)
	}

	short, err := ps.PresignGet(c, key, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	resp, err := http.Get(short)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("expired URL: status %d, want 403", resp.StatusCode)
	}
}
