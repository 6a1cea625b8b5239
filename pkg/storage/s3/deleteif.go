package s3

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

var _ storage.ConditionalDeleter = (*Store)(nil)

// DeleteIfSHA256 implements storage.ConditionalDeleter: HEAD gives the
// object's ETag and recorded SHA-256; the DELETE carries If-Match on that
// ETag, so on AWS S3 (conditional deletes, general purpose buckets) a
// version put after the HEAD is not deleted (412). MinIO (the pinned test
// server, checked) ignores If-Match on DELETE: there only the HEAD's
// comparison protects, a window of one request.
func (s *Store) DeleteIfSHA256(ctx context.Context, key, sha256 string) error {
	h, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			if err := s.missing(ctx, "head", key); !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			return nil
		}
		return fmt.Errorf("s3 head %s: %w", key, err)
	}
	got := object(key, 0, nil, h.Metadata).SHA256
	if !strings.EqualFold(got, sha256) {
		return fmt.Errorf("s3 delete %s: sha256 %s, expected %s: %w", key, got, sha256, storage.ErrChanged)
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key, IfMatch: h.ETag})
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		var ae smithy.APIError
		if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "412") {
			return fmt.Errorf("s3 delete %s: replaced after it was checked: %w", key, storage.ErrChanged)
		}
		return fmt.Errorf("s3 delete %s: %w", key, err)
	}
	return nil
}
