package events

import "testing"

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
