package events

import (
	"os"
	"testing"
)

func TestParseDecodesKeys(t *testing.T) {
	// What MinIO sends (and S3, with '/' unescaped).
	for _, raw := range []string{`TODO%2Fa+b%2Fclip+%C3%A9.mp4`, `TODO/a+b/clip+%C3%A9.mp4`} {
		body := `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"bk"},"object":{"key":"` + raw + `","size":3}}}]}`
		recs, err := Parse(body)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Key != "TODO/a b/clip é.mp4" || recs[0].Bucket != "bk" || recs[0].Size != 3 {
			t.Fatalf("got %+v", recs)
		}
	}
}

func TestParseTestEventAndErrors(t *testing.T) {
	recs, err := Parse(`{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"bk"}`)
	if err != nil || len(recs) != 0 {
		t.Fatalf("test event: %v %v", recs, err)
	}
	for _, bad := range []string{`nope`, `{}`, `{"Records":[{"s3":{"bucket":{"name":""},"object":{"key":"x"}}}]}`, `{"Records":[{"s3":{"bucket":{"name":"b"},"object":{"key":"%zz"}}}]}`} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q): want error", bad)
		}
	}
}

func TestCreatedRoundTrip(t *testing.T) {
	for _, key := range []string{"TODO/a b/c#d+e%f 'g\" é.mp4", "TODO/x.mp4"} {
		recs, err := Parse(Created("bk", key, 42, ""))
		if err != nil {
			t.Fatal(err)
		}
		if recs[0].Key != key || recs[0].Size != 42 || recs[0].EventName != "ObjectCreated:Put" {
			t.Fatalf("round trip %q: %+v", key, recs[0])
		}
	}
}

func TestIsObjectCreated(t *testing.T) {
	for _, n := range []string{
		"ObjectCreated:Put", "ObjectCreated:Post", "ObjectCreated:Copy", "ObjectCreated:CompleteMultipartUpload", // S3
		"s3:ObjectCreated:Put", "s3:ObjectCreated:Post", "s3:ObjectCreated:Copy", "s3:ObjectCreated:CompleteMultipartUpload", // MinIO
		"ObjectCreated", "s3:ObjectCreated:PutRetention",
	} {
		if !IsObjectCreated(n) {
			t.Errorf("IsObjectCreated(%q) = false", n)
		}
	}
	for _, n := range []string{
		"", "ObjectRemoved:Delete", "s3:ObjectRemoved:Delete", "s3:ObjectAccessed:Get", "s3:TestEvent",
		"ObjectCreatedX", "s3:s3:ObjectCreated:Put", "objectcreated:put", "x:ObjectCreated:Put",
	} {
		if IsObjectCreated(n) {
			t.Errorf("IsObjectCreated(%q) = true", n)
		}
	}
}

// The recorded bodies are what S3 puts on the queue (the documented
// shape: eventVersion 2.1, userIdentity, requestParameters,
// responseElements, configurationId, eTag, sequencer; keys form-encoded
// with '/' kept), and the test event S3 sends when notifications are
// configured.
func TestParseRecordedS3Bodies(t *testing.T) {
	b, err := os.ReadFile("testdata/s3-put.json")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := Parse(string(b))
	if err != nil {
		t.Fatal(err)
	}
	want := Record{EventName: "ObjectCreated:Put", Bucket: "amzn-s3-demo-bucket", Key: "TODO/2026/Holiday 2026/clip é (1).mp4", Size: 1024}
	if len(recs) != 1 || recs[0] != want || !IsObjectCreated(recs[0].EventName) {
		t.Fatalf("got %+v, want %+v", recs, want)
	}
	b, err = os.ReadFile("testdata/s3-test-event.json")
	if err != nil {
		t.Fatal(err)
	}
	if recs, err := Parse(string(b)); err != nil || len(recs) != 0 {
		t.Fatalf("test event: %+v, %v", recs, err)
	}
}
