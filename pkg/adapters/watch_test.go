package adapters

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/awserr"
	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
)

// TestWatchReportsAndKeepsInterfaces: the wrapped store and queue keep
// their optional interfaces (presigned URLs, redrive), and a store whose
// bucket is gone makes the watchdog fire (a HEAD's 404 alone does not:
// it cannot tell a missing key from a missing bucket).
func TestWatchReportsAndKeepsInterfaces(t *testing.T) {
	e := awstest.Shared(t)
	ctx := context.Background()
	w, wctx := awserr.NewWatchdog(ctx, 50*time.Millisecond, zerolog.New(zerolog.NewTestWriter(t)))
	defer w.Stop()

	st := WatchStore(e.NewStore(t), w)
	if _, ok := st.(storage.Presigner); !ok {
		t.Error("the watched S3 store lost PresignGet")
	}
	q := WatchQueue(e.NewWorkQueue(t), w)
	if _, ok := q.(queue.Redriver); !ok {
		t.Error("the watched SQS queue lost Redrive")
	}
	if _, err := q.Depth(ctx); err != nil {
		t.Fatal(err)
	}

	gone, err := s3store.New(ctx, e.StoreConfig("bucket-removed-meanwhile"))
	if err != nil {
		t.Fatal(err)
	}
	g := WatchStore(gone, w)
	if _, err := g.Head(ctx, "TODO/x.mp4"); err == nil {
		t.Fatal("head in a missing bucket succeeded")
	}
	if _, err := g.List(ctx, "TODO/", "", 1); awserr.Classify(err) != awserr.NoBucket {
		t.Fatalf("list in a missing bucket: %v", err)
	}
	select {
	case <-wctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("the watchdog did not fire")
	}
	if err := w.Err(); awserr.Classify(err) != awserr.NoBucket {
		t.Errorf("watchdog error %v", err)
	}
}
