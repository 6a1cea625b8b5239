package processor

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/awserr"
	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
)

// TestMissingBucketIsNotGone: on S3 a HEAD answers 404 for a missing bucket
// as for a missing key. Only the missing key is "already processed"; a
// missing bucket is a configuration error (exit 2 in main), with no FAILED/
// record and nothing deleted.
func TestMissingBucketIsNotGone(t *testing.T) {
	e := awstest.Shared(t)
	ctx := context.Background()

	st, err := s3store.New(ctx, e.StoreConfig("no-such-bucket-for-jobs"))
	if err != nil {
		t.Fatal(err)
	}
	p := &Processor{Store: st, Log: zerolog.New(zerolog.NewTestWriter(t))}
	res, err := p.Process(ctx, launch.Job{Bucket: st.Bucket(), Key: "TODO/a.mp4"})
	if err == nil || res.Outcome == Gone || !awserr.IsConfig(err) || awserr.Classify(err) != awserr.NoBucket {
		t.Fatalf("missing bucket: outcome %q, error %v (kind %v); want a configuration error", res.Outcome, err, awserr.Classify(err))
	}
	if !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Errorf("error does not say NoSuchBucket: %v", err)
	}

	// A missing key in a bucket that exists: gone, finished.
	good, err := s3store.New(ctx, e.StoreConfig(e.ScratchBucket(t)))
	if err != nil {
		t.Fatal(err)
	}
	p.Store = good
	res, err = p.Process(ctx, launch.Job{Bucket: good.Bucket(), Key: "TODO/gone.mp4"})
	if err != nil || res.Outcome != Gone {
		t.Fatalf("missing key: outcome %q, error %v; want gone", res.Outcome, err)
	}
	if _, err := good.Head(ctx, "FAILED/gone.mp4.json"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("FAILED/ record for a gone key: %v", err)
	}
}
