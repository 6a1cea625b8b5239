package pipeline

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	sqsqueue "github.com/hevc-encoder/hevc-encoder/pkg/queue/sqs"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
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

// TestPipelineOnAWSWithFaults runs the pipeline through fault-injecting
// proxies: S3 throttling and 5xx, SQS 5xx. The SDK retries with backoff
// and the run completes with nothing lost.
func TestPipelineOnAWSWithFaults(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	env := awstest.Start(t, awstest.Options{MaxReceiveCount: 5, VisibilityTimeout: 60 * time.Second})
	s3p := awstest.NewFaultProxy(t, env.S3Endpoint)
	sqsp := awstest.NewFaultProxy(t, env.SQSEndpoint)
	s3p.Fail(3, awstest.SlowDown, func(r *http.Request) bool { return r.Method == http.MethodPut })
	s3p.Fail(2, awstest.InternalError, func(r *http.Request) bool { return r.Method == http.MethodGet })
	sqsp.Fail(3, awstest.ServiceUnavailable, nil)

	cfg := env.StoreConfig(env.Bucket)
	cfg.Endpoint = s3p.URL
	store, err := s3store.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	queue := func(url string) *sqsqueue.Queue {
		qc := env.QueueConfig(url)
		qc.Endpoint = sqsp.URL
		q, err := sqsqueue.New(context.Background(), qc)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	root := t.TempDir()
	clips := []clip{{rel: "a/one.mp4", opts: meta}, {rel: "b/two é #.mp4", opts: meta}}
	makeLibrary(t, root, clips)
	info := map[string]media.Info{}
	for _, c := range clips {
		info[c.rel] = probe(t, filepath.Join(root, filepath.FromSlash(c.rel)))
	}
	sum, err := RunOn(context.Background(), Options{Library: root, Processor: fastSettings(), Jobs: 2,
		Visibility: 60 * time.Second, Logger: testLogger(t)},
		Backend{Store: store, Work: queue(env.WorkQueueURL), Results: queue(env.ResultsQueueURL)})
	if err != nil || sum.Converted != 2 || len(sum.Failed) != 0 {
		t.Fatalf("run: %v, converted %d, failed %v", err, sum.Converted, sum.Failed)
	}
	for _, c := range clips {
		checkConverted(t, root, c.rel, info[c.rel])
	}
	checkNoTemps(t, root)
	if s3p.Injected() != 5 || sqsp.Injected() != 3 {
		t.Errorf("faults injected: s3 %d of 5, sqs %d of 3", s3p.Injected(), sqsp.Injected())
	}
}
