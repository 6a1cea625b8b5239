package awserr

import (
	"fmt"
	"time"
)

// Failing describes the longest current run of configuration errors (the
// target, since when) for a health check, or "" while every target's last
// call succeeded; once the watchdog has fired it says why.
func (w *Watchdog) Failing() string {
	if w == nil {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err.Error()
	}
	var worst string
	var since time.Time
	for target, r := range w.runs {
		if worst == "" || r.since.Before(since) {
			worst, since = target, r.since
		}
	}
	if worst == "" {
		return ""
	}
	last := w.runs[worst].last
	why := Classify(last).String()
	if c := Code(last); c != "" {
		why += " (" + c + ")"
	}
	return fmt.Sprintf("AWS refuses calls to %s for %s: %s; the service exits once this lasts AUTH_FAIL_AFTER (%s)",
		worst, time.Since(since).Round(time.Second), why, w.after)
}
