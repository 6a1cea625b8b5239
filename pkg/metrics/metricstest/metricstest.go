// Package metricstest holds what the services' metrics tests share:
// scraping a listener and waiting for a counter to move.
package metricstest

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// Scrape GETs url and returns the status code and body (0 and the error's
// text when the request fails: the listener may not be up yet).
func Scrape(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// WaitUntil polls cond every 100 ms; it fails the test after timeout (a
// hang guard, not a timing assertion).
func WaitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not the case after %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
