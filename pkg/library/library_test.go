package library

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
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
		d, err := ParseDone(done)
		if err != nil || d.Hevc != HevcRel(rel) || d.Orig != rel {
			t.Fatalf("done %q: %+v %v", done, d, err)
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
	for _, bad := range []string{"TODO/../x.mp4", "DONE/-hevc.mp4", "DONE/a/-hevc.mp4", "DONE/-hevc-MP4.mp4", "DONE/x.mp4", "DONE/x-hevc-mp4.mp4",
		"DONE/x-hevc.MP4", "OTHER/x-hevc.mp4", "DONE/../../etc/x-hevc.mp4", "DONE/a\x01-hevc.mp4"} {
		if _, err := ParseDone(bad); err == nil {
			t.Errorf("ParseDone(%q) accepted", bad)
		}
	}
	if !IsHevcName("a-HEVC.MP4") || IsHevcName("a.mp4") || !IsVideo("x.MP4") {
		t.Fatal("name predicates")
	}
}

// Issue 15, point 5: control characters and invalid UTF-8 are not library
// paths (S3's XML listings cannot carry U+0001; logs and terminals hide
// them).
func TestCheckRelRejectsControlCharacters(t *testing.T) {
	var bad []string
	for r := rune(0); r < 0x20; r++ {
		bad = append(bad, "a"+string(r)+"b.mp4")
	}
	for r := rune(0x7f); r <= 0x9f; r++ {
		bad = append(bad, "dir/"+string(r)+".mp4")
	}
	bad = append(bad, "a\xff.mp4", "a/\xc3.mp4", "\xed\xa0\x80.mp4" /* surrogate */, "clip\u0085.mp4", "x/y\n/z.mp4", "tab\t.mp4")
	for _, rel := range bad {
		if err := CheckRel(rel); !errors.Is(err, ErrUnsafe) {
			t.Errorf("CheckRel(%q) = %v, want ErrUnsafe", rel, err)
		}
		if _, err := TodoKey(rel); !errors.Is(err, ErrUnsafe) {
			t.Errorf("TodoKey(%q) = %v, want ErrUnsafe", rel, err)
		}
	}
	for _, rel := range []string{"VID 1 +%&<>'\".mp4", "é/日本/\u00a0nbsp\u00a0.MP4", "\u00ff\u200b\U0001F600.mp4", "a~b!c(1).mp4"} {
		if err := CheckRel(rel); err != nil {
			t.Errorf("CheckRel(%q) = %v, want ok", rel, err)
		}
	}
}

// Issue 15, point 5: a.mp4 and a.MP4 in one folder get different DONE/
// keys and result names; the lower-case spelling keeps <rel>-hevc.mp4;
// results are recognised as ours; every key maps back to its original.
func TestEverySpellingGetsItsOwnResult(t *testing.T) {
	for rel, want := range map[string]string{
		"a.mp4":             "a-hevc.mp4",
		"d/a.MP4":           "d/a-hevc-MP4.mp4",
		"d/a.Mp4":           "d/a-hevc-Mp4.mp4",
		"d/a.mP4":           "d/a-hevc-mP4.mp4",
		"d/b.MP4.mp4":       "d/b.MP4-hevc.mp4",
		"d/b.mp4.MP4":       "d/b.mp4-hevc-MP4.mp4",
		"VID 1 +%é.MP4":     "VID 1 +%é-hevc-MP4.mp4",
		"x/a-hevc-MP4x.mp4": "x/a-hevc-MP4x-hevc.mp4",
	} {
		if got := HevcRel(rel); got != want {
			t.Errorf("HevcRel(%q) = %q, want %q", rel, got, want)
		}
		if !IsHevcName(want) || !IsHevcName(path.Base(want)) {
			t.Errorf("IsHevcName(%q) = false: the uploader would upload a result", want)
		}
	}
	// Every original the uploader takes (a video, not one of our names),
	// built from pieces that provoke collisions, maps to a distinct result
	// and back.
	pieces := []string{"a", "a.mp4", "a.MP4", "a-hevc", "a-MP4", "a-hevc-MP4", "a.Mp4", "a-hevc-mp4", "a-hevc.mp4"}
	exts := []string{".mp4", ".MP4", ".Mp4", ".mP4"}
	results := map[string]string{}
	for _, p := range pieces {
		for _, e := range exts {
			rel := "f/" + p + e
			if IsHevcName(rel) {
				continue
			}
			done, err := DoneKey(rel)
			if err != nil {
				t.Fatal(err)
			}
			if other, dup := results[done]; dup {
				t.Errorf("%q and %q share %s", rel, other, done)
			}
			results[done] = rel
			d, err := ParseDone(done)
			if err != nil || d.Orig != rel || DonePrefix+d.Hevc != done {
				t.Errorf("ParseDone(%q) = %+v, %v; want the original %q", done, d, err, rel)
			}
			if legacy, ok := LegacyDoneKey(rel); ok != (e != ".mp4") || (ok && legacy != "DONE/f/"+p+HevcSuffix) {
				t.Errorf("LegacyDoneKey(%q) = %q, %v", rel, legacy, ok)
			}
		}
	}
	// An old-scheme key DONE/a-hevc.mp4 may have been made from a.MP4.
	d, _ := ParseDone("DONE/d/a-hevc.mp4")
	if d.Orig != "d/a.mp4" || !slices.Equal(d.Legacy, []string{"d/a.MP4", "d/a.Mp4", "d/a.mP4"}) {
		t.Errorf("legacy spellings of DONE/d/a-hevc.mp4: %+v", d)
	}
	if d, _ := ParseDone("DONE/d/a-hevc-MP4.mp4"); d.Orig != "d/a.MP4" || len(d.Legacy) != 0 {
		t.Errorf("DONE/d/a-hevc-MP4.mp4: %+v", d)
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
