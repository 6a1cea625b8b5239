package local

import (
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue/queuetest"
)

func TestContract(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, vis time.Duration, maxReceives int) queue.Queue {
		return New("work", vis, maxReceives, New("work-dlq", vis, 0, nil))
	})
}
