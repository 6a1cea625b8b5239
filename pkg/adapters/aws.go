package adapters

import (
	"context"
	"fmt"

	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

func openS3(ctx context.Context, c *Store) (storage.Store, error) {
	return nil, fmt.Errorf("STORAGE=s3: adapter not wired yet")
}

func openSQS(ctx context.Context, c *Queues, url, region string) (queue.Queue, error) {
	return nil, fmt.Errorf("QUEUE=sqs: adapter not wired yet")
}
