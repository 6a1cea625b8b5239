package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/cost"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// costRecords reads every record under the month of now.
func costRecords(t *testing.T, st storage.Store, now time.Time) map[string]cost.Record {
	t.Helper()
	out := map[string]cost.Record{}
	if err := storage.Walk(context.Background(), st, cost.Month(now), func(o storage.Object) error {
		r, _, err := st.Get(context.Background(), o.Key)
		if err != nil {
			return err
		}
		defer r.Close()
		var rec cost.Record
		if err := json.NewDecoder(r).Decode(&rec); err != nil {
			return err
		}
		out[rec.Key] = rec
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// Point 5: with the task size known, every job (a result, a failure)
// records its vCPU- and GB-seconds under COSTS/<month>/, the result's
// bytes too, and the DONE/ object carries the usage in its metadata; with
// no task size nothing is recorded.
func TestJobsRecordTheirCost(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	env := awstest.Shared(t)
	ctx := context.Background()
	st := env.NewScratchStore(t)
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	mediatest.Clip(t, clip, mediatest.ClipOpts{Seconds: 2})
	putFile(t, st, "TODO/cam/clip.mp4", clip)
	if _, err := st.Put(ctx, "TODO/cam/empty.mp4", bytes.NewReader(nil), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Task = cost.TaskSize{VCPU: 4, MemoryGiB: 8}
	p := &Processor{Store: st, Cfg: cfg, Log: zerolog.New(zerolog.NewTestWriter(t))}
	start := time.Now()
	for key, want := range map[string]Outcome{"TODO/cam/clip.mp4": Done, "TODO/cam/empty.mp4": Failed} {
		if res, err := p.Process(ctx, launch.Job{Key: key}); err != nil || res.Outcome != want {
			t.Fatalf("%s: %+v %v, want %s", key, res, err, want)
		}
	}
	done, err := st.Head(ctx, "DONE/cam/clip-hevc.mp4")
	if err != nil {
		t.Fatal(err)
	}
	// A job of a few seconds is billed Fargate's minute: 4 vCPU × 60 s.
	if done.Metadata[MetaVCPUSeconds] != "240.0" || done.Metadata[MetaGBSeconds] != "480.0" {
		t.Errorf("DONE/ metadata %v, want vcpu-seconds 240.0 and gb-seconds 480.0", done.Metadata)
	}
	recs := costRecords(t, st, start)
	if len(recs) != 2 {
		t.Fatalf("cost records %+v, want one per job", recs)
	}
	ok := recs["TODO/cam/clip.mp4"]
	if ok.Outcome != "done" || ok.ResultBytes != done.Size || ok.VCPUSeconds != 240 || ok.GBSeconds != 480 || ok.Seconds <= 0 || ok.VCPU != 4 {
		t.Errorf("record of the result: %+v (result %d bytes)", ok, done.Size)
	}
	if bad := recs["TODO/cam/empty.mp4"]; bad.Outcome != "failed" || bad.ResultBytes != 0 || bad.VCPUSeconds != 240 {
		t.Errorf("record of the failure: %+v", bad)
	}
	if fr := failedRecord(t, st, "FAILED/cam/empty.mp4.json"); fr.VCPUSeconds != 240 || fr.GBSeconds != 480 {
		t.Errorf("FAILED/ record without the task's usage: %+v", fr)
	}
	u, err := cost.MonthUsage(ctx, st, start)
	if err != nil || u.Jobs != 2 || u.VCPUSeconds != 480 || u.ResultBytes != done.Size {
		t.Errorf("the month from the keys: %+v %v", u, err)
	}

	// No task size (the embedded pipeline, a run by hand): no record.
	st2 := env.NewScratchStore(t)
	putFile(t, st2, "TODO/cam/clip.mp4", clip)
	p2 := &Processor{Store: st2, Cfg: testConfig(t), Log: zerolog.Nop()}
	if res, err := p2.Process(ctx, launch.Job{Key: "TODO/cam/clip.mp4"}); err != nil || res.Outcome != Done {
		t.Fatalf("without a task size: %+v %v", res, err)
	}
	if n := costRecords(t, st2, start); len(n) != 0 {
		t.Errorf("records without a task size: %+v", n)
	}
	if o, _ := st2.Head(ctx, "DONE/cam/clip-hevc.mp4"); strings.Join([]string{o.Metadata[MetaVCPUSeconds], o.Metadata[MetaGBSeconds]}, "") != "" {
		t.Errorf("usage metadata without a task size: %v", o.Metadata)
	}
}
