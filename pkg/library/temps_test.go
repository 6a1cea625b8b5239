//go:build unix

package library

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// crash drops a temp file the way a killed process does: the record's
// lock goes with the process, the temp name and the record stay.
func crash(tf *TempFile) {
	tf.File.Close()
	tf.record.Close()
	tf.record = nil
}

// Issue 15, point 1: a sweep removes only temp files its owner recorded
// and that no live process holds. User files named like temp files (of
// either service), a live temp file, and another owner's leftovers stay.
func TestSweepRemovesOnlyRecordedTemps(t *testing.T) {
	lib := t.TempDir()
	dir := filepath.Join(lib, "alice", "Camera")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	user := map[string][]byte{
		".hevc-tmp-":    []byte("a user's file"),
		".hevc-tmp-123": []byte("a Nextcloud upload"),
		".hevc-tmp-dl-0123456789abcdef0123456789abcdef":   []byte("looks like ours"),
		".hevc-tmp-sync-0123456789abcdef0123456789abcdef": []byte("looks like ours too"),
		"clip.mp4": []byte("video"),
	}
	for n, b := range user {
		write(t, filepath.Join(dir, n), b)
	}
	root, err := os.OpenRoot(lib)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	dl, err := OpenTemps(StateDir(lib), "dl", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	sync, err := OpenTemps(StateDir(lib), "sync", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	// Left by a killed downloader, one per service, and a live one of a
	// second downloader process (its own Temps: a separate lock).
	dead, err := dl.Create(root, "alice/Camera")
	if err != nil {
		t.Fatal(err)
	}
	dead.WriteString("partial")
	crash(dead)
	deadSync, err := sync.Create(nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	crash(deadSync)
	other, _ := OpenTemps(StateDir(lib), "dl", 0o755)
	live, err := other.Create(root, "alice/Camera")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Release()
	// A record whose creator died before it created the temp file, and a
	// record pointing at a user's file by a name it does not own.
	empty, err := dl.Create(root, "alice/Camera")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(empty.path)
	crash(empty)
	forged := filepath.Join(dl.dir, "dl-ffffffffffffffffffffffffffffffff")
	write(t, forged, []byte(filepath.Join(dir, "clip.mp4")+"\n"))

	var gone []string
	if err := dl.Sweep(func(p string) { gone = append(gone, p) }); err != nil {
		t.Fatal(err)
	}
	if len(gone) != 1 || gone[0] != dead.path {
		t.Errorf("swept %v, want only %s", gone, dead.path)
	}
	if _, err := os.Lstat(dead.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead temp file still there: %v", err)
	}
	for n, b := range user {
		if got, err := os.ReadFile(filepath.Join(dir, n)); err != nil || !bytes.Equal(got, b) {
			t.Errorf("user file %s: %v (content %q)", n, err, got)
		}
	}
	if _, err := os.Lstat(live.path); err != nil {
		t.Errorf("live temp file removed: %v", err)
	}
	if _, err := os.Lstat(deadSync.path); err != nil {
		t.Errorf("the syncer's temp file removed by the downloader's sweep: %v", err)
	}
	recs, _ := os.ReadDir(dl.dir)
	var names []string
	for _, e := range recs {
		names = append(names, e.Name())
	}
	if len(names) != 2 || !strings.Contains(strings.Join(names, ","), filepath.Base(live.record.Name())) {
		t.Errorf("records left %v, want the live one and the syncer's", names)
	}
	// The syncer's own sweep takes its leftover.
	if err := sync.Sweep(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(deadSync.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("syncer's dead temp file still there: %v", err)
	}
	// Release removes the temp name and its record.
	live.Release()
	if _, err := os.Lstat(live.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("released temp file still there")
	}
	if recs, _ := os.ReadDir(dl.dir); len(recs) != 0 {
		t.Errorf("records left after release: %v", recs)
	}
}

// Issue 15, point 7: where hard links are impossible, the fallback is a
// rename that refuses to replace, never check-then-rename: an existing
// target is kept and reported as ErrExists.
func TestLinkNoReplaceFallbackNeverOverwrites(t *testing.T) {
	linkHook = func(src, dst string) error {
		return &os.LinkError{Op: "link", Old: src, New: dst, Err: syscall.EPERM}
	}
	defer func() { linkHook = nil }()
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, viaRoot := range []bool{false, true} {
		src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
		write(t, src, []byte("new"))
		write(t, dst, []byte("someone's file"))
		link := func() error {
			if viaRoot {
				return LinkNoReplaceIn(root, "src", "dst")
			}
			return LinkNoReplace(src, dst)
		}
		if err := link(); !errors.Is(err, ErrExists) {
			t.Errorf("root %v: got %v, want ErrExists", viaRoot, err)
		}
		if b, _ := os.ReadFile(dst); string(b) != "someone's file" {
			t.Errorf("root %v: target overwritten: %q", viaRoot, b)
		}
		if b, _ := os.ReadFile(src); string(b) != "new" {
			t.Errorf("root %v: source lost: %q", viaRoot, b)
		}
		os.Remove(dst)
		if err := link(); err != nil {
			t.Errorf("root %v: free name: %v", viaRoot, err)
		}
		if b, _ := os.ReadFile(dst); string(b) != "new" {
			t.Errorf("root %v: not installed: %q", viaRoot, b)
		}
		os.Remove(dst)
	}
}
