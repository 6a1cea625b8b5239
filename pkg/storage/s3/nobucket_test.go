package s3_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/awserr"
	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
)

// A bucket that does not exist (a typo, or deleted after the services
// started) is never a missing key: callers read storage.ErrNotFound as
// "already processed" and delete the key's message. HEAD's 404 has no body,
// so the store asks again with a listing; GET and DELETE say NoSuchBucket.
func TestMissingBucketIsNotMissingKey(t *testing.T) {
	env := awstest.Shared(t)
	s, err := s3store.New(ctx, env.StoreConfig("no-such-bucket-here"))
	if err != nil {
		t.Fatal(err)
	}
	const key = "TODO/a.mp4"
	check := func(op string, err error) {
		t.Helper()
		switch {
		case err == nil:
			t.Errorf("%s in a missing bucket: no error", op)
		case errors.Is(err, storage.ErrNotFound):
			t.Errorf("%s in a missing bucket reads as a missing key: %v", op, err)
		case !awserr.IsConfig(err):
			t.Errorf("%s in a missing bucket is not classified as configuration: %v", op, err)
		}
	}
	_, err = s.Head(ctx, key)
	check("head", err)
	_, err = storage.Exists(ctx, s, key)
	check("exists", err)
	_, _, err = s.Get(ctx, key)
	check("get", err)
	check("delete", s.Delete(ctx, key))
	check("conditional delete", s.DeleteIfSHA256(ctx, key, "00"))

	// The same store, for a bucket that exists: a missing key still is one.
	ok := env.NewScratchStore(t)
	if _, err := ok.Head(ctx, key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("head of a missing key: %v, want ErrNotFound", err)
	}
	if _, _, err := ok.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("get of a missing key: %v, want ErrNotFound", err)
	}
	if err := ok.DeleteIfSHA256(ctx, key, "00"); err != nil {
		t.Fatalf("conditional delete of a missing key: %v", err)
	}
	if _, err := ok.Put(ctx, key, bytes.NewReader([]byte("x")), storage.PutOptions{Size: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := ok.Head(ctx, key); err != nil {
		t.Fatalf("head after put: %v", err)
	}
}
