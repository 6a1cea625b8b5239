package process

import (
	"fmt"
	"strings"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/notify"
	"github.com/hevc-encoder/hevc-encoder/pkg/progress"
)

// Notification is the run_finished event of a run (NOTIFY_URL), err being
// Run's error. Each file that failed was notified when the downloader
// recorded it; the list is repeated here, shortened.
func (r Report) Notification(err error) notify.Event {
	title := "hevc-encoder: run finished"
	switch {
	case r.Interrupted:
		title = "hevc-encoder: run interrupted"
	case r.TimedOut:
		title = "hevc-encoder: run timed out"
	case len(r.Failed) > 0:
		title = fmt.Sprintf("hevc-encoder: run finished, %d failed", len(r.Failed))
	case !r.OK():
		title = "hevc-encoder: run finished with problems"
	}
	var lines []string
	if r.Upload != nil {
		lines = append(lines, fmt.Sprintf("uploaded %d", r.Upload.Uploaded))
	}
	line := fmt.Sprintf("installed %d", r.Installed)
	if r.BytesBefore > 0 {
		line += fmt.Sprintf(": %s → %s (%.1f%%)", progress.Bytes(r.BytesBefore), progress.Bytes(r.BytesAfter), 100*float64(r.BytesAfter)/float64(r.BytesBefore))
	}
	lines = append(lines, line)
	if len(r.Kept) > 0 {
		lines = append(lines, fmt.Sprintf("kept %d original(s): HEVC was not smaller", len(r.Kept)))
	}
	if len(r.Failed) > 0 {
		lines = append(lines, fmt.Sprintf("failed %d:", len(r.Failed)), notify.List(r.Failed, 10))
	}
	if len(r.Unsettled) > 0 {
		lines = append(lines, fmt.Sprintf("uploaded, neither installed nor failed: %d", len(r.Unsettled)))
	}
	if r.Queued+r.Processing+r.Waiting > 0 {
		lines = append(lines, fmt.Sprintf("left: %d queued, %d processing, %d waiting to download", r.Queued, r.Processing, r.Waiting))
	}
	if r.Stalled != "" {
		lines = append(lines, r.Stalled)
	}
	if r.UploadErr != nil {
		lines = append(lines, "upload: "+r.UploadErr.Error())
	}
	lines = append(lines, "wall time "+r.Wall.Round(time.Second).String())
	details := map[string]any{
		"ok": r.OK(), "installed": r.Installed, "failed": len(r.Failed), "kept": len(r.Kept), "unsettled": len(r.Unsettled),
		"bytes_before": r.BytesBefore, "bytes_after": r.BytesAfter,
		"queued": r.Queued, "processing": r.Processing, "waiting": r.Waiting,
		"timed_out": r.TimedOut, "interrupted": r.Interrupted, "wall_seconds": r.Wall.Seconds(),
	}
	if r.Upload != nil {
		details["uploaded"] = r.Upload.Uploaded
	}
	if err != nil {
		details["error"] = err.Error()
	}
	return notify.Event{Kind: notify.RunFinished, Title: title, Message: strings.Join(lines, "\n"), Failure: !r.OK() || err != nil, Details: details}
}
