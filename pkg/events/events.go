// Package events reads and writes S3 event notification JSON: what S3 (and
// MinIO) put on SQS, what the fs store emits, and what trigger sends.
package events

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Record is one decoded object event.
type Record struct {
	EventName string // e.g. ObjectCreated:Put (S3) or s3:ObjectCreated:Put (MinIO)
	Bucket    string
	Key       string // URL-decoded
	Size      int64
}

type wireObject struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
	ETag string `json:"eTag,omitempty"`
}

type wireBucket struct {
	Name string `json:"name"`
	ARN  string `json:"arn,omitempty"`
}

type wireS3 struct {
	SchemaVersion string     `json:"s3SchemaVersion"`
	Bucket        wireBucket `json:"bucket"`
	Object        wireObject `json:"object"`
}

type wireRecord struct {
	EventVersion string `json:"eventVersion"`
	EventSource  string `json:"eventSource"`
	EventTime    string `json:"eventTime"`
	EventName    string `json:"eventName"`
	S3           wireS3 `json:"s3"`
}

type wireMessage struct {
	Records []wireRecord `json:"Records"`
	Event   string       `json:"Event,omitempty"` // s3:TestEvent
}

// Parse decodes an S3 event notification body. A test event
// (s3:TestEvent, sent by S3 when notifications are configured) yields no
// records and no error. Keys are URL-decoded with '+' as a space, as S3 encodes
// them.
func Parse(body string) ([]Record, error) {
	var m wireMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return nil, fmt.Errorf("parse S3 event: %w", err)
	}
	if m.Event == "s3:TestEvent" {
		return nil, nil
	}
	if m.Records == nil {
		return nil, fmt.Errorf("parse S3 event: no Records in message")
	}
	out := make([]Record, 0, len(m.Records))
	for i, r := range m.Records {
		key, err := url.QueryUnescape(r.S3.Object.Key)
		if err != nil {
			return nil, fmt.Errorf("parse S3 event: record %d: decode key %q: %w", i, r.S3.Object.Key, err)
		}
		if r.S3.Bucket.Name == "" || key == "" {
			return nil, fmt.Errorf("parse S3 event: record %d: missing bucket or key", i)
		}
		out = append(out, Record{EventName: r.EventName, Bucket: r.S3.Bucket.Name, Key: key, Size: r.S3.Object.Size})
	}
	return out, nil
}

// IsObjectCreated reports whether an event name is an object creation in
// any spelling the pipeline meets: S3 sends "ObjectCreated:Put" (and :Post,
// :Copy, :CompleteMultipartUpload), MinIO the same names with an "s3:"
// prefix, as they appear in notification configurations.
func IsObjectCreated(name string) bool {
	name = strings.TrimPrefix(name, "s3:")
	return name == "ObjectCreated" || strings.HasPrefix(name, "ObjectCreated:")
}

// EncodeKey encodes a key the way S3 does in event notifications (form
// encoding: space as '+', '/' kept).
func EncodeKey(key string) string {
	return strings.ReplaceAll(url.QueryEscape(key), "%2F", "/")
}

// Created builds the notification body S3 would send for an ObjectCreated
// event of one object.
func Created(bucket, key string, size int64, eventName string) string {
	if eventName == "" {
		eventName = "ObjectCreated:Put"
	}
	m := wireMessage{Records: []wireRecord{{
		EventVersion: "2.1",
		EventSource:  "aws:s3",
		EventTime:    time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		EventName:    eventName,
		S3: wireS3{
			SchemaVersion: "1.0",
			Bucket:        wireBucket{Name: bucket, ARN: "arn:aws:s3:::" + bucket},
			Object:        wireObject{Key: EncodeKey(key), Size: size},
		},
	}}}
	b, _ := json.Marshal(m) // cannot fail: plain strings and numbers
	return string(b)
}
