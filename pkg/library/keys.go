// Package library maps library files to object keys and back, and writes
// files into the library atomically without ever overwriting.
//
//	<rel>.mp4  ⇄  TODO/<rel>.mp4  ⇄  DONE/<rel>-hevc.mp4, FAILED/<rel>.mp4.json
package library

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
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

// CheckRel validates a library-relative, '/'-separated path: not empty, not
// absolute, no empty, "." or ".." segments, no '\' and no NUL.
func CheckRel(rel string) error {
	switch {
	case rel == "":
		return fmt.Errorf("%w: empty path", ErrUnsafe)
	case strings.HasPrefix(rel, "/"):
		return fmt.Errorf("%w: %q is absolute", ErrUnsafe, rel)
	case strings.ContainsAny(rel, "\\\x00"):
		return fmt.Errorf("%w: %q contains a backslash or NUL", ErrUnsafe, rel)
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q has an empty, '.' or '..' segment", ErrUnsafe, rel)
		}
	}
	return nil
}

// IsVideo reports whether name has a .mp4 extension (any case: cameras write
// .MP4).
func IsVideo(name string) bool { return strings.EqualFold(path.Ext(name), ".mp4") }

// IsHevcName reports whether name is one of our outputs (*-hevc.mp4).
func IsHevcName(name string) bool {
	return len(name) >= len(HevcSuffix) && strings.EqualFold(name[len(name)-len(HevcSuffix):], HevcSuffix)
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

// HevcRel is the library path of the encoded file: <rel>.mp4 → <rel>-hevc.mp4.
func HevcRel(rel string) string {
	return rel[:len(rel)-len(path.Ext(rel))] + HevcSuffix
}

// DoneKey is the result key of a library file.
func DoneKey(rel string) (string, error) {
	if _, err := TodoKey(rel); err != nil {
		return "", err
	}
	return DonePrefix + HevcRel(rel), nil
}

// FailedKey is the failure-record key of a library file.
func FailedKey(rel string) (string, error) {
	if _, err := TodoKey(rel); err != nil {
		return "", err
	}
	return FailedPrefix + rel + ".json", nil
}

// RelsFromDone maps DONE/<x>-hevc.mp4 to the library path of the encoded
// file (<x>-hevc.mp4) and the stem <x>. The original's extension is not in
// the key (it may have been .MP4), so callers look for <x>.mp4 in any case.
func RelsFromDone(key string) (hevcRel, stem string, err error) {
	hevcRel, ok := strings.CutPrefix(key, DonePrefix)
	if !ok || !strings.HasSuffix(hevcRel, HevcSuffix) || len(hevcRel) == len(HevcSuffix) {
		return "", "", fmt.Errorf("%w: key %q is not DONE/<rel>-hevc.mp4", ErrUnsafe, key)
	}
	if err := CheckRel(hevcRel); err != nil {
		return "", "", err
	}
	return hevcRel, strings.TrimSuffix(hevcRel, HevcSuffix), nil
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
