package downloader_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/history"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/downloader"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/internal/testutil"
)

// withMetadata stores key again with extra metadata (what hevc-processor
// records: encode time, task usage).
func withMetadata(t *testing.T, st storage.Store, key string, extra map[string]string) string {
	t.Helper()
	h, err := st.Head(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	md := map[string]string{}
	for k, v := range h.Metadata {
		if k != storage.MetaSHA256 {
			md[k] = v
		}
	}
	for k, v := range extra {
		md[k] = v
	}
	b := testutil.ReadAll(t, st, key)
	obj, err := st.Put(context.Background(), key, bytes.NewReader(b), storage.PutOptions{Size: int64(len(b)), Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	return obj.SHA256
}

func putFailed(t *testing.T, st storage.Store, rel, status, reason string, size, out int64, at time.Time) {
	t.Helper()
	fk, err := library.FailedKey(rel)
	if err != nil {
		t.Fatal(err)
	}
	todo, _ := library.TodoKey(rel)
	rec := fmt.Sprintf(`{"key":%q,"status":%q,"reason":%q,"source_size":%d,"output_size":%d,"encode_seconds":7.5,"time":%q}`,
		todo, status, reason, size, out, at.UTC().Format(time.RFC3339Nano))
	if _, err := st.Put(context.Background(), fk, strings.NewReader(rec), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func readHistory(t *testing.T, root string) map[string][]history.Entry {
	t.Helper()
	entries, damaged, err := history.ReadFile(history.Path(root))
	if err != nil || damaged != 0 {
		t.Fatalf("history: %v, %d damaged lines", err, damaged)
	}
	out := map[string][]history.Entry{}
	for _, e := range entries {
		out[e.Key] = append(out[e.Key], e)
	}
	return out
}

// TestHistoryRecordsEveryFinishedFile: an installed result, a rejected
// one, and the processor's FAILED/ records (a failure and a no-gain) each
// leave exactly one line in the library's history, with their sizes,
// encode time, task usage and reason, however many reconciles, downloaders
// and restarts meet them; a record written again (a new failure of the
// file) is a new line. Nothing is lost on the way.
func TestHistoryRecordsEveryFinishedFile(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	for _, kind := range []string{"fs", "s3"} {
		t.Run(kind, func(t *testing.T) {
			f := newFixture(t, kind)
			ctx := context.Background()
			good, bad := "alice/VID 1 é.mp4", "alice/tampered.mp4"
			testutil.Clip(t, f.path(good), clip2s)
			testutil.Clip(t, f.path(bad), clip2s)
			goodSize := fileSize(t, f.path(good))
			badSHA := testutil.SHA(t, f.path(bad))
			goodKey, _ := testutil.PutResult(t, f.st, f.root, good, testutil.ResultOpts{})
			goodSHA := withMetadata(t, f.st, goodKey, map[string]string{storage.MetaEncodeSeconds: "12.5", "vcpu-seconds": "25.0", "gb-seconds": "50.0"})
			badKey, _ := testutil.PutResult(t, f.st, f.root, bad, testutil.ResultOpts{})
			b := testutil.ReadAll(t, f.st, badKey)
			b[len(b)/2] ^= 0xff
			f.tamper(badKey, b)
			failedAt := time.Date(2026, 11, 30, 8, 0, 0, 123, time.UTC)
			putFailed(t, f.st, "bad/zero.mp4", "failed", "bad/zero.mp4 is empty (0 bytes)", 0, 0, failedAt)
			putFailed(t, f.st, "big/same.mp4", "no-gain", "HEVC output (900 bytes) is not smaller than the input (800 bytes); original kept", 800, 900, failedAt)

			// Two reconciles by this downloader, then another downloader
			// (another process on the same library: its own history Log).
			for i := 0; i < 2; i++ {
				if err := f.d.Reconcile(ctx); err != nil {
					t.Fatal(err)
				}
			}
			other := &downloader.Downloader{Store: f.st, Log: testLogger(t), Cfg: f.d.Cfg}
			if err := other.Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
			if n, err := other.RecordFailures(ctx); err != nil || n != 0 {
				t.Errorf("failures recorded again: %d %v", n, err)
			}
			f.checkInstalled(good, goodKey, goodSHA, 0, time.Time{})
			f.checkKept(bad, badKey, badSHA)

			h := readHistory(t, f.root)
			if len(h) != 4 {
				t.Errorf("history keys %v, want 4", h)
			}
			for k, es := range h {
				if len(es) != 1 {
					t.Errorf("%s: %d lines, want 1: %+v", k, len(es), es)
				}
			}
			if e := h[good]; len(e) == 0 || e[0].Outcome != history.Converted || e[0].BytesBefore != goodSize || e[0].BytesAfter == 0 ||
				e[0].BytesAfter >= e[0].BytesBefore || e[0].EncodeSeconds != 12.5 || e[0].VCPUSeconds != 25 || e[0].GBSeconds != 50 || e[0].Time.IsZero() {
				t.Errorf("converted line %+v", e)
			}
			if e := h[bad]; len(e) == 0 || e[0].Outcome != history.Rejected || !strings.Contains(e[0].Reason, "checksum") || e[0].BytesBefore == 0 {
				t.Errorf("rejected line %+v", e)
			}
			if e := h["bad/zero.mp4"]; len(e) == 0 || e[0].Outcome != history.Failed || e[0].Reason != "bad/zero.mp4 is empty (0 bytes)" ||
				!e[0].Time.Equal(failedAt) || e[0].EncodeSeconds != 7.5 {
				t.Errorf("failed line %+v", e)
			}
			if e := h["big/same.mp4"]; len(e) == 0 || e[0].Outcome != history.NoGain || e[0].BytesBefore != 800 || e[0].BytesAfter != 900 {
				t.Errorf("no-gain line %+v", e)
			}

			// The file failed again later: its record is rewritten, one new line.
			putFailed(t, f.st, "bad/zero.mp4", "failed", "bad/zero.mp4 is empty (0 bytes)", 0, 0, failedAt.Add(time.Hour))
			if err := f.d.Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
			if err := other.Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
			if n := len(readHistory(t, f.root)["bad/zero.mp4"]); n != 2 {
				t.Errorf("re-failed file: %d lines, want 2", n)
			}
			// Nothing else was written to the library.
			for _, p := range testutil.Files(t, f.root) {
				if p != library.HevcRel(good) && p != bad {
					t.Errorf("unexpected file %s", p)
				}
			}
		})
	}
}

// A history that cannot be written never stops an install.
func TestHistoryUnwritableDoesNotBlockInstall(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	rel := "a/clip.mp4"
	testutil.Clip(t, f.path(rel), clip2s)
	key, sha := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{})
	// A directory where the history file should be.
	if err := os.MkdirAll(history.Path(f.root), 0o755); err != nil {
		t.Fatal(err)
	}
	if res := f.install(key); res.Outcome != downloader.Installed {
		t.Fatalf("result %+v", res)
	}
	f.checkInstalled(rel, key, sha, 0, time.Time{})
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
