//go:build !linux

package downloader

import "os"

// startWriteback is a no-op where sync_file_range does not exist; the
// final fsync writes everything.
func startWriteback(*os.File, int64, int64) {}
