package downloader

import (
	"io/fs"
	"os"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
)

// InjectTrashErrors makes the trash's steps fail with prepare's or
// commit's error (nil: the real step runs), for machines where a test
// cannot mount a small or separate file system; restore undoes it.
func InjectTrashErrors(prepare, commit error) (restore func()) {
	p, c := prepareTrash, commitTrash
	prepareTrash = func(root *os.Root, rel string, rec library.TrashRecord, mode fs.FileMode) (*library.TrashMove, error) {
		if prepare != nil {
			return nil, prepare
		}
		return p(root, rel, rec, mode)
	}
	commitTrash = func(m *library.TrashMove) error {
		if commit != nil {
			m.Abort()
			return commit
		}
		return c(m)
	}
	return func() { prepareTrash, commitTrash = p, c }
}
