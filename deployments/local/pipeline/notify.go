package pipeline

import (
	"fmt"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/notify"
)

// notification is the run_finished event of a run (NOTIFY_URL). The
// files that failed were each notified as they were recorded (the
// downloader's Notify); the list is repeated here, shortened.
func (s Summary) notification(interrupted bool) notify.Event {
	skipped := 0
	for _, n := range s.Skipped {
		skipped += n
	}
	title := "hevc-encoder: run finished"
	switch {
	case interrupted:
		title = "hevc-encoder: run interrupted"
	case len(s.Failed) > 0:
		title = fmt.Sprintf("hevc-encoder: run finished, %d failed", len(s.Failed))
	}
	msg := fmt.Sprintf("converted %d, skipped %d, failed %d", s.Converted, skipped, len(s.Failed))
	if s.BytesBefore > 0 {
		msg += fmt.Sprintf("; %s → %s (%.1f%%)", human(s.BytesBefore), human(s.BytesAfter), 100*float64(s.BytesAfter)/float64(s.BytesBefore))
	}
	msg += "; wall time " + s.Wall.Round(time.Second).String()
	if len(s.Failed) > 0 {
		msg += "\n" + notify.List(s.Failed, 10)
	}
	return notify.Event{Kind: notify.RunFinished, Title: title, Message: msg, Failure: interrupted || len(s.Failed) > 0,
		Details: map[string]any{
			"converted": s.Converted, "skipped": skipped, "failed": len(s.Failed),
			"bytes_before": s.BytesBefore, "bytes_after": s.BytesAfter,
			"wall_seconds": s.Wall.Seconds(), "interrupted": interrupted,
		}}
}
