package queue

import (
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	for _, tc := range []struct {
		count int
		want  time.Duration
	}{
		{-1, 10 * time.Second}, {0, 10 * time.Second}, {1, 10 * time.Second}, {2, 20 * time.Second},
		{3, 40 * time.Second}, {7, 640 * time.Second}, {8, 15 * time.Minute}, {100, 15 * time.Minute},
		{1 << 30, 15 * time.Minute},
	} {
		if got := RetryDelay(tc.count); got != tc.want {
			t.Errorf("RetryDelay(%d) = %s, want %s", tc.count, got, tc.want)
		}
	}
	// Never shrinks as deliveries grow.
	for n := 1; n < 50; n++ {
		if RetryDelay(n+1) < RetryDelay(n) {
			t.Fatalf("RetryDelay(%d) < RetryDelay(%d)", n+1, n)
		}
	}
}
