//go:build !linux

package library

import (
	"fmt"
	"os"
)

// renameNoReplace has no portable exclusive rename here: refuse.
func renameNoReplace(src, dst string) error {
	return fmt.Errorf("%w: %s", ErrNoExclusiveRename, dst)
}

func renameNoReplaceIn(_ *os.Root, _, dst string) error {
	return fmt.Errorf("%w: %s", ErrNoExclusiveRename, dst)
}
