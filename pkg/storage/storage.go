// Package storage is the object-store port: the S3 subset the pipeline needs.
// Adapters: fs (a directory is a bucket; the embedded default) and s3.
package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped) by Get, Head and Delete-less lookups when
// the key does not exist. Test with errors.Is.
var ErrNotFound = errors.New("object not found")

// ErrChecksum is returned (wrapped) when data read or written does not match
// its recorded SHA-256.
var ErrChecksum = errors.New("checksum mismatch")

// Metadata keys the pipeline records on every object it writes (S3 user
// metadata; lower-case because S3 folds them).
const (
	MetaSHA256      = "sha256"       // hex SHA-256 of the object's bytes
	MetaSourceSize  = "source-size"  // size in bytes of the library file it came from
	MetaSourceMtime = "source-mtime" // RFC 3339 mtime of the library file it came from
	MetaSourceSHA   = "source-sha256"
	// MetaDuration is the input's duration in seconds, recorded by
	// hevc-processor on the results it stores. It commits a result only
	// after verifying it, every video and audio packet decoded included,
	// so a result carrying it was decoded before it was stored (the
	// bytes: sha256).
	MetaDuration = "duration"
	// MetaEncodeSeconds is the wall time in seconds hevc-processor spent
	// on the job until its result was ready (for the library's history).
	MetaEncodeSeconds = "encode-seconds"
)

// Object describes a stored object.
type Object struct {
	Key      string
	Size     int64
	Modified time.Time
	// SHA256 is the hex SHA-256 of the whole object when the store knows it
	// (from Put or from metadata); empty when unknown.
	SHA256   string
	Metadata map[string]string
}

// PutOptions tunes Put.
type PutOptions struct {
	// Size is the length of the stream when known (-1 or 0 when unknown for
	// streams; 0 is also a valid size for empty objects, so adapters must not
	// rely on it).
	Size int64
	// SHA256, when set, is the expected hex SHA-256 of the stream; the
	// adapter fails with ErrChecksum (and commits nothing) if it differs.
	SHA256 string
	// CRC32C, when set with SHA256 and Size, is the stream's CRC32C
	// (Castagnoli) from the same pass that computed SHA256 (SumFile). An
	// adapter then checks the stream it sends against this cheap checksum
	// and Size instead of hashing SHA-256 a second time; a stream that
	// differs from the one hashed is still refused with ErrChecksum.
	CRC32C   *uint32
	Metadata map[string]string
}

// ListPage is one page of a listing.
type ListPage struct {
	Objects []Object
	// Next is the token for the following page; empty on the last page.
	Next string
}

// Store is the object-store port.
type Store interface {
	// Bucket names the bucket, as it appears in event notifications.
	Bucket() string
	// Put streams r into key. The object becomes visible only once fully
	// written and verified (never a partial object). It records SHA-256 in
	// the metadata and returns the committed object's description.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Object, error)
	// Get streams the object. The caller closes the reader. The returned
	// Object carries SHA256 when known, and the reader verifies it: at EOF
	// it compares the SHA-256 of everything read and fails with an error
	// wrapping ErrChecksum instead of io.EOF on a mismatch.
	Get(ctx context.Context, key string) (io.ReadCloser, Object, error)
	Head(ctx context.Context, key string) (Object, error)
	// List returns keys under prefix in lexical order, at most max per page
	// (max <= 0 means the adapter's default, 1000 on S3). token is the Next
	// of the previous page, "" for the first.
	List(ctx context.Context, prefix, token string, max int) (ListPage, error)
	// Delete removes key; deleting a missing key is not an error (as on S3).
	Delete(ctx context.Context, key string) error
}

// Walk calls fn for every object under prefix, following pagination.
func Walk(ctx context.Context, s Store, prefix string, fn func(Object) error) error {
	token := ""
	for {
		page, err := s.List(ctx, prefix, token, 0)
		if err != nil {
			return err
		}
		for _, o := range page.Objects {
			if err := fn(o); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		token = page.Next
	}
}

// Exists reports whether key exists.
func Exists(ctx context.Context, s Store, key string) (bool, error) {
	_, err := s.Head(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Presigner is implemented by stores that can hand out a time-limited URL
// to read an object over HTTP (with range requests), so that ffmpeg can
// start encoding while the input is still arriving.
type Presigner interface {
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
}
