package awstest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/events"
)

func TestEnvRoutesNotificationsLikeS3(t *testing.T) {
	ctx := context.Background()
	env := awstest.Start(t, awstest.Options{MaxReceiveCount: 2, Bucket: "media"})

	attrs, err := env.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &env.WorkQueueURL, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameRedrivePolicy},
	})
	if err != nil {
		t.Fatal(err)
	}
	var policy struct {
		MaxReceiveCount json.Number `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(attrs.Attributes["RedrivePolicy"]), &policy); err != nil || policy.MaxReceiveCount != "2" {
		t.Fatalf("RedrivePolicy %q: %v", attrs.Attributes["RedrivePolicy"], err)
	}

	for _, k := range []string{"TODO/skip.txt", "FAILED/x.mp4.json", "TODO/d/a.mp4", "DONE/d/a-hevc.mp4"} {
		if _, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &env.Bucket, Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	for url, want := range map[string]string{env.WorkQueueURL: "TODO/d/a.mp4", env.ResultsQueueURL: "DONE/d/a-hevc.mp4"} {
		out, err := env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) != 1 {
			t.Fatalf("%s: %d messages, want 1", url, len(out.Messages))
		}
		body := aws.ToString(out.Messages[0].Body)
		// Passed on as MinIO wrote it (its spelling of the event name and
		// source), wrapped in {"Records": …} only.
		recs, err := events.Parse(body)
		if err != nil || len(recs) != 1 || recs[0].Key != want || recs[0].Bucket != "media" || recs[0].EventName != "s3:ObjectCreated:Put" {
			t.Fatalf("%s: %+v %v\n%s", url, recs, err, body)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &top); err != nil || len(top) != 1 || top["Records"] == nil {
			t.Errorf("body is not {\"Records\": …} alone: %s", body)
		}
		if !strings.Contains(body, `"eventSource":"minio:s3"`) {
			t.Errorf("record was rewritten: %s", body)
		}
	}
	// Multipart uploads and copies have their own event names.
	up, err := env.S3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &env.Bucket, Key: aws.String("TODO/d/multi.mp4")})
	if err != nil {
		t.Fatal(err)
	}
	part, err := env.S3.UploadPart(ctx, &s3.UploadPartInput{Bucket: &env.Bucket, Key: up.Key, UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("part")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.S3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &env.Bucket, Key: up.Key, UploadId: up.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: []s3types.CompletedPart{{ETag: part.ETag, PartNumber: aws.Int32(1)}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.S3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &env.Bucket, Key: aws.String("TODO/d/copy.mp4"), CopySource: aws.String("media/TODO/d/a.mp4")}); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for i := 0; i < 10 && len(names) < 2; i++ {
		out, err := env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &env.WorkQueueURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 5})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			recs, err := events.Parse(aws.ToString(m.Body))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				names[r.Key] = r.EventName
			}
		}
	}
	if names["TODO/d/multi.mp4"] != "s3:ObjectCreated:CompleteMultipartUpload" || names["TODO/d/copy.mp4"] != "s3:ObjectCreated:Copy" {
		t.Errorf("event names %v", names)
	}
	for k, n := range names {
		if !events.IsObjectCreated(n) {
			t.Errorf("%s: %q is not recognised as ObjectCreated", k, n)
		}
	}
	if env.Relayed("/work") != 3 || env.Relayed("/results") != 1 {
		t.Fatalf("relayed %d to work and %d to results", env.Relayed("/work"), env.Relayed("/results"))
	}
}

func TestFaultProxyFailsFirstNMatching(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(backend.Close)

	p := awstest.NewFaultProxy(t, backend.URL)
	p.Fail(2, awstest.SlowDown, awstest.Match(http.MethodPut, "/b/", "partNumber"))
	status := func(method, path string) int {
		req, _ := http.NewRequest(method, p.URL+path, strings.NewReader("body"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	got := []int{
		status(http.MethodGet, "/b/k?partNumber=1"),
		status(http.MethodPut, "/b/k?partNumber=1"),
		status(http.MethodPut, "/b/k"),
		status(http.MethodPut, "/b/k?partNumber=2"),
		status(http.MethodPut, "/b/k?partNumber=3"),
	}
	want := []int{204, 503, 204, 503, 204}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses %v, want %v", got, want)
		}
	}
	if p.Injected() != 2 || p.Requests() != 5 {
		t.Fatalf("injected %d of %d requests", p.Injected(), p.Requests())
	}
}
