// Package testutil builds libraries and results for result-downloader's
// tests: real clips from ffmpeg's lavfi sources (generated once per test
// binary and copied), DONE/ objects shaped like the processor's, and a
// stand-in processor that turns TODO/ objects into DONE/ results.
package testutil

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

var cache struct {
	mu    sync.Mutex
	dir   string
	clips map[string]string
}

// Cleanup removes the clip cache; call it from TestMain after m.Run.
func Cleanup() {
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if cache.dir != "" {
		os.RemoveAll(cache.dir)
		cache.dir, cache.clips = "", nil
	}
}

// Clip copies a generated clip (made once per distinct opts) to dst,
// creating dst's directory, and gives it an mtime an hour ago.
func Clip(t testing.TB, dst string, o mediatest.ClipOpts) {
	t.Helper()
	src := cached(t, o)
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	WriteFile(t, dst, b)
}

// WriteFile writes b to dst (creating its directory) with an mtime an
// hour ago, so that MIN_AGE does not skip it.
func WriteFile(t testing.TB, dst string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(dst, old, old); err != nil {
		t.Fatal(err)
	}
}

func cached(t testing.TB, o mediatest.ClipOpts) string {
	t.Helper()
	key := fmt.Sprintf("%+v", o)
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if p, ok := cache.clips[key]; ok {
		return p
	}
	if cache.dir == "" {
		d, err := os.MkdirTemp("", "rd-test-clips-*")
		if err != nil {
			t.Fatal(err)
		}
		cache.dir, cache.clips = d, map[string]string{}
	}
	p := filepath.Join(cache.dir, strconv.Itoa(len(cache.clips))+".mp4")
	mediatest.Clip(t, p, o)
	cache.clips[key] = p
	return p
}

// SHA hashes a file.
func SHA(t testing.TB, p string) string {
	t.Helper()
	s, _, err := library.FileSHA256(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ResultOpts shape a result made by PutResult.
type ResultOpts struct {
	// Seconds of the HEVC clip; 0: the original's duration.
	Seconds float64
	// NoSourceMetadata leaves out source-size/-sha256/-mtime (an original
	// uploaded by an older uploader).
	NoSourceMetadata bool
	// SourceSHA overrides the recorded source SHA-256.
	SourceSHA string
	// NoDuration leaves out the duration hevc-processor records on the
	// results it verified (an object some other tool put in DONE/).
	NoDuration bool
	// Corrupt damages the clip's media data before it is stored (its
	// recorded SHA-256 is of the damaged bytes): it still probes, with the
	// right streams and duration, but does not decode cleanly.
	Corrupt bool
}

// PutResult stores DONE/<rel-without-.mp4>-hevc.mp4 for the library file
// orig (which must exist) as the processor would: an HEVC clip as long as
// the original with its audio tracks, and metadata source-size,
// source-sha256, source-mtime and duration. It returns the key and the
// result's SHA-256.
func PutResult(t testing.TB, st storage.Store, root, rel string, ro ResultOpts) (string, string) {
	t.Helper()
	orig := filepath.Join(root, filepath.FromSlash(rel))
	info, err := media.Probe(context.Background(), orig)
	if err != nil {
		t.Fatalf("probe %s: %v", orig, err)
	}
	fi, err := os.Stat(orig)
	if err != nil {
		t.Fatal(err)
	}
	secs := ro.Seconds
	if secs == 0 {
		secs = roundSeconds(info.Duration)
	}
	o := mediatest.ClipOpts{Seconds: secs, HEVC: true, AudioTracks: info.Count("audio"), NoAudio: info.Count("audio") == 0}
	b, err := os.ReadFile(cached(t, o))
	if err != nil {
		t.Fatal(err)
	}
	if ro.Corrupt {
		b = append([]byte(nil), b...)
		for i := len(b) * 3 / 10; i < len(b)*3/10+4096 && i < len(b); i++ {
			b[i] ^= 0x55
		}
	}
	md := map[string]string{}
	if !ro.NoDuration {
		md[storage.MetaDuration] = strconv.FormatFloat(info.Duration, 'f', 3, 64)
	}
	if !ro.NoSourceMetadata {
		md[storage.MetaSourceSize] = strconv.FormatInt(fi.Size(), 10)
		md[storage.MetaSourceSHA] = SHA(t, orig)
		md[storage.MetaSourceMtime] = fi.ModTime().UTC().Format(time.RFC3339Nano)
		if ro.SourceSHA != "" {
			md[storage.MetaSourceSHA] = ro.SourceSHA
		}
	}
	key, err := library.DoneKey(rel)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := st.Put(context.Background(), key, bytes.NewReader(b), storage.PutOptions{Size: int64(len(b)), Metadata: md})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return key, obj.SHA256
}

func roundSeconds(d float64) float64 {
	// lavfi clips are whole seconds; AAC priming makes probes a bit longer.
	return float64(int(d + 0.5))
}

// Process is a stand-in for hevc-processor: for every object in TODO/ it
// stores a matching HEVC result in DONE/ (made from the library original
// under root) and deletes the TODO/ object. fail, when it returns a reason
// for a key, writes FAILED/<rel>.mp4.json instead. It returns how many jobs
// it finished.
func Process(t testing.TB, st storage.Store, root string, fail func(key string) string) int {
	t.Helper()
	ctx := context.Background()
	var keys []string
	if err := storage.Walk(ctx, st, library.TodoPrefix, func(o storage.Object) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		t.Fatalf("list TODO/: %v", err)
	}
	for _, k := range keys {
		rel, err := library.RelFromTodo(k)
		if err != nil {
			t.Fatalf("TODO key %s: %v", k, err)
		}
		if reason := failReason(fail, k); reason != "" {
			fk, _ := library.FailedKey(rel)
			h, _ := st.Head(ctx, k)
			rec := fmt.Sprintf(`{"key":%q,"status":"failed","reason":%q,"source_size":%d,"source_sha256":%q}`, k, reason, h.Size, h.SHA256)
			if _, err := st.Put(ctx, fk, bytes.NewReader([]byte(rec)), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		} else {
			PutResult(t, st, root, rel, ResultOpts{})
		}
		if err := st.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	return len(keys)
}

func failReason(fail func(string) string, key string) string {
	if fail == nil {
		return ""
	}
	return fail(key)
}

// ReadAll reads an object.
func ReadAll(t testing.TB, st storage.Store, key string) []byte {
	t.Helper()
	r, _, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

// Keys lists the keys under prefix.
func Keys(t testing.TB, st storage.Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := storage.Walk(context.Background(), st, prefix, func(o storage.Object) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		t.Fatalf("list %s: %v", prefix, err)
	}
	return keys
}

// Files lists the regular files under root (relative, '/'-separated),
// skipping directories named .bucket and the library's state directory
// (.hevc-encoder: its history, temp-file records, trash).
func Files(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && p != root && (d.Name() == ".bucket" || d.Name() == library.StateDirName) {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			r, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(r))
		}
		return nil
	})
	return out
}
