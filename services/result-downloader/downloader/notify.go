package downloader

import (
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/history"
	"github.com/hevc-encoder/hevc-encoder/pkg/notify"
)

// notifyAfter bounds the FAILED/ records notified: older ones, met when
// the history is first written (an upgrade, a new library), are recorded
// quietly instead of sending one notification each.
const notifyAfter = 24 * time.Hour

// notifyHistory sends a file_failed notification for a history line this
// Downloader just wrote (wrote true): a result not installed, or a job
// that failed. The history writes each event once, whichever process
// meets it first and however often a reconcile meets it again, so each is
// notified once too. Converted and no-gain lines are not notified.
func (d *Downloader) notifyHistory(e history.Entry, objectKey string, wrote bool) {
	if d.Notify == nil || !wrote {
		return
	}
	switch e.Outcome {
	case history.Rejected:
		d.Notify.Notify(notify.File(e.Key, "not installed: "+e.Reason, map[string]any{"object": objectKey, "outcome": e.Outcome}))
	case history.Failed:
		now := time.Now
		if d.Now != nil {
			now = d.Now
		}
		if !e.Time.IsZero() && now().Sub(e.Time) > notifyAfter {
			return
		}
		d.Notify.Notify(notify.File(e.Key, e.Reason, map[string]any{"object": objectKey, "outcome": e.Outcome}))
	}
}
