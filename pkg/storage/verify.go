package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"strings"
)

// Sums are a file's SHA-256 (hex), CRC32C (Castagnoli) and size, from one
// read (PutOptions.SHA256, CRC32C and Size).
type Sums struct {
	SHA256 string
	CRC32C uint32
	Size   int64
}

// SumFile reads the file at p once and returns its Sums.
func SumFile(p string) (Sums, error) {
	f, err := os.Open(p)
	if err != nil {
		return Sums{}, fmt.Errorf("hash %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	c := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	n, err := io.Copy(io.MultiWriter(h, c), f)
	if err != nil {
		return Sums{}, fmt.Errorf("hash %s: %w", p, err)
	}
	return Sums{SHA256: hex.EncodeToString(h.Sum(nil)), CRC32C: c.Sum32(), Size: n}, nil
}

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
