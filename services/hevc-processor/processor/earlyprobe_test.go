package processor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// Issue 18 point 6: the input proxy the early probe starts before the
// HEAD has answered learns the object's size from its first response;
// the HEAD's size is then checked against it (expect), and every read
// after that is held to it, as with a proxy started with the HEAD's size.
func TestInputProxyLearnsTheSize(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	ctx := context.Background()
	if _, err := st.Put(ctx, "TODO/x.mp4", strings.NewReader("first version"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	get := func(px *inputProxy) (int, string) {
		resp, err := http.Get(px.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	px, err := startInputProxy(st, "TODO/x.mp4", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	if code, body := get(px); code != http.StatusOK || body != "first version" {
		t.Fatalf("first read: %d %q", code, body)
	}
	if err := px.expect(int64(len("first version")), hexSHA("first version")); err != nil {
		t.Fatalf("the HEAD's size: %v", err)
	}
	if err := px.expect(5, hexSHA("first version")); err == nil || !strings.Contains(err.Error(), "changed while it was read") {
		t.Fatalf("another size than the first read's: %v, want an error", err)
	}
	// Replaced by a longer object: refused on the learnt size (and ETag).
	if _, err := st.Put(ctx, "TODO/x.mp4", strings.NewReader("a longer second version"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(px); code != http.StatusPreconditionFailed {
		t.Fatalf("read after the object changed: %d, want 412", code)
	}
	// Not read before the HEAD: the HEAD's size holds from then on.
	px2, err := startInputProxy(st, "TODO/x.mp4", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer px2.Close()
	if err := px2.expect(5, hexSHA("a longer second version")); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(px2); code != http.StatusPreconditionFailed {
		t.Fatalf("size other than the HEAD's: %d, want 412", code)
	}
}

// The same with the SHA-256 the uploader records: a version of the same
// size read before the HEAD is told apart by it.
func TestInputProxyChecksTheSHA256(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	ctx := context.Background()
	put := func(body string) {
		t.Helper()
		if _, err := st.Put(ctx, "TODO/y.mp4", strings.NewReader(body), storage.PutOptions{Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(px *inputProxy) int {
		resp, err := http.Get(px.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	shaA, shaB := hexSHA("version A"), hexSHA("version B")
	put("version A")
	px, err := startInputProxy(st, "TODO/y.mp4", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	if code := read(px); code != http.StatusOK {
		t.Fatalf("first read: %d", code)
	}
	// The HEAD saw version B (same size): the job must not go on.
	if err := px.expect(int64(len("version A")), shaB); err == nil {
		t.Fatal("a HEAD of another version passed")
	}
	if err := px.expect(int64(len("version A")), shaA); err != nil {
		t.Fatalf("the HEAD of the version read: %v", err)
	}
	// HEAD first, then a response of another version of the same size.
	px2, err := startInputProxy(st, "TODO/y.mp4", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer px2.Close()
	if err := px2.expect(int64(len("version A")), shaA); err != nil {
		t.Fatal(err)
	}
	put("version B")
	if code := read(px2); code != http.StatusPreconditionFailed {
		t.Fatalf("read of another version than the HEAD's: %d, want 412", code)
	}
}

func hexSHA(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// With STREAM_INPUT the probe starts before the HEAD answers; the HEAD
// still decides: a TODO/ object that is gone ends the job as Gone (the
// probe's failure on the missing object is not a bad input), and the
// probe and its proxy are stopped.
func TestEarlyProbeHeadDecidesGone(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	p := &Processor{Store: st, Cfg: testConfig(t), Log: zerolog.Nop()}
	res, err := p.Process(context.Background(), launch.Job{Key: "TODO/gone/x.mp4"})
	if err != nil || res.Outcome != Gone {
		t.Fatalf("gone key: %+v %v, want Gone", res, err)
	}
	if ok, err := storage.Exists(context.Background(), st, "FAILED/gone/x.mp4.json"); err != nil || ok {
		t.Fatalf("FAILED/ record for a gone key: %v %v", ok, err)
	}
}
