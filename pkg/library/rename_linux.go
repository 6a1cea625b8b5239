package library

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// renameNoReplace renames src to dst, failing with EEXIST when dst exists.
func renameNoReplace(src, dst string) error {
	return exclusive(unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE))
}

// renameNoReplaceIn is renameNoReplace for names relative to root: both
// parent directories are opened through root (no escape), the rename is
// relative to their descriptors.
func renameNoReplaceIn(root *os.Root, src, dst string) error {
	sd, err := root.Open(filepath.Dir(src))
	if err != nil {
		return fmt.Errorf("open directory of %s: %w", src, err)
	}
	defer sd.Close()
	dd, err := root.Open(filepath.Dir(dst))
	if err != nil {
		return fmt.Errorf("open directory of %s: %w", dst, err)
	}
	defer dd.Close()
	return exclusive(unix.Renameat2(int(sd.Fd()), filepath.Base(src), int(dd.Fd()), filepath.Base(dst), unix.RENAME_NOREPLACE))
}

func exclusive(err error) error {
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("%w: %v", ErrNoExclusiveRename, err)
	}
	return err
}
