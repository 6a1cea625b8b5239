package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrChanged is returned (wrapped) by DeleteIfSHA256 when the object under
// the key is not the version the caller worked on (replaced meanwhile).
var ErrChanged = errors.New("object is not the expected version")

// ConditionalDeleter is implemented by stores that delete an object only
// while it is the version with a given SHA-256, in one request.
type ConditionalDeleter interface {
	DeleteIfSHA256(ctx context.Context, key, sha256 string) error
}

// DeleteIfSHA256 deletes key only if the object there is the version whose
// SHA-256 (recorded at Put) is sha256: a newer version put meanwhile stays
// (ErrChanged). A missing key is not an error, as with Delete. Stores
// that can delete conditionally do so in one request (S3: If-Match on the
// ETag of the version whose SHA-256 was checked); others compare, then
// delete, which leaves a window of one request.
func DeleteIfSHA256(ctx context.Context, s Store, key, sha256 string) error {
	if sha256 == "" {
		return fmt.Errorf("delete %s: no SHA-256 of the expected version to compare with: %w", key, ErrChanged)
	}
	if cd, ok := s.(ConditionalDeleter); ok {
		return cd.DeleteIfSHA256(ctx, key, sha256)
	}
	obj, err := s.Head(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if !strings.EqualFold(obj.SHA256, sha256) {
		return fmt.Errorf("delete %s: sha256 %s, expected %s: %w", key, obj.SHA256, sha256, ErrChanged)
	}
	return s.Delete(ctx, key)
}
