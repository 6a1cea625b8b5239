//go:build linux

package library

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// trashFile moves rel of lib to the trash as the downloader does, with
// result as the file installed in its place.
func trashFile(t *testing.T, lib, rel, result string, at time.Time) {
	t.Helper()
	root, err := os.OpenRoot(lib)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	fi, err := os.Stat(filepath.Join(lib, rel))
	if err != nil {
		t.Fatal(err)
	}
	rec := TrashRecord{Rel: rel, Trashed: at, Size: fi.Size(), Mtime: fi.ModTime()}
	if result != "" {
		rp := filepath.Join(lib, result)
		rfi, err := os.Stat(rp)
		if err != nil {
			t.Fatal(err)
		}
		rec.Result, rec.ResultSize, rec.ResultSHA256 = result, rfi.Size(), sum(t, rp)
	}
	mv, err := PrepareTrash(root, filepath.FromSlash(rel), rec, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if err := mv.Commit(); err != nil {
		t.Fatal(err)
	}
}

// Pure logic of the trash with an injected clock: the grace period counts
// from the record, not from the file's own (kept) mtime; a file found
// without a record gets one dated now; usage sums what is there.
func TestTrashPurgeByRecordedTime(t *testing.T) {
	lib := t.TempDir()
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	old := t0.Add(-400 * 24 * time.Hour) // the original's own mtime: a year older
	for _, rel := range []string{"a/old.mp4", "a/new.mp4"} {
		write(t, filepath.Join(lib, rel), []byte("original "+rel))
		os.Chtimes(filepath.Join(lib, rel), old, old)
	}
	trashFile(t, lib, "a/old.mp4", "", t0)
	trashFile(t, lib, "a/new.mp4", "", t0.Add(10*24*time.Hour))
	if fi, _ := os.Stat(filepath.Join(TrashDir(lib), "a", "old.mp4")); !fi.ModTime().Equal(old) {
		t.Errorf("trashed file's mtime %v, want the original's %v", fi.ModTime(), old)
	}
	// A file put there without a record (by hand, or after a lost record).
	write(t, filepath.Join(TrashDir(lib), "b", "stray.mp4"), []byte("stray"))

	files, bytes, oldest, err := TrashUsage(lib)
	if err != nil || files != 3 || bytes != int64(len("original a/old.mp4")+len("original a/new.mp4")+len("stray")) || !oldest.Equal(t0) {
		t.Fatalf("usage %d files %d bytes oldest %v err %v", files, bytes, oldest, err)
	}

	age := 30 * 24 * time.Hour
	// 29 days on: nothing old enough; the stray gets its record.
	rep, err := PurgeTrash(lib, age, t0.Add(29*24*time.Hour), nil)
	if err != nil || rep.Removed != 0 || rep.Recorded != 1 {
		t.Fatalf("purge at 29 days: %+v %v", rep, err)
	}
	// 30 days on: the first goes, with its record.
	var gone []string
	rep, err = PurgeTrash(lib, age, t0.Add(30*24*time.Hour), func(e TrashEntry) { gone = append(gone, e.Rel) })
	if err != nil || rep.Removed != 1 || rep.Bytes != int64(len("original a/old.mp4")) || len(gone) != 1 || gone[0] != "a/old.mp4" {
		t.Fatalf("purge at 30 days: %+v %v %v", rep, gone, err)
	}
	for _, p := range []string{"a/old.mp4", "a/old.mp4" + trashRecordSuffix} {
		if _, err := os.Lstat(filepath.Join(TrashDir(lib), p)); !os.IsNotExist(err) {
			t.Errorf("%s still in the trash (%v)", p, err)
		}
	}
	// The stray's grace period started at the 29-day purge.
	rep, _ = PurgeTrash(lib, age, t0.Add(41*24*time.Hour), nil)
	if rep.Removed != 1 {
		t.Errorf("purge at 41 days removed %d, want a/new.mp4 only", rep.Removed)
	}
	if _, err := os.Stat(filepath.Join(TrashDir(lib), "b", "stray.mp4")); err != nil {
		t.Errorf("stray removed before its grace period: %v", err)
	}
	rep, _ = PurgeTrash(lib, age, t0.Add(60*24*time.Hour), nil)
	if rep.Removed != 1 {
		t.Errorf("purge at 60 days removed %d, want the stray", rep.Removed)
	}
	if files, _, _, _ := TrashUsage(lib); files != 0 {
		t.Errorf("%d files left in the trash", files)
	}
	// Emptied directories go once they are old enough.
	PurgeTrash(lib, age, time.Now().Add(2*time.Hour), nil)
	if ents, _ := os.ReadDir(TrashDir(lib)); len(ents) != 0 {
		t.Errorf("trash not emptied: %v", ents)
	}
}

// The move never replaces: a name already in the trash keeps the original
// in place; a record whose move never happened is dropped by a purge.
func TestTrashNeverReplaces(t *testing.T) {
	lib := t.TempDir()
	now := time.Now()
	write(t, filepath.Join(lib, "x/clip.mp4"), []byte("first"))
	trashFile(t, lib, "x/clip.mp4", "", now)
	write(t, filepath.Join(lib, "x/clip.mp4"), []byte("second"))
	root, _ := os.OpenRoot(lib)
	defer root.Close()
	_, err := PrepareTrash(root, "x/clip.mp4", TrashRecord{Rel: "x/clip.mp4", Trashed: now}, 0)
	if !errors.Is(err, ErrTrashTaken) {
		t.Fatalf("second move: %v, want ErrTrashTaken", err)
	}
	if b, _ := os.ReadFile(filepath.Join(lib, "x/clip.mp4")); string(b) != "second" {
		t.Errorf("original changed: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(TrashDir(lib), "x/clip.mp4")); string(b) != "first" {
		t.Errorf("trashed file changed: %q", b)
	}
	// A crash after the record, before the move: the record alone.
	write(t, filepath.Join(lib, "y/clip.mp4"), []byte("y"))
	mv, err := PrepareTrash(root, "y/clip.mp4", TrashRecord{Rel: "y/clip.mp4", Trashed: now}, 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = mv // never committed
	rec := filepath.Join(TrashDir(lib), "y/clip.mp4"+trashRecordSuffix)
	os.Chtimes(rec, now.Add(-2*time.Hour), now.Add(-2*time.Hour))
	if files, _, _, _ := TrashUsage(lib); files != 1 {
		t.Errorf("a record alone counts as a file: %d", files)
	}
	PurgeTrash(lib, time.Hour, now, nil)
	if _, err := os.Lstat(rec); !os.IsNotExist(err) {
		t.Errorf("record of a move that never happened left: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(lib, "y/clip.mp4")); string(b) != "y" {
		t.Errorf("original of the unfinished move changed: %q", b)
	}
}

// Restore: back by rename with its mtime, never over a file; the result
// goes only when it is the very file recorded.
func TestRestoreRules(t *testing.T) {
	lib := t.TempDir()
	now := time.Now()
	mt := now.Add(-48 * time.Hour).Truncate(time.Second)
	for _, n := range []string{"ok", "newer", "edited", "norecord", "keep"} {
		rel := "r/" + n + ".mp4"
		write(t, filepath.Join(lib, rel), []byte("original "+n))
		os.Chtimes(filepath.Join(lib, rel), mt, mt)
		write(t, filepath.Join(lib, HevcRel(rel)), []byte("result "+n))
		trashFile(t, lib, rel, HevcRel(rel), now)
	}
	p := func(rel string) string { return filepath.Join(lib, filepath.FromSlash(rel)) }
	tp := func(rel string) string { return filepath.Join(TrashDir(lib), filepath.FromSlash(rel)) }

	rep, err := Restore(lib, "r/ok.mp4", false, 0)
	if err != nil || !rep.ResultRemoved {
		t.Fatalf("restore: %+v %v", rep, err)
	}
	if fi, err := os.Stat(p("r/ok.mp4")); err != nil || !fi.ModTime().Equal(mt) {
		t.Errorf("restored original: %v %v, want mtime %v", fi, err, mt)
	}
	if _, err := os.Stat(p("r/ok-hevc.mp4")); !os.IsNotExist(err) {
		t.Errorf("result not removed: %v", err)
	}
	if _, err := os.Lstat(tp("r/ok.mp4" + trashRecordSuffix)); !os.IsNotExist(err) {
		t.Errorf("record left: %v", err)
	}

	write(t, p("r/newer.mp4"), []byte("a newer file"))
	_, err = Restore(lib, "r/newer.mp4", false, 0)
	if !errors.Is(err, ErrRestoreTaken) || !strings.Contains(err.Error(), tp("r/newer.mp4")) {
		t.Fatalf("restore over a newer file: %v", err)
	}
	if b, _ := os.ReadFile(p("r/newer.mp4")); string(b) != "a newer file" {
		t.Errorf("newer file changed")
	}
	if b, _ := os.ReadFile(tp("r/newer.mp4")); string(b) != "original newer" {
		t.Errorf("trashed original changed")
	}
	if _, err := os.Stat(p("r/newer-hevc.mp4")); err != nil {
		t.Errorf("result touched by a refused restore: %v", err)
	}

	write(t, p("r/edited-hevc.mp4"), []byte("result edited, then edited again"))
	rep, err = Restore(lib, "r/edited.mp4", false, 0)
	if err != nil || rep.ResultRemoved || !strings.Contains(rep.ResultKept, "not ours") {
		t.Fatalf("restore with an edited result: %+v %v", rep, err)
	}
	if _, err := os.Stat(p("r/edited-hevc.mp4")); err != nil {
		t.Errorf("edited result removed: %v", err)
	}

	os.Remove(tp("r/norecord.mp4" + trashRecordSuffix))
	rep, err = Restore(lib, "r/norecord.mp4", false, 0)
	if err != nil || rep.ResultRemoved || rep.ResultKept == "" {
		t.Fatalf("restore without a record: %+v %v", rep, err)
	}
	if _, err := os.Stat(p("r/norecord-hevc.mp4")); err != nil {
		t.Errorf("result removed without a record: %v", err)
	}

	rep, err = Restore(lib, "r/keep.mp4", true, 0)
	if err != nil || rep.ResultRemoved {
		t.Fatalf("restore --keep-result: %+v %v", rep, err)
	}
	if _, err := os.Stat(p("r/keep-hevc.mp4")); err != nil {
		t.Errorf("result removed despite keepResult: %v", err)
	}

	for _, bad := range []string{"r/missing.mp4", "../x.mp4", "/etc/passwd"} {
		if _, err := Restore(lib, bad, false, 0); err == nil {
			t.Errorf("restore %q: no error", bad)
		}
	}
}
