package s3_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
)

// TestCheck: Check answers S3's own error codes (a GET, not HeadBucket,
// whose answer has no body to tell them apart).
func TestCheck(t *testing.T) {
	env := awstest.Shared(t)
	ctx := context.Background()
	if err := s3store.Check(ctx, env.StoreConfig(env.Bucket)); err != nil {
		t.Fatalf("check of the bucket: %v", err)
	}
	if err := s3store.Check(ctx, env.StoreConfig("no-such-bucket-checked")); err == nil || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Errorf("check of a missing bucket: %v", err)
	}
}
