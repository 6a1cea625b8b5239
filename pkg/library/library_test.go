package library

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestKeys(t *testing.T) {
	for _, rel := range []string{"a.mp4", "Smartphones/bob/VID 1 #+%'\"é.MP4"} {
		todo, err := TodoKey(rel)
		if err != nil {
			t.Fatal(err)
		}
		back, err := RelFromTodo(todo)
		if err != nil || back != rel {
			t.Fatalf("%q → %q → %q %v", rel, todo, back, err)
		}
		done, _ := DoneKey(rel)
		hevc, stem, err := RelsFromDone(done)
		if err != nil || hevc != HevcRel(rel) || stem+filepath.Ext(rel) != rel {
			t.Fatalf("done %q: %q %q %v", done, hevc, stem, err)
		}
		if f, _ := FailedKey(rel); f != "FAILED/"+rel+".json" {
			t.Fatal(f)
		}
	}
	for _, bad := range []string{"", "/a.mp4", "../a.mp4", "a/../../b.mp4", "a//b.mp4", "a\\b.mp4", "a\x00.mp4", "./a.mp4", "a.txt"} {
		if _, err := TodoKey(bad); !errors.Is(err, ErrUnsafe) {
			t.Errorf("TodoKey(%q) = %v, want ErrUnsafe", bad, err)
		}
	}
	for _, bad := range []string{"TODO/../x.mp4", "DONE/-hevc.mp4", "DONE/x.mp4", "OTHER/x-hevc.mp4", "DONE/../../etc/x-hevc.mp4"} {
		if _, _, err := RelsFromDone(bad); err == nil {
			t.Errorf("RelsFromDone(%q) accepted", bad)
		}
	}
	if !IsHevcName("a-HEVC.MP4") || IsHevcName("a.mp4") || !IsVideo("x.MP4") {
		t.Fatal("name predicates")
	}
}

func TestTempCommitNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "sub", "x-hevc.mp4")
	tmp, err := CreateTemp(target, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	tmp.Write([]byte("hello"))
	if err := tmp.Commit(5, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(target)
	if string(b) != "hello" {
		t.Fatal(string(b))
	}
	tmp2, _ := CreateTemp(target, 0o755)
	tmp2.Write([]byte("other"))
	if err := tmp2.Commit(-1, "", 0o644); !errors.Is(err, ErrExists) {
		t.Fatalf("want ErrExists, got %v", err)
	}
	tmp2.Abort()
	b, _ = os.ReadFile(target)
	if string(b) != "hello" {
		t.Fatal("overwritten")
	}
	tmp3, _ := CreateTemp(filepath.Join(dir, "y"), 0o755)
	tmp3.Write([]byte("abc"))
	if err := tmp3.Commit(-1, "00", 0o644); !errors.Is(err, ErrChecksum) {
		t.Fatalf("want ErrChecksum, got %v", err)
	}
	tmp3.Abort()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if IsTemp(e.Name()) || e.Name() == "y" {
			t.Fatalf("left behind %s", e.Name())
		}
	}
}
