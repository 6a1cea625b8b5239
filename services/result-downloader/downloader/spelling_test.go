package downloader_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/downloader"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/internal/testutil"
)

// Issue 15, point 5: a.mp4 and a.MP4 in one folder have their own DONE/
// keys and their own results, and each original is removed only after its
// own result is installed.
func TestSpellingsGetTheirOwnResults(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	lower, upper := "cam/a.mp4", "cam/a.MP4"
	testutil.Clip(t, f.path(lower), clip2s)
	testutil.Clip(t, f.path(upper), mediatest.ClipOpts{Seconds: 3})
	keyL, shaL := testutil.PutResult(t, f.st, f.root, lower, testutil.ResultOpts{})
	keyU, shaU := testutil.PutResult(t, f.st, f.root, upper, testutil.ResultOpts{})
	if keyL != "DONE/cam/a-hevc.mp4" || keyU != "DONE/cam/a-hevc-MP4.mp4" {
		t.Fatalf("keys %s, %s", keyL, keyU)
	}
	upperSHA := testutil.SHA(t, f.path(upper))
	if res := f.install(keyL); res.Outcome != downloader.Installed {
		t.Fatalf("install %s: %+v", keyL, res)
	}
	f.checkInstalled(lower, keyL, shaL, 0, time.Time{})
	f.checkKept(upper, keyU, upperSHA) // not retired by a.mp4's result
	if res := f.install(keyU); res.Outcome != downloader.Installed {
		t.Fatalf("install %s: %+v", keyU, res)
	}
	f.checkInstalled(upper, keyU, shaU, 0, time.Time{})
	if testutil.SHA(t, f.path("cam/a-hevc.mp4")) != shaL {
		t.Errorf("a-hevc.mp4 changed after a.MP4's result was installed")
	}
}

// legacyResult moves the result of rel (spelled .MP4) to the key it had
// before spellings were told apart: DONE/<stem>-hevc.mp4.
func legacyResult(t *testing.T, f *fixture, rel string) (key, sha string) {
	t.Helper()
	newKey, sha := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{})
	key, ok := library.LegacyDoneKey(rel)
	if !ok {
		t.Fatalf("%s has no legacy key", rel)
	}
	copyObject(t, f.st, newKey, key)
	return key, sha
}

// A result made before spellings were told apart (DONE/a-hevc.mp4 for a
// lone a.MP4) is still installed for it, under the name it was made with.
func TestLegacyResultOfCameraSpelling(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	stores(t, func(t *testing.T, f *fixture) {
		rel := "old/VID_0002.MP4"
		testutil.Clip(t, f.path(rel), clip2s)
		fi, _ := os.Stat(f.path(rel))
		key, sha := legacyResult(t, f, rel)
		if key != "DONE/old/VID_0002-hevc.mp4" {
			t.Fatalf("legacy key %s", key)
		}
		if res := f.install(key); res.Outcome != downloader.Installed || res.Before != fi.Size() {
			t.Fatalf("install %s: %+v", key, res)
		}
		if got := testutil.SHA(t, f.path("old/VID_0002-hevc.mp4")); got != sha {
			t.Errorf("installed %s, want %s", got, sha)
		}
		if _, err := os.Stat(f.path(rel)); !os.IsNotExist(err) {
			t.Errorf("original still there: %v", err)
		}
		if ok, _ := storage.Exists(context.Background(), f.st, key); ok {
			t.Errorf("%s still in DONE/", key)
		}
		f.checkNoTemps()
	})
}

// With a.mp4 and a.MP4 side by side, an old DONE/a-hevc.mp4 made from a.MP4
// is not installed over a.mp4 (whose key it now is), nor over a.MP4
// (whose key it no longer is): it stays in DONE/, reported, both originals
// intact. Likewise when a.MP4 and a.Mp4 both exist and no a.mp4.
func TestLegacyResultAmbiguousIsLeftInDone(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	testutil.Clip(t, f.path("both/a.mp4"), clip2s)
	testutil.Clip(t, f.path("both/a.MP4"), mediatest.ClipOpts{Seconds: 3})
	testutil.Clip(t, f.path("two/b.MP4"), clip2s)
	testutil.Clip(t, f.path("two/b.Mp4"), mediatest.ClipOpts{Seconds: 3})
	shas := map[string]string{}
	for _, rel := range []string{"both/a.mp4", "both/a.MP4", "two/b.MP4", "two/b.Mp4"} {
		shas[rel] = testutil.SHA(t, f.path(rel))
	}
	for key, want := range map[string]string{"both/a.MP4": "a.MP4", "two/b.MP4": "b.MP4 and b.Mp4"} {
		k, _ := legacyResult(t, f, key)
		res := f.install(k)
		if res.Outcome != downloader.Rejected || !strings.Contains(res.Reason, want) {
			t.Errorf("install %s: %+v, want rejected naming %s", k, res, want)
		}
		t.Logf("reported: %s", res.Reason)
		if ok, _ := storage.Exists(context.Background(), f.st, k); !ok {
			t.Errorf("%s left DONE/", k)
		}
	}
	for rel, sha := range shas {
		if testutil.SHA(t, f.path(rel)) != sha {
			t.Errorf("%s changed", rel)
		}
	}
	for _, rel := range []string{"both/a-hevc.mp4", "both/a-hevc-MP4.mp4", "two/b-hevc.mp4", "two/b-hevc-MP4.mp4"} {
		if _, err := os.Lstat(f.path(rel)); !os.IsNotExist(err) {
			t.Errorf("%s installed", rel)
		}
	}
	f.checkNoTemps()
}
