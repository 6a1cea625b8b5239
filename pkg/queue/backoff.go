package queue

import "time"

// Retry backoff of a message handed back after a transient failure.
const (
	RetryBase = 10 * time.Second
	RetryMax  = 15 * time.Minute
)

// RetryDelay is how long a message that failed transiently on its
// receiveCount-th delivery stays hidden before it is retried:
// RetryBase·2^(receiveCount-1), capped at RetryMax (10 s, 20 s, 40 s, …,
// 15 min). A count below 1 (unknown) counts as the first delivery. The
// growth is bounded by the queue's maxReceiveCount anyway: after that many
// deliveries SQS dead-letters the message.
func RetryDelay(receiveCount int) time.Duration {
	n := max(receiveCount, 1) - 1
	d := RetryBase
	for i := 0; i < n; i++ {
		d *= 2
		if d >= RetryMax {
			return RetryMax
		}
	}
	return d
}
