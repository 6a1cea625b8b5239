package downloader_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/pkg/upload"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/downloader"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/internal/testutil"
)

// Issue 17, point 1: ORIGINALS=trash|delete|keep and TRASH_DAYS.

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// converted is an original with a result waiting in DONE/.
type converted struct {
	rel, key, resultSHA, origSHA string
	fi                           os.FileInfo
}

func (f *fixture) converted(rel string) converted {
	f.t.Helper()
	testutil.Clip(f.t, f.path(rel), clip2s)
	c := converted{rel: rel, origSHA: testutil.SHA(f.t, f.path(rel))}
	c.fi, _ = os.Stat(f.path(rel))
	c.key, c.resultSHA = testutil.PutResult(f.t, f.st, f.root, rel, testutil.ResultOpts{})
	return c
}

// checkTrashed asserts that c's original is in the trash, byte for byte,
// with its own mtime, recorded as trashed at `at` and replaced by c's result.
func (f *fixture) checkTrashed(c converted, at time.Time) {
	t := f.t
	t.Helper()
	p := filepath.Join(library.TrashDir(f.root), filepath.FromSlash(c.rel))
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("original not in the trash: %v", err)
	}
	if got := testutil.SHA(t, p); got != c.origSHA {
		t.Errorf("trashed original differs from the original")
	}
	if !fi.ModTime().Equal(c.fi.ModTime()) {
		t.Errorf("trashed original's mtime %v, want its own %v", fi.ModTime(), c.fi.ModTime())
	}
	entries, err := library.ListTrash(f.root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Rel != c.rel {
			continue
		}
		if e.Record == nil || !e.Trashed.Equal(at) || e.Record.Result != library.HevcRel(c.rel) || e.Record.ResultSHA256 != c.resultSHA || e.Record.SHA256 != c.origSHA {
			t.Errorf("trash record %+v, want trashed %v, result %s %s", e.Record, at, library.HevcRel(c.rel), c.resultSHA)
		}
		return
	}
	t.Errorf("%s not listed in the trash: %+v", c.rel, entries)
}

// checkKeptInPlace asserts that the result was installed and the
// original kept where it was, unchanged, and nothing left in the trash.
func (f *fixture) checkKeptInPlace(c converted, res downloader.Result, why string) {
	t := f.t
	t.Helper()
	if res.Outcome != downloader.Installed || !res.OriginalKept || !strings.Contains(res.Reason, why) || res.Trashed != "" {
		t.Errorf("result %+v, want installed with the original kept (%s)", res, why)
	}
	if got := testutil.SHA(t, f.path(c.rel)); got != c.origSHA {
		t.Errorf("original changed")
	}
	if got := testutil.SHA(t, f.path(library.HevcRel(c.rel))); got != c.resultSHA {
		t.Errorf("result not installed")
	}
	if ok, _ := storage.Exists(context.Background(), f.st, c.key); ok {
		t.Errorf("%s still in the bucket although installed", c.key)
	}
	if files, _, _, _ := library.TrashUsage(f.root); files != 0 {
		t.Errorf("%d files in the trash", files)
	}
	f.checkNoTemps()
}

func TestOriginalsConfig(t *testing.T) {
	for _, tc := range []struct {
		env       map[string]string
		originals string
		days      int
		err       string
	}{
		{env: nil, originals: "trash", days: 30},
		{env: map[string]string{"ORIGINALS": "keep", "TRASH_DAYS": "7"}, originals: "keep", days: 7},
		{env: map[string]string{"ORIGINALS": "delete"}, originals: "delete", days: 30},
		{env: map[string]string{"ORIGINALS": "recycle"}, err: "ORIGINALS"},
		{env: map[string]string{"TRASH_DAYS": "0"}, err: "TRASH_DAYS"},
	} {
		var c downloader.Config
		s := config.New("t", "")
		c.BindOriginals(s)
		s.SetGetenv(func(k string) string { return tc.env[k] })
		err := s.Parse(nil)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want one naming %s", tc.env, err, tc.err)
			}
			continue
		}
		if err != nil || c.Originals != tc.originals || c.TrashDays != tc.days {
			t.Errorf("%v: %q %d %v", tc.env, c.Originals, c.TrashDays, err)
		}
	}
}

// The default moves the verified original into the trash: nothing lost,
// its bytes and mtime kept, its record says when and which result.
func TestOriginalsTrashByDefault(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	for _, kind := range []string{"fs", "s3"} {
		t.Run(kind, func(t *testing.T) {
			f := newFixture(t, kind)
			f.d.Now = func() time.Time { return t0 }
			c := f.converted("alice/Trip 2024/VID é 1.mp4")
			res := f.install(c.key)
			want := filepath.Join(library.TrashDir(f.root), filepath.FromSlash(c.rel))
			if res.Outcome != downloader.Installed || res.OriginalKept || res.Trashed != want {
				t.Fatalf("result %+v, want installed with the original trashed to %s", res, want)
			}
			f.checkInstalled(c.rel, c.key, c.resultSHA, 0, c.fi.ModTime())
			f.checkTrashed(c, t0)
			files, bytes, oldest, err := library.TrashUsage(f.root)
			if err != nil || files != 1 || bytes != c.fi.Size() || !oldest.Equal(t0) {
				t.Errorf("usage %d %d %v %v", files, bytes, oldest, err)
			}
		})
	}
}

func TestOriginalsDelete(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	f.d.Cfg.Originals = downloader.OriginalsDelete
	c := f.converted("bob/clip.mp4")
	if res := f.install(c.key); res.Outcome != downloader.Installed || res.Trashed != "" || res.OriginalKept {
		t.Fatalf("result %+v", res)
	}
	f.checkInstalled(c.rel, c.key, c.resultSHA, 0, c.fi.ModTime())
	if _, err := os.Lstat(library.TrashDir(f.root)); !os.IsNotExist(err) {
		t.Errorf("trash made with ORIGINALS=delete: %v", err)
	}
}

// keep leaves the original beside its result, and the uploader does not
// send it again as new work.
func TestOriginalsKeep(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "s3")
	f.d.Cfg.Originals = downloader.OriginalsKeep
	c := f.converted("carol/clip.mp4")
	res := f.install(c.key)
	if res.Outcome != downloader.Installed || res.Trashed != "" || res.OriginalKept {
		t.Fatalf("result %+v", res)
	}
	if got := testutil.SHA(t, f.path(c.rel)); got != c.origSHA {
		t.Errorf("original changed")
	}
	if fi, _ := os.Stat(f.path(c.rel)); !fi.ModTime().Equal(c.fi.ModTime()) {
		t.Errorf("original's mtime changed")
	}
	if got := testutil.SHA(t, f.path(library.HevcRel(c.rel))); got != c.resultSHA {
		t.Errorf("result not installed")
	}
	if ok, _ := storage.Exists(context.Background(), f.st, c.key); ok {
		t.Errorf("%s still in the bucket", c.key)
	}
	if _, err := os.Lstat(library.TrashDir(f.root)); !os.IsNotExist(err) {
		t.Errorf("trash made with ORIGINALS=keep: %v", err)
	}
	u := &upload.Uploader{Store: f.st, Log: testLogger(t), Cfg: upload.Config{Root: f.root, Include: "*.mp4", Concurrency: 1}}
	sum, err := u.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if keys := testutil.Keys(t, f.st, library.TodoPrefix); sum.Uploaded != 0 || len(keys) != 0 {
		t.Errorf("the kept original was uploaded again: %d uploaded, TODO/ %v", sum.Uploaded, keys)
	}
}

// TRASH_DAYS counts from when the original was trashed (the record), not
// from its own old mtime: purged by the reconcile after 30 days, not 29.
func TestTrashPurgedAfterTrashDays(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	now := t0
	f.d.Now = func() time.Time { return now }
	f.d.Cfg.TrashDays = 30
	c := f.converted("dave/old clip.mp4")
	old := t0.AddDate(-3, 0, 0) // filmed three years ago
	os.Chtimes(f.path(c.rel), old, old)
	c.fi, _ = os.Stat(f.path(c.rel))
	f.install(c.key)
	f.checkTrashed(c, t0)
	ctx := context.Background()

	now = t0.Add(29*24*time.Hour + 23*time.Hour)
	if err := f.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	f.checkTrashed(c, t0)

	now = t0.Add(30 * 24 * time.Hour)
	if err := f.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if files, _, _, err := library.TrashUsage(f.root); files != 0 || err != nil {
		t.Errorf("%d files in the trash after TRASH_DAYS (%v)", files, err)
	}
	if got := testutil.SHA(t, f.path(library.HevcRel(c.rel))); got != c.resultSHA {
		t.Errorf("result touched by the purge")
	}
}

// mountTmpfs mounts a tmpfs at dir, or says why it cannot (not root).
func mountTmpfs(t *testing.T, dir, size string) error {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("TEST_NO_MOUNT") != "" { // to try the fallback where mounting works
		return errors.New("TEST_NO_MOUNT is set")
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		return err
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return nil
}

// A trash on another file system is never reached by a copy: the
// original stays in place, beside its installed result, and the reason is
// reported. A mount (rename: EXDEV) and a symlink out of the library
// (refused by the library root) are both tried; where the test cannot
// mount, the mount's EXDEV is injected at the rename.
func TestTrashOnAnotherFileSystem(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	t.Run("mount", func(t *testing.T) {
		f := newFixture(t, "fs")
		c := f.converted("erin/clip.mp4")
		trash := library.TrashDir(f.root)
		if err := mountTmpfs(t, trash, "8m"); err != nil {
			t.Logf("cannot mount a tmpfs on the trash (%v): injecting EXDEV at the rename instead", err)
			defer downloader.InjectTrashErrors(nil, fmt.Errorf("%w: %w", library.ErrTrashElsewhere, syscall.EXDEV))()
		}
		res := f.install(c.key)
		f.checkKeptInPlace(c, res, "another file system")
		if ents, _ := os.ReadDir(filepath.Join(trash, "erin")); len(ents) != 0 {
			t.Errorf("left in the other file system's trash: %v", ents)
		}
	})
	t.Run("symlink", func(t *testing.T) {
		f := newFixture(t, "fs")
		c := f.converted("erin/clip.mp4")
		// /dev/shm where there is one: a tmpfs, another file system.
		elsewhere, err := os.MkdirTemp("/dev/shm", "trash-*")
		if err != nil {
			elsewhere = t.TempDir()
		} else {
			t.Cleanup(func() { os.RemoveAll(elsewhere) })
		}
		os.MkdirAll(library.StateDir(f.root), 0o755)
		if err := os.Symlink(elsewhere, library.TrashDir(f.root)); err != nil {
			t.Fatal(err)
		}
		res := f.install(c.key)
		f.checkKeptInPlace(c, res, "another file system")
		if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
			t.Errorf("written through the symlink: %v", ents)
		}
	})
}

// A full disk when the original is due for the trash: it stays where it
// is, beside its installed result; nothing is lost and nothing is left
// half-made. The library is a small tmpfs filled up right before the
// original is retired; where the test cannot mount one, ENOSPC is
// injected where the trash's directory and record are written.
func TestTrashFullDisk(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	filler := filepath.Join(f.root, "filler")
	if err := mountTmpfs(t, f.root, "16m"); err != nil {
		t.Logf("cannot mount a small tmpfs (%v): injecting ENOSPC where the trash record is written instead", err)
		defer downloader.InjectTrashErrors(fmt.Errorf("write trash record: %w", syscall.ENOSPC), nil)()
		filler = ""
	}
	c := f.converted("frank/clip.mp4")
	f.d.Crash = func(point string) {
		if point != downloader.CrashRetiring || filler == "" {
			return
		}
		fd, err := os.Create(filler)
		if err != nil {
			t.Errorf("fill: %v", err)
			return
		}
		defer fd.Close()
		buf := make([]byte, 1<<20)
		for {
			if _, err := fd.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Errorf("fill: %v", err)
				}
				return
			}
		}
	}
	res := f.install(c.key)
	if filler != "" {
		os.Remove(filler)
	}
	f.checkKeptInPlace(c, res, "no space left")
	if ents, _ := os.ReadDir(filepath.Join(library.TrashDir(f.root), "frank")); len(ents) != 0 {
		t.Errorf("half-made trash entry left: %v", ents)
	}
}

// installTrashed installs c with the default ORIGINALS=trash.
func (f *fixture) installTrashed(c converted) {
	f.t.Helper()
	if res := f.install(c.key); res.Outcome != downloader.Installed || res.Trashed == "" {
		f.t.Fatalf("result %+v, want installed and trashed", res)
	}
}

// restore brings the original back with its bytes and mtime and removes
// the result installed from it.
func TestRestore(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "s3")
	c := f.converted("gina/Holiday/clip 1.mp4")
	f.installTrashed(c)
	rep, err := library.Restore(f.root, c.rel, false, 0)
	if err != nil || !rep.ResultRemoved || rep.Path != f.path(c.rel) {
		t.Fatalf("restore: %+v %v", rep, err)
	}
	if got := testutil.SHA(t, f.path(c.rel)); got != c.origSHA {
		t.Errorf("restored original differs")
	}
	if fi, _ := os.Stat(f.path(c.rel)); !fi.ModTime().Equal(c.fi.ModTime()) {
		t.Errorf("restored original's mtime %v, want %v", fi.ModTime(), c.fi.ModTime())
	}
	if _, err := os.Lstat(f.path(library.HevcRel(c.rel))); !os.IsNotExist(err) {
		t.Errorf("result not removed: %v", err)
	}
	if files, _, _, _ := library.TrashUsage(f.root); files != 0 {
		t.Errorf("%d files still in the trash", files)
	}
	f.checkNoTemps()
}

// A newer file where the original would go back: refused, both stay.
func TestRestoreOverNewerFileRefused(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	c := f.converted("hank/clip.mp4")
	f.installTrashed(c)
	testutil.Clip(t, f.path(c.rel), mediatest.ClipOpts{Seconds: 3}) // filmed again, same name
	newer := testutil.SHA(t, f.path(c.rel))
	_, err := library.Restore(f.root, c.rel, false, 0)
	if !errors.Is(err, library.ErrRestoreTaken) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("restore over a newer file: %v", err)
	}
	if got := testutil.SHA(t, f.path(c.rel)); got != newer {
		t.Errorf("newer file changed")
	}
	f.checkTrashed(c, t0Of(t, f, c))
	if got := testutil.SHA(t, f.path(library.HevcRel(c.rel))); got != c.resultSHA {
		t.Errorf("result touched by a refused restore")
	}
}

func t0Of(t *testing.T, f *fixture, c converted) time.Time {
	entries, err := library.ListTrash(f.root)
	if err != nil || len(entries) != 1 {
		t.Fatalf("trash %v %v", entries, err)
	}
	return entries[0].Trashed
}

// A -hevc.mp4 that is not the installed result (re-encoded by hand since)
// is not ours: the original comes back, that file stays.
func TestRestoreKeepsResultNotOurs(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	f := newFixture(t, "fs")
	c := f.converted("ivy/clip.mp4")
	f.installTrashed(c)
	hevc := f.path(library.HevcRel(c.rel))
	os.Remove(hevc)
	testutil.Clip(t, hevc, mediatest.ClipOpts{Seconds: 2, HEVC: true, AudioTracks: 2})
	theirs := testutil.SHA(t, hevc)
	rep, err := library.Restore(f.root, c.rel, false, 0)
	if err != nil || rep.ResultRemoved || !strings.Contains(rep.ResultKept, "not ours") {
		t.Fatalf("restore: %+v %v", rep, err)
	}
	if got := testutil.SHA(t, f.path(c.rel)); got != c.origSHA {
		t.Errorf("original not restored")
	}
	if got := testutil.SHA(t, hevc); got != theirs {
		t.Errorf("a -hevc.mp4 that is not ours was changed or removed")
	}
}
