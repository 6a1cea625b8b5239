package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
)

// VerifyingReader wraps r and, at EOF, compares the SHA-256 of everything
// read with want (hex). On mismatch the final Read returns an error wrapping
// ErrChecksum instead of io.EOF, so a consumer that copies to EOF never
// mistakes a corrupted object for a good one. want == "" disables the check.
func VerifyingReader(r io.ReadCloser, key, want string) io.ReadCloser {
	if want == "" {
		return r
	}
	return &verifying{ReadCloser: r, key: key, want: strings.ToLower(want), h: sha256.New()}
}

type verifying struct {
	io.ReadCloser
	key, want string
	h         hash.Hash
}

func (v *verifying) Read(p []byte) (int, error) {
	n, err := v.ReadCloser.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return n, fmt.Errorf("%w: %s: read sha256 %s, recorded %s", ErrChecksum, v.key, got, v.want)
		}
	}
	return n, err
}
