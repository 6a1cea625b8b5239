package s3

// SetCopyLimit lowers the single-CopyObject limit so that tests reach the
// UploadPartCopy path; it returns a function restoring the old value.
func SetCopyLimit(n int64) (restore func()) {
	old := copyLimit
	copyLimit = n
	return func() { copyLimit = old }
}

// StagingPrefix is where unseekable uploads of unknown SHA-256 are staged.
const StagingPrefix = stagingPrefix
