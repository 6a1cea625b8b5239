package downloader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/history"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// Cost metadata hevc-processor may record on a result (task size ×
// runtime); read when present.
const (
	metaVCPUSeconds = "vcpu-seconds"
	metaGBSeconds   = "gb-seconds"
)

// historyLog is d.History, or the library's own history, opened once.
func (d *Downloader) historyLog() *history.Log {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.History == nil {
		d.History = history.Open(d.Cfg.Root, os.FileMode(d.Cfg.DirMode))
	}
	return d.History
}

// record appends a finished result to the history: installed results
// (converted) and results that were not installed (rejected, collided). Each is written once per version of the result, however often
// a reconcile meets it again and whichever downloader met it first. A
// history that cannot be written is logged; it never stops an install.
func (d *Downloader) record(j *job, res Result) {
	if res.Err != nil {
		return
	}
	e := history.Entry{BytesBefore: res.Before, BytesAfter: res.After, Ref: res.SHA256}
	switch res.Outcome {
	case Installed:
		e.Outcome = history.Converted
		if res.OriginalKept {
			e.Reason = res.Reason
		}
	case Rejected, Collision:
		e.Outcome, e.Reason = history.Rejected, res.Reason
		if e.Ref == "" {
			e.Ref = string(res.Outcome) // no SHA-256 recorded: one line per key
		}
	default:
		// Refused keys name no library file (and nothing may be written
		// for them); busy, gone and retried ones are not finished.
		return
	}
	switch {
	case j.orig.rel != "":
		e.Key = filepath.ToSlash(j.orig.rel)
	case j.ref.Orig != "":
		e.Key = j.ref.Orig
	default:
		e.Key = strings.TrimPrefix(res.Key, library.DonePrefix)
	}
	e.EncodeSeconds = metaFloat(j.obj.Metadata, storage.MetaEncodeSeconds)
	e.VCPUSeconds = metaFloat(j.obj.Metadata, metaVCPUSeconds)
	e.GBSeconds = metaFloat(j.obj.Metadata, metaGBSeconds)
	if wrote, err := d.historyLog().Append(e); err != nil {
		j.log.Warn().Err(err).Msg("history: line not written")
	} else {
		d.notifyHistory(e, res.Key, wrote) // notify.go
	}
}

func metaFloat(md map[string]string, k string) float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(md[k]), 64)
	if err != nil || f < 0 {
		return 0
	}
	return f
}

// failedRecord is what the history reads of FAILED/<rel>.mp4.json
// (hevc-processor's processor.Record).
type failedRecord struct {
	Status        string    `json:"status"`
	Reason        string    `json:"reason"`
	SourceSize    int64     `json:"source_size"`
	OutputSize    int64     `json:"output_size"`
	EncodeSeconds float64   `json:"encode_seconds"`
	VCPUSeconds   float64   `json:"vcpu_seconds"`
	GBSeconds     float64   `json:"gb_seconds"`
	Time          time.Time `json:"time"`
}

// recordFailures is RecordFailures for Reconcile: problems are logged.
func (d *Downloader) recordFailures(ctx context.Context) {
	if n, err := d.RecordFailures(ctx); err != nil && ctx.Err() == nil {
		d.Log.Warn().Err(err).Msg("history: FAILED/ records not all recorded; next reconcile tries again")
	} else if n > 0 {
		d.Log.Info().Int("records", n).Msg("history: recorded new FAILED/ records")
	}
}

// RecordFailures adds every FAILED/ record not yet in the history as one
// line (failed, or no_gain for an encode that was not smaller) and
// returns how many it added. The history de-duplicates by the file and
// the record's time, across processes and restarts; a record already
// handled by this Downloader (same size and modification time) is not
// even read again. Reconcile calls it.
func (d *Downloader) RecordFailures(ctx context.Context) (int, error) {
	h := d.historyLog()
	var objs []storage.Object
	if err := storage.Walk(ctx, d.Store, library.FailedPrefix, func(o storage.Object) error {
		objs = append(objs, o)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("list %s: %w", library.FailedPrefix, err)
	}
	added := 0
	var errs []error
	for _, o := range objs {
		ver := fmt.Sprintf("%d/%d", o.Size, o.Modified.UnixNano())
		d.mu.Lock()
		done := d.failed[o.Key] == ver
		d.mu.Unlock()
		if done {
			continue
		}
		rel, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, library.FailedPrefix), ".json")
		if !ok || library.CheckRel(rel) != nil {
			continue // not one of ours
		}
		rec, err := readFailedRecord(ctx, d.Store, o.Key)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e := history.Entry{Time: rec.Time, Key: rel, Outcome: history.Failed, Reason: rec.Reason,
			BytesBefore: rec.SourceSize, BytesAfter: rec.OutputSize, EncodeSeconds: rec.EncodeSeconds,
			VCPUSeconds: rec.VCPUSeconds, GBSeconds: rec.GBSeconds}
		if rec.Status == "no-gain" {
			e.Outcome = history.NoGain
		}
		if e.Time.IsZero() {
			e.Time = o.Modified
		}
		e.Ref = "record " + e.Time.UTC().Format(time.RFC3339Nano)
		wrote, err := h.Append(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("record %s: %w", o.Key, err))
			continue
		}
		if wrote {
			added++
			d.Log.Debug().Str("key", o.Key).Str("outcome", e.Outcome).Msg("history: recorded")
			d.notifyHistory(e, o.Key, true) // notify.go
		}
		d.mu.Lock()
		if d.failed == nil {
			d.failed = map[string]string{}
		}
		d.failed[o.Key] = ver
		d.mu.Unlock()
	}
	return added, errors.Join(errs...)
}

func readFailedRecord(ctx context.Context, st storage.Store, key string) (failedRecord, error) {
	var rec failedRecord
	r, _, err := st.Get(ctx, key)
	if err != nil {
		return rec, fmt.Errorf("get %s: %w", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return rec, fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return failedRecord{Status: "failed", Reason: "unreadable failure record: " + err.Error()}, nil
	}
	return rec, nil
}
