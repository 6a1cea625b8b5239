package fs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/events"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue/local"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage/storagetest"
)

func TestContract(t *testing.T) {
	var root string
	storagetest.Run(t, func(t *testing.T) storage.Store {
		root = t.TempDir()
		s, err := New(root, "bk")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, storagetest.Options{Tamper: func(t *testing.T, key string, data []byte) {
		if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(key)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}})
}

func TestNotificationsAfterCommit(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir(), "bk")
	if err != nil {
		t.Fatal(err)
	}
	work := local.New("work", time.Minute, 0, nil)
	results := local.New("results", time.Minute, 0, nil)
	s.Notify(Rule{Prefix: "TODO/", Suffix: ".mp4", Queue: work})
	s.Notify(Rule{Prefix: "DONE/", Queue: results})
	for _, k := range []string{"TODO/a b/clip é.mp4", "TODO/notes.txt", "DONE/a b/clip é-hevc.mp4", "FAILED/x.mp4.json"} {
		if _, err := s.Put(ctx, k, devNull(), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for q, want := range map[*local.Queue]string{work: "TODO/a b/clip é.mp4", results: "DONE/a b/clip é-hevc.mp4"} {
		ms, err := q.Receive(ctx, 10, time.Second)
		if err != nil || len(ms) != 1 {
			t.Fatalf("%s: %d messages, %v", q.Name(), len(ms), err)
		}
		recs, err := events.Parse(ms[0].Body)
		if err != nil || recs[0].Key != want || recs[0].Bucket != "bk" {
			t.Fatalf("%s: %+v %v", q.Name(), recs, err)
		}
	}
}

func devNull() *os.File {
	f, _ := os.Open(os.DevNull)
	return f
}
