package downloader

import (
	"os"
	"syscall"
)

// startWriteback asks the kernel to start writing [off, off+n) of f to
// disk without waiting for it (sync_file_range SYNC_FILE_RANGE_WRITE). It
// is only a head start for the fsync that follows: errors are ignored.
func startWriteback(f *os.File, off, n int64) {
	const syncFileRangeWrite = 2
	_ = syscall.SyncFileRange(int(f.Fd()), off, n, syncFileRangeWrite)
}

// openDirect opens rel (in root) a second time for writes that bypass the page
// cache (O_DIRECT); nil where the file system refuses it (tmpfs on older
// kernels, some network file systems): everything then goes through the
// page cache.
func openDirect(root *os.Root, rel string) *os.File {
	f, err := root.OpenFile(rel, os.O_WRONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return f
}

func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
