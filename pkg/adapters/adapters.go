// Package adapters picks and builds the store and queue adapters from
// configuration, the same way in every service's main.
package adapters

import (
	"context"
	"fmt"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage/fs"
)

// Store configures the object store.
type Store struct {
	Kind        string // fs | s3
	FSRoot      string
	Bucket      string
	Endpoint    string
	Region      string
	PathStyle   bool
	DualStack   bool
	PartSize    int64
	Concurrency int
	// Optional, set before Bind, lets STORAGE=s3 go without S3_BUCKET:
	// Configured then says false (sqs-dispatcher status of a library alone).
	Optional bool
}

// Configured reports whether a bucket was given (see Optional).
func (c *Store) Configured() bool {
	if c.Kind == "fs" {
		return c.FSRoot != ""
	}
	return c.Bucket != ""
}

// Bind registers the store's variables.
func (c *Store) Bind(s *config.Set) {
	s.String(&c.Kind, "STORAGE", "s3", "object store: s3, or fs (a directory is the bucket)")
	s.String(&c.FSRoot, "FS_ROOT", "", "bucket directory when STORAGE=fs")
	s.String(&c.Bucket, "S3_BUCKET", "", "bucket name")
	s.String(&c.Endpoint, "S3_ENDPOINT", "", "custom S3 endpoint URL (MinIO); empty for AWS")
	s.String(&c.Region, "AWS_REGION", "", "AWS region (else from the AWS config chain)")
	s.Bool(&c.PathStyle, "S3_PATH_STYLE", false, "path-style addressing (MinIO)")
	s.Bool(&c.DualStack, "S3_DUALSTACK", false, "use the dual-stack (IPv6) S3 endpoint")
	s.Int64(&c.PartSize, "S3_PART_SIZE", 16<<20, "multipart part size for uploads; downloads fetch ranges of half of it (e.g. 16MiB)")
	s.Int(&c.Concurrency, "S3_CONCURRENCY", 4, "parallel parts per upload (downloads keep twice as many half-size ranges in flight)")
	s.Check(c.validate)
}

func (c *Store) validate() error {
	switch c.Kind {
	case "fs":
		if c.FSRoot == "" {
			return fmt.Errorf("FS_ROOT is required when STORAGE=fs")
		}
	case "s3":
		if c.Bucket == "" && c.Optional {
			return nil
		}
		if c.Bucket == "" {
			return fmt.Errorf("S3_BUCKET is required when STORAGE=s3")
		}
		if c.PartSize < 5<<20 {
			return fmt.Errorf("S3_PART_SIZE must be at least 5MiB (S3's minimum part), got %d", c.PartSize)
		}
		if c.Concurrency < 1 {
			return fmt.Errorf("S3_CONCURRENCY must be at least 1, got %d", c.Concurrency)
		}
	default:
		return fmt.Errorf("STORAGE must be s3 or fs, got %q", c.Kind)
	}
	return nil
}

// Open builds the store.
func (c *Store) Open(ctx context.Context) (storage.Store, error) {
	if c.Kind == "fs" {
		name := c.Bucket
		if name == "" {
			name = "local"
		}
		return fs.New(c.FSRoot, name)
	}
	return openS3(ctx, c)
}

// Queues configures the work and results queues.
type Queues struct {
	Kind       string // sqs (local queues exist only inside the embedded pipeline)
	Endpoint   string
	Work       string
	Results    string
	Visibility time.Duration
	// NoDeadLetter opens the queues without looking up their dead-letter
	// queue (hevc-processor: its role may only heartbeat and delete).
	NoDeadLetter bool
}

// Bind registers the queue variables; work and results say which queues the
// service needs ("" = not used, "required", "optional").
func (c *Queues) Bind(s *config.Set, work, results string) {
	s.String(&c.Kind, "QUEUE", "sqs", "queue service: sqs (local queues exist only in the embedded pipeline)")
	s.String(&c.Endpoint, "SQS_ENDPOINT", "", "custom SQS endpoint URL (tests); empty for AWS")
	if work != "" {
		s.String(&c.Work, "WORK_QUEUE_URL", "", "work queue URL or name (S3 ObjectCreated on TODO/*.mp4)")
	}
	if results != "" {
		s.String(&c.Results, "RESULTS_QUEUE_URL", "", "results queue URL or name (S3 ObjectCreated on DONE/)")
	}
	s.Check(func() error {
		if c.Kind != "sqs" {
			return fmt.Errorf("QUEUE must be sqs for a standalone service, got %q (local queues live only in deployments/local)", c.Kind)
		}
		if work == "required" && c.Work == "" {
			return fmt.Errorf("WORK_QUEUE_URL is required")
		}
		if results == "required" && c.Results == "" {
			return fmt.Errorf("RESULTS_QUEUE_URL is required")
		}
		return nil
	})
}

// Open builds the queue at urlOrName; nil (and no error) when it is empty.
func (c *Queues) Open(ctx context.Context, urlOrName, region string) (queue.Queue, error) {
	if urlOrName == "" {
		return nil, nil
	}
	return openSQS(ctx, c, urlOrName, region)
}
