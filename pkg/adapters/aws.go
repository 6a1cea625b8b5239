package adapters

import (
	"context"

	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	sqsqueue "github.com/hevc-encoder/hevc-encoder/pkg/queue/sqs"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
)

func openS3(ctx context.Context, c *Store) (storage.Store, error) {
	return s3store.New(ctx, s3store.Config{
		Bucket: c.Bucket, Endpoint: c.Endpoint, Region: c.Region,
		PathStyle: c.PathStyle, DualStack: c.DualStack,
		PartSize: c.PartSize, Concurrency: c.Concurrency,
	})
}

func openSQS(ctx context.Context, c *Queues, url, region string) (queue.Queue, error) {
	return sqsqueue.New(ctx, sqsqueue.Config{QueueURLOrName: url, Region: region, Endpoint: c.Endpoint, VisibilityTimeout: c.Visibility, NoDeadLetter: c.NoDeadLetter})
}
