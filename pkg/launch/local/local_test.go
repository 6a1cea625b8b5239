package local

import (
	"context"
	"errors"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
)

func TestCapacityAndInFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan string, 4)
	done := make(chan error, 4)
	l := New(context.Background(), func(ctx context.Context, j launch.Job) error {
		started <- j.Key
		<-release
		return nil
	}, 2, func(_ launch.Job, err error) { done <- err })
	ctx := context.Background()
	for _, k := range []string{"TODO/a.mp4", "TODO/b.mp4"} {
		if err := l.Launch(ctx, launch.Job{Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	<-started
	if err := l.Launch(ctx, launch.Job{Key: "TODO/c.mp4"}); !errors.Is(err, ErrAtCapacity) {
		t.Fatalf("third launch: %v", err)
	}
	inf, _ := l.InFlight(ctx)
	if len(inf) != 2 || !inf["TODO/a.mp4"] {
		t.Fatalf("in flight %v", inf)
	}
	close(release)
	l.Wait()
	<-done
	<-done
	if inf, _ := l.InFlight(ctx); len(inf) != 0 {
		t.Fatalf("still in flight: %v", inf)
	}
	if DefaultCapacity(0) != 1 || DefaultCapacity(1) < 1 {
		t.Fatal("default capacity")
	}
}
