//go:build !linux

package downloader

import "os"

// startWriteback is a no-op where sync_file_range does not exist; the
// final fsync writes everything.
func startWriteback(*os.File, int64, int64) {}

// openDirect: no O_DIRECT here; every write goes through the page cache.
func openDirect(*os.Root, string) *os.File { return nil }

func fdatasync(f *os.File) error { return f.Sync() }
