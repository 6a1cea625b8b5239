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
		recs, err := events.Parse(body)
		if err != nil || len(recs) != 1 || recs[0].Key != want || recs[0].Bucket != "media" || recs[0].EventName != "ObjectCreated:Put" {
			t.Fatalf("%s: %+v %v\n%s", url, recs, err, body)
		}
		if !strings.Contains(body, `"eventSource":"aws:s3"`) || !strings.Contains(body, `"awsRegion":"us-east-1"`) {
			t.Errorf("record is not shaped like S3's: %s", body)
		}
	}
	if env.Relayed("/work") != 1 || env.Relayed("/results") != 1 {
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
