// Package launch is the "start a processor for this job" port.
// Adapters: local (in-process goroutines; the embedded default) and ecs
// (one Fargate task per job).
package launch

import (
	"context"
	"strconv"
)

// Job is what a processor needs to do one file. On ECS it travels as the
// container's environment (see Env).
type Job struct {
	Bucket string
	// Key is the decoded object key, TODO/<rel>.mp4.
	Key string
	// QueueURL and Receipt let the processor heartbeat and delete the work
	// message; empty when the job did not come from a queue.
	QueueURL string
	Receipt  string
	// ReceiveCount is the work message's delivery count (1 on the first),
	// from which the processor computes the retry delay it asks for when it
	// fails transiently (queue.RetryDelay); 0 when unknown.
	ReceiveCount int
}

// Env returns the job as environment variables for a processor container.
func (j Job) Env() map[string]string {
	env := map[string]string{
		"S3_BUCKET":          j.Bucket,
		"S3_OBJECT_KEY":      j.Key,
		"WORK_QUEUE_URL":     j.QueueURL,
		"SQS_RECEIPT_HANDLE": j.Receipt,
	}
	if j.ReceiveCount > 0 {
		env["SQS_RECEIVE_COUNT"] = strconv.Itoa(j.ReceiveCount)
	}
	return env
}

// Launcher starts processors.
type Launcher interface {
	// Launch starts a processor for job and returns once it has started (not
	// finished). It fails when the job could not be started.
	Launch(ctx context.Context, job Job) error
	// InFlight returns the keys whose processors are running or starting.
	InFlight(ctx context.Context) (map[string]bool, error)
	// Capacity is how many processors may run at once (<= 0: unlimited).
	Capacity() int
}
