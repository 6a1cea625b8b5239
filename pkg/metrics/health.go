package metrics

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Health answers /healthz: 200 "ok" when the service is ready (its
// start-up checks passed) and every registered check passes; 503 with one
// short line per failing check otherwise.
type Health struct {
	mu       sync.Mutex
	notReady string // why not ready yet; "" once ready
	checks   map[string]func() error
}

// NewHealth is a Health that is not ready until Ready is called: notReady
// says why (e.g. "start-up checks running").
func NewHealth(notReady string) *Health {
	if notReady == "" {
		notReady = "starting"
	}
	return &Health{notReady: notReady, checks: map[string]func() error{}}
}

// Ready marks the start-up checks as passed.
func (h *Health) Ready() {
	h.mu.Lock()
	h.notReady = ""
	h.mu.Unlock()
}

// Add registers a check under name: a non-nil error makes /healthz 503.
func (h *Health) Add(name string, check func() error) {
	h.mu.Lock()
	h.checks[name] = check
	h.mu.Unlock()
}

// Check returns why the service is unhealthy, nil when it is healthy.
func (h *Health) Check() error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	notReady := h.notReady
	names := make([]string, 0, len(h.checks))
	for n := range h.checks {
		names = append(names, n)
	}
	checks := h.checks
	h.mu.Unlock()
	if notReady != "" {
		return fmt.Errorf("not ready: %s", notReady)
	}
	sort.Strings(names)
	var bad []string
	for _, n := range names {
		h.mu.Lock()
		c := checks[n]
		h.mu.Unlock()
		if err := c(); err != nil {
			bad = append(bad, n+": "+err.Error())
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "\n"))
	}
	return nil
}

// ServeHTTP implements /healthz.
func (h *Health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := h.Check(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, err)
		return
	}
	fmt.Fprintln(w, "ok")
}

// Heartbeat tells a liveness check that a loop is going round.
type Heartbeat struct {
	last atomic.Int64 // unix nanoseconds
}

// Beat records that the loop made progress now.
func (b *Heartbeat) Beat() {
	if b != nil {
		b.last.Store(time.Now().UnixNano())
	}
}

// Loop registers a check that fails when the returned heartbeat has not
// beaten for maxAge (it starts beaten): for loops that never block longer
// than a fraction of maxAge.
func (h *Health) Loop(name string, maxAge time.Duration) *Heartbeat {
	b := &Heartbeat{}
	b.Beat()
	h.Add(name, func() error {
		age := time.Since(time.Unix(0, b.last.Load()))
		if age > maxAge {
			return fmt.Errorf("no progress for %s (more than %s)", age.Round(time.Second), maxAge)
		}
		return nil
	})
	return b
}

// Watchdog is what Health needs of awserr.Watchdog.
type Watchdog interface {
	// Failing says what is failing for configuration reasons ("" if
	// nothing).
	Failing() string
}

// AddWatchdog registers a check that fails while w sees AWS refusing a
// target's calls for configuration reasons (and once it has fired).
func (h *Health) AddWatchdog(w Watchdog) {
	h.Add("aws", func() error {
		if s := w.Failing(); s != "" {
			return fmt.Errorf("%s", s)
		}
		return nil
	})
}
