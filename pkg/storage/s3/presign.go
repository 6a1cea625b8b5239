package s3

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

var _ storage.Presigner = (*Store)(nil)

// maxPresign is SigV4's longest presigned URL lifetime.
const maxPresign = 7 * 24 * time.Hour

// PresignGet returns a URL that reads key with plain HTTP GETs (range
// requests included) for ttl (at most 7 days), so that ffmpeg can stream
// the object and start encoding while it is still arriving.
//
// With temporary credentials (an ECS task role) the URL stops working when
// the credentials it was signed with expire, whichever comes first.
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if ttl <= 0 || ttl > maxPresign {
		ttl = maxPresign
	}
	pc := s3.NewPresignClient(s.client, s3.WithPresignExpires(ttl))
	req, err := pc.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return "", fmt.Errorf("s3 presign get %s: %w", key, err)
	}
	return req.URL, nil
}
