//go:build !unix

package history

import "os"

// Without flock, appends from one process are still serialised by Log's
// mutex; other processes' lines may then be duplicated, never torn.
func lock(*os.File) error { return nil }
func unlock(*os.File)     {}
