package syncer_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
)

// Issue 15, point 1: files on Nextcloud named like our temp files are
// moved under their own names like any other, and later passes (whose
// cleanup runs in the same folders) leave them alone, as they leave the
// downloader's live temp files alone.
func TestTempNamedUserFilesAreMovedAndKept(t *testing.T) {
	e := newEnv(t, "alice")
	names := []string{".hevc-tmp-holiday.mp4", ".hevc-tmp-", "sub/.hevc-tmp-sync-0123456789abcdef0123456789abcdef",
		".hevc-tmp-dl-0123456789abcdef0123456789abcdef", "sub/VID_1.mp4"}
	for i, n := range names {
		e.put("alice", n, data(uint64(10+i), 3000+i), "sha1")
	}
	want := e.snapshot()
	if _, err := e.run(e.config()); err != nil {
		t.Fatal(err)
	}
	e.checkAllMoved(want)
	loc := e.local("alice")
	for _, n := range names {
		if loc[n] != want["alice"][n] {
			t.Errorf("%s not moved under its own name: %v", n, loc)
		}
	}
	// A result-downloader is downloading into sub/ meanwhile.
	temps, err := library.OpenTemps(library.StateDir(e.lib), "dl", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	live, err := temps.Create(nil, filepath.Join(e.libDir("alice"), "sub"))
	if err != nil {
		t.Fatal(err)
	}
	live.WriteString("a download in progress")

	// More passes, with new files in the same folders.
	for i := range 2 {
		e.put("alice", "sub/VID_next"+string(rune('a'+i))+".mp4", data(uint64(20+i), 2000), "sha1")
		e.put("alice", "IMG_next"+string(rune('a'+i))+".jpg", data(uint64(30+i), 2000), "")
		for u, files := range e.snapshot() {
			for k, v := range files {
				want[u][k] = v
			}
		}
		if _, err := e.run(e.config()); err != nil {
			t.Fatal(err)
		}
		loc := e.local("alice")
		for _, n := range names {
			if loc[n] != want["alice"][n] {
				t.Errorf("pass %d: LOST: %s, moved from Nextcloud, is gone from the library", i+2, n)
			}
		}
		if b, err := os.ReadFile(live.Name()); err != nil || !bytes.Equal(b, []byte("a download in progress")) {
			t.Errorf("pass %d: the downloader's live temp file was removed: %v", i+2, err)
		}
	}
	live.Release()
	e.checkAllMoved(want)
}

// Issue 15, point 7: a server that sends no ETag gets no unconditional
// DELETE. A file saved again on the server just before the DELETE (after
// the copy was verified) stays there; the next pass moves that version
// too, and both are kept.
func TestNoETagDeleteIsConditional(t *testing.T) {
	e := newEnv(t, "alice")
	e.srv.NoETags = true
	rel := "VID_edit.mp4"
	orig, next := data(1, 4000), data(2, 5000)
	e.put("alice", rel, orig, "sha1")
	e.put("alice", "sub/IMG_1.jpg", data(3, 1000), "")
	want := e.snapshot()
	e.saveBeforeDelete("alice", rel, next)
	sums, err := e.run(e.config())
	if err != nil {
		t.Fatal(err)
	}
	if s := e.summary(sums, "alice"); s.Deferred != 1 || s.Files != 1 {
		t.Errorf("summary %+v, want 1 moved and 1 deferred", s)
	}
	e.checkNoLoss(want)
	if e.remote("alice")[rel] != sha(next) {
		t.Fatal("LOST: the version saved after the copy was deleted on the server (unconditional DELETE)")
	}
	if _, err := e.run(e.config()); err != nil {
		t.Fatal(err)
	}
	want["alice"][rel] = sha(next)
	e.checkNoLoss(want)
	loc := e.local("alice")
	if loc[rel] != sha(orig) || loc["VID_edit (1).mp4"] != sha(next) {
		t.Errorf("want both versions kept: %v", loc)
	}
	if len(e.remote("alice")) != 0 {
		t.Errorf("files left on the server: %v", e.remote("alice"))
	}
}
