//go:build !linux

package syncer

import (
	"io/fs"
	"time"
)

func changedAgo(fs.FileInfo) (time.Duration, bool) { return 0, false }

type writeback struct{}

func newWriteback(string, int64) *writeback { return nil }
func (w *writeback) wrote(int)              {}
func (w *writeback) close()                 {}
