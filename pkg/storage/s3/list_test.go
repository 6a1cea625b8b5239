package s3_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// Issue 15, point 5: List asks for URL-encoded keys and decodes them, so
// that every key comes back exactly as it was written, including one with
// a character XML 1.0 cannot carry (U+0001: a plain XML listing of it is
// unreadable, and would stop every walk of TODO/ or DONE/ at that page).
// library.CheckRel refuses such names, so the raw key is put straight
// through the SDK, the way another tool could.
func TestListReturnsKeysVerbatim(t *testing.T) {
	env := awstest.Shared(t)
	s := env.NewScratchStore(t)
	bucket := s.Bucket()
	keys := []string{
		"TODO/a b/clip 1.mp4",
		"TODO/a b/plus+sign.mp4",
		"TODO/a b/100% real%2F%20.mp4",
		"TODO/a b/é 日本 \u00a0nbsp.MP4",
		"TODO/a b/amp&lt<gt>'quote\".mp4",
		"TODO/a b/tilde~star*(1).mp4",
	}
	for _, k := range keys {
		if err := library.CheckRel(strings.TrimPrefix(k, library.TodoPrefix)); err != nil {
			t.Fatalf("test key %q should be a valid library path: %v", k, err)
		}
		if _, err := s.Put(ctx, k, bytes.NewReader([]byte(k)), storage.PutOptions{Size: int64(len(k))}); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
	}
	raw := "TODO/a b/ctrl\x01char.mp4"
	if library.CheckRel(strings.TrimPrefix(raw, library.TodoPrefix)) == nil {
		t.Fatalf("CheckRel accepts %q", raw)
	}
	if _, err := env.S3.PutObject(ctx, &awss3.PutObjectInput{Bucket: &bucket, Key: &raw, Body: bytes.NewReader([]byte("x"))}); err != nil {
		t.Fatalf("raw put %q: %v", raw, err)
	}
	// removeBucket's plain listing cannot read this key: delete it here.
	t.Cleanup(func() { _ = s.Delete(ctx, raw) })
	want := append(slices.Clone(keys), raw)
	slices.Sort(want)

	// One page, and pages of one key (the continuation token is not
	// encoded; the keys in every page are).
	for _, max := range []int{0, 1} {
		var got []string
		token := ""
		for {
			page, err := s.List(ctx, "TODO/a b/", token, max)
			if err != nil {
				t.Fatalf("list (max %d): %v", max, err)
			}
			for _, o := range page.Objects {
				got = append(got, o.Key)
			}
			if page.Next == "" {
				break
			}
			token = page.Next
		}
		if !slices.Equal(got, want) {
			t.Errorf("list (max %d) = %q, want %q", max, got, want)
		}
	}
	// A prefix that needs encoding itself.
	page, err := s.List(ctx, "TODO/a b/100% real%2F", "", 0)
	if err != nil || len(page.Objects) != 1 || page.Objects[0].Key != keys[2] {
		t.Errorf("list of a prefix with %% and %%2F: %+v %v", page.Objects, err)
	}
	// Every listed key can be read back by the name List gave.
	for _, k := range keys {
		got, _, err := readAll(t, s, k)
		if err != nil || string(got) != k {
			t.Errorf("get %q: %q %v", k, got, err)
		}
	}
	if err := s.Delete(ctx, raw); err != nil {
		t.Fatalf("delete %q: %v", raw, err)
	}
	if _, err := s.Head(ctx, raw); err == nil {
		t.Errorf("%q still there after delete", raw)
	}
}
