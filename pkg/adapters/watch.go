package adapters

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/awserr"
	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// Watch configures the watchdog of a long-running service (AUTH_FAIL_AFTER).
type Watch struct {
	FailAfter time.Duration
}

// Bind registers AUTH_FAIL_AFTER.
func (c *Watch) Bind(s *config.Set) {
	s.Duration(&c.FailAfter, "AUTH_FAIL_AFTER", awserr.DefaultFailAfter,
		"exit non-zero once every call to the bucket or a queue has been refused this long for configuration reasons (credentials, permissions, missing bucket or queue); each refusal is logged at error level")
	s.Check(func() error {
		if c.FailAfter <= 0 {
			return errors.New("AUTH_FAIL_AFTER must be positive")
		}
		return nil
	})
}

// WatchStore reports every call of st to w (a nil w returns st).
func WatchStore(st storage.Store, w *awserr.Watchdog) storage.Store {
	if w == nil || st == nil {
		return st
	}
	ws := watchedStore{st: st, w: w, target: "bucket " + st.Bucket()}
	if p, ok := st.(storage.Presigner); ok {
		return watchedPresigner{ws, p}
	}
	return ws
}

// WatchQueue reports every call of q to w (nil q or w return q).
func WatchQueue(q queue.Queue, w *awserr.Watchdog) queue.Queue {
	if w == nil || q == nil {
		return q
	}
	wq := watchedQueue{q: q, w: w, target: "queue " + q.Name()}
	if r, ok := q.(queue.Redriver); ok {
		return watchedRedriver{wq, r}
	}
	return wq
}

type watchedStore struct {
	st     storage.Store
	w      *awserr.Watchdog
	target string
}

// report passes err on; a missing key is neither a success nor a
// failure (a HEAD answers 404 for a missing bucket too).
func (s watchedStore) report(err error) {
	if !errors.Is(err, storage.ErrNotFound) {
		s.w.Report(s.target, err)
	}
}

func (s watchedStore) Bucket() string { return s.st.Bucket() }

func (s watchedStore) Put(ctx context.Context, key string, r io.Reader, o storage.PutOptions) (storage.Object, error) {
	ob, err := s.st.Put(ctx, key, r, o)
	s.report(err)
	return ob, err
}

func (s watchedStore) Get(ctx context.Context, key string) (io.ReadCloser, storage.Object, error) {
	r, ob, err := s.st.Get(ctx, key)
	s.report(err)
	return r, ob, err
}

func (s watchedStore) Head(ctx context.Context, key string) (storage.Object, error) {
	ob, err := s.st.Head(ctx, key)
	s.report(err)
	return ob, err
}

func (s watchedStore) List(ctx context.Context, prefix, token string, max int) (storage.ListPage, error) {
	p, err := s.st.List(ctx, prefix, token, max)
	s.report(err)
	return p, err
}

func (s watchedStore) Delete(ctx context.Context, key string) error {
	err := s.st.Delete(ctx, key)
	s.report(err)
	return err
}

type watchedPresigner struct {
	watchedStore
	p storage.Presigner
}

func (s watchedPresigner) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	return s.p.PresignGet(ctx, key, ttl)
}

type watchedQueue struct {
	q      queue.Queue
	w      *awserr.Watchdog
	target string
}

func (q watchedQueue) Name() string { return q.q.Name() }

func (q watchedQueue) Receive(ctx context.Context, max int, wait time.Duration) ([]queue.Message, error) {
	m, err := q.q.Receive(ctx, max, wait)
	q.w.Report(q.target, err)
	return m, err
}

func (q watchedQueue) Delete(ctx context.Context, receipt string) error {
	err := q.q.Delete(ctx, receipt)
	q.w.Report(q.target, err)
	return err
}

func (q watchedQueue) ChangeVisibility(ctx context.Context, receipt string, timeout time.Duration) error {
	err := q.q.ChangeVisibility(ctx, receipt, timeout)
	q.w.Report(q.target, err)
	return err
}

func (q watchedQueue) Send(ctx context.Context, bodies ...string) error {
	err := q.q.Send(ctx, bodies...)
	q.w.Report(q.target, err)
	return err
}

func (q watchedQueue) Depth(ctx context.Context) (queue.Depth, error) {
	d, err := q.q.Depth(ctx)
	q.w.Report(q.target, err)
	return d, err
}

type watchedRedriver struct {
	watchedQueue
	r queue.Redriver
}

func (q watchedRedriver) Redrive(ctx context.Context, max int) (int, error) {
	n, err := q.r.Redrive(ctx, max)
	q.w.Report(q.target, err)
	return n, err
}

func (q watchedRedriver) DeadLetterDepth(ctx context.Context) (queue.Depth, error) {
	d, err := q.r.DeadLetterDepth(ctx)
	q.w.Report(q.target+" (dead-letter)", err)
	return d, err
}

// WatchLauncher reports every call of l to w under target (nil l or w
// return l). Only for the dispatcher's run loop: the wrapper hides the
// launcher's optional interfaces.
func WatchLauncher(l launch.Launcher, w *awserr.Watchdog, target string) launch.Launcher {
	if w == nil || l == nil {
		return l
	}
	return watchedLauncher{l: l, w: w, target: target}
}

type watchedLauncher struct {
	l      launch.Launcher
	w      *awserr.Watchdog
	target string
}

func (l watchedLauncher) Launch(ctx context.Context, job launch.Job) error {
	err := l.l.Launch(ctx, job)
	l.w.Report(l.target, err)
	return err
}

func (l watchedLauncher) InFlight(ctx context.Context) (map[string]bool, error) {
	m, err := l.l.InFlight(ctx)
	l.w.Report(l.target, err)
	return m, err
}

func (l watchedLauncher) Capacity() int { return l.l.Capacity() }
