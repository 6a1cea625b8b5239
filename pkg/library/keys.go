// Package library maps library files to object keys and back, and writes
// files into the library atomically without ever overwriting.
//
//	<rel>.mp4  ⇄  TODO/<rel>.mp4  ⇄  DONE/<stem>-hevc.mp4, FAILED/<rel>.mp4.json
//	<stem>.MP4 ⇄  TODO/<stem>.MP4 ⇄  DONE/<stem>-hevc-MP4.mp4 (any spelling
//	                                 but .mp4 likewise: -hevc-Mp4.mp4, …)
//
// Every original has its own result name, so a.mp4 and a.MP4 in one folder
// never share a DONE/ key or a library file.
package library

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Prefixes of the bucket layout.
const (
	TodoPrefix   = "TODO/"
	DonePrefix   = "DONE/"
	FailedPrefix = "FAILED/"
	HevcSuffix   = "-hevc.mp4"
)

// ErrUnsafe is returned (wrapped) for a path or key that would escape the
// library or is malformed.
var ErrUnsafe = errors.New("unsafe library path")

// CheckRel validates a library-relative, '/'-separated path: valid UTF-8,
// not empty, not absolute, no empty, "." or ".." segments, no '\' and no
// control character (C0 including NUL, DEL, C1 U+0080–U+009F). Control
// characters cannot travel in S3's XML listings (XML 1.0 has no U+0001),
// hide in logs and terminals, and no camera writes them.
func CheckRel(rel string) error {
	switch {
	case rel == "":
		return fmt.Errorf("%w: empty path", ErrUnsafe)
	case !utf8.ValidString(rel):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrUnsafe, rel)
	case strings.HasPrefix(rel, "/"):
		return fmt.Errorf("%w: %q is absolute", ErrUnsafe, rel)
	case strings.Contains(rel, "\\"):
		return fmt.Errorf("%w: %q contains a backslash", ErrUnsafe, rel)
	case strings.IndexFunc(rel, isControl) >= 0:
		return fmt.Errorf("%w: %q contains a control character", ErrUnsafe, rel)
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q has an empty, '.' or '..' segment", ErrUnsafe, rel)
		}
	}
	return nil
}

// isControl: C0 (NUL included), DEL and C1.
func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) }

// IsVideo reports whether name has a .mp4 extension (any case: cameras write
// .MP4).
func IsVideo(name string) bool { return strings.EqualFold(path.Ext(name), ".mp4") }

// IsHevcName reports whether name is one of our outputs: *-hevc.mp4, or
// *-hevc-MP4.mp4 (the result of an original spelled .MP4, .Mp4 or .mP4),
// in any case. The uploader never uploads these.
func IsHevcName(name string) bool {
	return hasSuffixFold(name, HevcSuffix) || hasSuffixFold(name, "-hevc-mp4.mp4")
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// TodoKey is the work key of a library file.
func TodoKey(rel string) (string, error) {
	if err := CheckRel(rel); err != nil {
		return "", err
	}
	if !IsVideo(rel) {
		return "", fmt.Errorf("%w: %q is not an .mp4", ErrUnsafe, rel)
	}
	return TodoPrefix + rel, nil
}

// RelFromTodo is the inverse of TodoKey.
func RelFromTodo(key string) (string, error) {
	rel, ok := strings.CutPrefix(key, TodoPrefix)
	if !ok || !IsVideo(rel) {
		return "", fmt.Errorf("%w: key %q is not TODO/<rel>.mp4", ErrUnsafe, key)
	}
	return rel, CheckRel(rel)
}

// HevcRel is the library path of the encoded file of the original rel:
// <stem>.mp4 → <stem>-hevc.mp4 (most files, and every result made before
// spellings were told apart), and for any other spelling of the extension
// <stem>.MP4 → <stem>-hevc-MP4.mp4, so that a.mp4 and a.MP4 in one folder
// get different results. The spelling goes before ".mp4" rather than
// giving a.MP4-hevc.mp4: every name ending in -hevc.mp4 is already the
// result of some lower-case original (a.MP4-hevc.mp4 is a.MP4.mp4's), so
// only a name outside that set cannot collide. Results always end in
// lower-case .mp4 and IsHevcName recognises both forms.
func HevcRel(rel string) string {
	ext := path.Ext(rel)
	stem := rel[:len(rel)-len(ext)]
	if ext == ".mp4" || !IsVideo(rel) {
		return stem + HevcSuffix
	}
	return stem + "-hevc-" + ext[1:] + ".mp4"
}

// DoneKey is the result key of a library file.
func DoneKey(rel string) (string, error) {
	if _, err := TodoKey(rel); err != nil {
		return "", err
	}
	return DonePrefix + HevcRel(rel), nil
}

// LegacyDoneKey is the result key an original spelled other than .mp4 had
// before spellings were told apart (DONE/a-hevc.mp4 for a.MP4); ok is
// false for a lower-case .mp4, whose key never changed.
func LegacyDoneKey(rel string) (key string, ok bool) {
	if _, err := TodoKey(rel); err != nil || path.Ext(rel) == ".mp4" {
		return "", false
	}
	return DonePrefix + rel[:len(rel)-len(path.Ext(rel))] + HevcSuffix, true
}

// FailedKey is the failure-record key of a library file.
func FailedKey(rel string) (string, error) {
	if _, err := TodoKey(rel); err != nil {
		return "", err
	}
	return FailedPrefix + rel + ".json", nil
}

// Done is a DONE/ key taken apart.
type Done struct {
	// Hevc is the library path the result is installed at (the key
	// without DONE/).
	Hevc string
	// Orig is the library path of the original it was made from.
	Orig string
	// Legacy lists the other spellings an original of a DONE/<x>-hevc.mp4
	// key may have had before spellings were told apart (x.MP4, x.Mp4,
	// x.mP4). They count only when Orig does not exist and exactly one of
	// them does; when Orig exists the key is Orig's.
	Legacy []string
}

// ParseDone is the inverse of DoneKey: DONE/<x>-hevc.mp4 was made from
// <x>.mp4 (or, made earlier, from a Legacy spelling), DONE/<x>-hevc-MP4.mp4
// from <x>.MP4.
func ParseDone(key string) (Done, error) {
	hevc, ok := strings.CutPrefix(key, DonePrefix)
	bad := func() (Done, error) {
		return Done{}, fmt.Errorf("%w: key %q is not DONE/<rel>-hevc.mp4", ErrUnsafe, key)
	}
	if !ok {
		return bad()
	}
	if err := CheckRel(hevc); err != nil {
		return Done{}, err
	}
	if stem, ok := strings.CutSuffix(hevc, HevcSuffix); ok {
		if stem == "" || strings.HasSuffix(stem, "/") {
			return bad()
		}
		return Done{Hevc: hevc, Orig: stem + ".mp4", Legacy: []string{stem + ".MP4", stem + ".Mp4", stem + ".mP4"}}, nil
	}
	for _, ext := range []string{"MP4", "Mp4", "mP4"} {
		if stem, ok := strings.CutSuffix(hevc, "-hevc-"+ext+".mp4"); ok {
			if stem == "" || strings.HasSuffix(stem, "/") {
				return bad()
			}
			return Done{Hevc: hevc, Orig: stem + "." + ext}, nil
		}
	}
	return bad()
}

// Path joins a checked rel under root.
func Path(root, rel string) (string, error) {
	if err := CheckRel(rel); err != nil {
		return "", err
	}
	return filepath.Join(root, filepath.FromSlash(rel)), nil
}

// Rel is the library-relative, '/'-separated path of p under root.
func Rel(root, p string) (string, error) {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return "", fmt.Errorf("%w: %s is not under %s", ErrUnsafe, p, root)
	}
	r = filepath.ToSlash(r)
	return r, CheckRel(r)
}
