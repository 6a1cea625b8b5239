// Package storagetest is the contract every storage.Store adapter passes:
// one table of behaviours run against fs and s3, so that they cannot drift.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// Options tune the suite for an adapter.
type Options struct {
	// ManyKeys is how many keys the pagination case writes (> 1000 shows
	// S3's page limit; fewer keeps slow adapters quick).
	ManyKeys int
	// Tamper overwrites an object's bytes behind the adapter's back without
	// updating its recorded checksum; nil skips the tamper case.
	Tamper func(t *testing.T, key string, data []byte)
}

// Run runs the contract. newStore returns an empty store.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store, o Options) {
	ctx := context.Background()
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

	t.Run("PutGetHeadDelete", func(t *testing.T) {
		s := newStore(t)
		key := "TODO/a b/c#d+e%f 'g\" é.mp4"
		data := bytes.Repeat([]byte("video"), 100_000)
		obj, err := s.Put(ctx, key, bytes.NewReader(data), storage.PutOptions{Size: int64(len(data)), Metadata: map[string]string{storage.MetaSourceSize: "500000"}})
		if err != nil {
			t.Fatal(err)
		}
		if obj.Size != int64(len(data)) || obj.SHA256 != sum(data) {
			t.Fatalf("put returned %+v", obj)
		}
		h, err := s.Head(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if h.Size != int64(len(data)) || h.SHA256 != sum(data) || h.Metadata[storage.MetaSourceSize] != "500000" {
			t.Fatalf("head: %+v", h)
		}
		r, g, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) || g.SHA256 != sum(data) {
			t.Fatalf("get: %v, %d bytes, %+v", err, len(got), g)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Head(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("head after delete: %v", err)
		}
		if _, _, err := s.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("delete missing: %v", err)
		}
	})

	t.Run("EmptyObject", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Put(ctx, "TODO/empty.mp4", strings.NewReader(""), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		h, err := s.Head(ctx, "TODO/empty.mp4")
		if err != nil || h.Size != 0 {
			t.Fatalf("head: %+v %v", h, err)
		}
	})

	t.Run("PutChecksumMismatchCommitsNothing", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Put(ctx, "DONE/x-hevc.mp4", strings.NewReader("abc"), storage.PutOptions{SHA256: sum([]byte("abd"))})
		if !errors.Is(err, storage.ErrChecksum) {
			t.Fatalf("want ErrChecksum, got %v", err)
		}
		if _, err := s.Head(ctx, "DONE/x-hevc.mp4"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("object visible after failed put: %v", err)
		}
	})

	t.Run("ListPaginates", func(t *testing.T) {
		s := newStore(t)
		n := o.ManyKeys
		if n == 0 {
			n = 1005
		}
		want := map[string]bool{}
		for i := 0; i < n; i++ {
			k := fmt.Sprintf("TODO/d%d/f%04d.mp4", i%3, i)
			want[k] = true
			if _, err := s.Put(ctx, k, strings.NewReader("x"), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Put(ctx, "DONE/other-hevc.mp4", strings.NewReader("y"), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		last := ""
		err := storage.Walk(ctx, s, "TODO/", func(ob storage.Object) error {
			if seen[ob.Key] || !want[ob.Key] || ob.Key <= last {
				return fmt.Errorf("unexpected, repeated or unordered key %q after %q", ob.Key, last)
			}
			seen[ob.Key], last = true, ob.Key
			return nil
		})
		if err != nil || len(seen) != n {
			t.Fatalf("walk: %v, saw %d of %d", err, len(seen), n)
		}
		page, err := s.List(ctx, "TODO/", "", 10)
		if err != nil || len(page.Objects) != 10 || page.Next == "" {
			t.Fatalf("page of 10: %d objects, next %q, %v", len(page.Objects), page.Next, err)
		}
		page, err = s.List(ctx, "TODO/d1/f0001", "", 0)
		if err != nil || len(page.Objects) != 1 || page.Next != "" {
			t.Fatalf("prefix within a name: %+v %v", page, err)
		}
	})

	t.Run("GetDetectsTampering", func(t *testing.T) {
		if o.Tamper == nil {
			t.Skip("adapter cannot tamper")
		}
		s := newStore(t)
		data := bytes.Repeat([]byte("good"), 1000)
		if _, err := s.Put(ctx, "DONE/t-hevc.mp4", bytes.NewReader(data), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		bad := append([]byte(nil), data...)
		bad[10] ^= 0xff
		o.Tamper(t, "DONE/t-hevc.mp4", bad)
		r, _, err := s.Get(ctx, "DONE/t-hevc.mp4")
		if err == nil {
			_, err = io.Copy(io.Discard, r)
			r.Close()
		}
		if !errors.Is(err, storage.ErrChecksum) {
			t.Fatalf("tampered object read without ErrChecksum: %v", err)
		}
	})

	// Issue 15, point 3: a job must not delete an object replaced while it
	// ran; deleting the version it worked on succeeds, a missing key too.
	t.Run("DeleteIfSHA256", func(t *testing.T) {
		s := newStore(t)
		key := "TODO/cond/clip.mp4"
		v1, v2 := []byte("version one"), []byte("version two, saved later")
		if _, err := s.Put(ctx, key, bytes.NewReader(v1), storage.PutOptions{Size: int64(len(v1))}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, key, bytes.NewReader(v2), storage.PutOptions{Size: int64(len(v2))}); err != nil {
			t.Fatal(err)
		}
		if err := storage.DeleteIfSHA256(ctx, s, key, sum(v1)); !errors.Is(err, storage.ErrChanged) {
			t.Fatalf("delete of a replaced version: %v, want ErrChanged", err)
		}
		if obj, err := s.Head(ctx, key); err != nil || obj.SHA256 != sum(v2) {
			t.Fatalf("LOST: the newer version: %+v, %v", obj, err)
		}
		if err := storage.DeleteIfSHA256(ctx, s, key, sum(v2)); err != nil {
			t.Fatal(err)
		}
		if ok, err := storage.Exists(ctx, s, key); ok || err != nil {
			t.Fatalf("not deleted: %v, %v", ok, err)
		}
		if err := storage.DeleteIfSHA256(ctx, s, key, sum(v2)); err != nil {
			t.Fatalf("missing key: %v", err)
		}
	})

	t.Run("RejectsUnsafeKeys", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"../x.mp4", "/abs.mp4", "TODO/../../x.mp4", "TODO//x.mp4"} {
			if _, err := s.Put(ctx, k, strings.NewReader("x"), storage.PutOptions{}); err == nil {
				t.Errorf("put %q accepted", k)
			}
		}
	})
}
