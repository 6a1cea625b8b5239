package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
)

// Queue holds the metrics of the queues a service consumes, labelled
// queue="work" or "results".
type Queue struct {
	depth     *prometheus.GaugeVec
	dlq       *prometheus.GaugeVec
	oldest    *prometheus.GaugeVec
	received  *prometheus.CounterVec
	redeliver *prometheus.CounterVec
}

// NewQueue registers the queue metrics in reg.
func NewQueue(reg prometheus.Registerer) *Queue {
	m := &Queue{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "queue", Name: "messages",
			Help: "Approximate messages in the queue by state (visible: waiting; in_flight: received, not deleted; delayed), polled every minute.",
		}, []string{"queue", "state"}),
		dlq: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "queue", Name: "dead_letter_messages",
			Help: "Approximate messages waiting in the queue's dead-letter queue, polled every minute.",
		}, []string{"queue"}),
		oldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "queue", Name: "oldest_message_age_seconds",
			Help: "Age (now minus SentTimestamp) of the oldest message of the last receive that returned messages, when received: how long work waited before this service picked it up. 0 after a receive finds the queue empty. SQS's API has no age of the oldest message (CloudWatch's ApproximateAgeOfOldestMessage is not read).",
		}, []string{"queue"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "queue", Name: "messages_received_total",
			Help: "Messages received (every delivery counts).",
		}, []string{"queue"}),
		redeliver: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "queue", Name: "messages_redelivered_total",
			Help: "Messages received more than once (ApproximateReceiveCount > 1): retries and visibility timeouts.",
		}, []string{"queue"}),
	}
	reg.MustRegister(m.depth, m.dlq, m.oldest, m.received, m.redeliver)
	return m
}

// Observe wraps q so that its receives update the metrics under label
// name, and beats hb (may be nil) whenever a receive returns.
func (m *Queue) Observe(q queue.Queue, name string, hb *Heartbeat) queue.Queue {
	if q == nil || m == nil {
		return q
	}
	oq := observedQueue{Queue: q, m: m, name: name, hb: hb}
	if r, ok := q.(queue.Redriver); ok {
		return observedRedriver{oq, r}
	}
	return oq
}

// received records a receive's messages.
func (m *Queue) receivedMsgs(name string, msgs []queue.Message, now time.Time) {
	var oldest time.Duration
	for _, msg := range msgs {
		if msg.ReceiveCount > 1 {
			m.redeliver.WithLabelValues(name).Inc()
		}
		if !msg.Sent.IsZero() {
			oldest = max(oldest, now.Sub(msg.Sent))
		}
	}
	m.received.WithLabelValues(name).Add(float64(len(msgs)))
	if len(msgs) == 0 || oldest > 0 {
		m.oldest.WithLabelValues(name).Set(oldest.Seconds())
	}
}

// Poll sets the depth gauges of q (and its dead-letter queue's, if it
// has one) under label name now and every interval until ctx ends.
// Failures are logged at debug level: the service's own loops report them.
func (m *Queue) Poll(ctx context.Context, q queue.Queue, name string, interval time.Duration, log zerolog.Logger) {
	if q == nil || m == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if d, err := q.Depth(ctx); err == nil {
			m.depth.WithLabelValues(name, "visible").Set(float64(d.Visible))
			m.depth.WithLabelValues(name, "in_flight").Set(float64(d.InFlight))
			m.depth.WithLabelValues(name, "delayed").Set(float64(d.Delayed))
		} else if ctx.Err() == nil {
			log.Debug().Err(err).Str("queue", q.Name()).Msg("metrics: queue depth")
		}
		if r, ok := q.(queue.Redriver); ok {
			if d, err := r.DeadLetterDepth(ctx); err == nil {
				m.dlq.WithLabelValues(name).Set(float64(d.Visible + d.InFlight))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type observedQueue struct {
	queue.Queue
	m    *Queue
	name string
	hb   *Heartbeat
}

func (q observedQueue) Receive(ctx context.Context, max int, wait time.Duration) ([]queue.Message, error) {
	msgs, err := q.Queue.Receive(ctx, max, wait)
	q.hb.Beat()
	if err == nil {
		q.m.receivedMsgs(q.name, msgs, time.Now())
	}
	return msgs, err
}

type observedRedriver struct {
	observedQueue
	r queue.Redriver
}

func (q observedRedriver) Redrive(ctx context.Context, max int) (int, error) {
	return q.r.Redrive(ctx, max)
}

func (q observedRedriver) DeadLetterDepth(ctx context.Context) (queue.Depth, error) {
	return q.r.DeadLetterDepth(ctx)
}
