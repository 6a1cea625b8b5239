package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

// TestPipelineOnAWS runs the same services and the same acceptance checks
// on the AWS path: s3-uploader → MinIO → bucket notification → SQS →
// dispatcher → processor → MinIO DONE/ → notification → SQS → downloader.
// Keys in MinIO's events are URL-encoded, so the odd names test decoding.
func TestPipelineOnAWS(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	env := awstest.Start(t, awstest.Options{MaxReceiveCount: 3, VisibilityTimeout: 60 * time.Second})
	store := env.NewStore(t)
	work, results := env.NewWorkQueue(t), env.NewResultsQueue(t)
	root := t.TempDir()
	acceptance(t, root, store, func() Summary {
		sum, err := RunOn(context.Background(), Options{Library: root, Processor: fastSettings(), Jobs: 2,
			Visibility: 60 * time.Second, MaxReceives: 3, Logger: testLogger(t)},
			Backend{Store: store, Work: work, Results: results})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		return sum
	})
	if env.Relayed("/work") == 0 || env.Relayed("/results") == 0 {
		t.Errorf("no notifications went through MinIO's webhook: work %d, results %d", env.Relayed("/work"), env.Relayed("/results"))
	}
}
