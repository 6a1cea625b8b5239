package processor

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/cost"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
)

// Result metadata: the task's usage until its result was stored, for
// anyone who reads the result (the month's estimate uses the COSTS/
// records, which outlive the results).
const (
	MetaVCPUSeconds = "vcpu-seconds"
	MetaGBSeconds   = "gb-seconds"
)

type jobStartKey struct{}

func withJobStart(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, jobStartKey{}, t)
}

// runtime is how long the task has run: since Started (the process, on
// ECS), else since the job began.
func (p *Processor) runtime(ctx context.Context) time.Duration {
	if !p.Started.IsZero() {
		return time.Since(p.Started)
	}
	if t, ok := ctx.Value(jobStartKey{}).(time.Time); ok {
		return time.Since(t)
	}
	return 0
}

// usage is the task's billed vCPU- and GB-seconds so far; zero when the
// task size is unknown.
func (p *Processor) usage(ctx context.Context) (vcpu, gb float64) {
	if !p.Cfg.Task.Known() {
		return 0, 0
	}
	r := cost.NewRecord("", "", time.Now(), p.runtime(ctx), p.Cfg.Task, 0)
	return r.VCPUSeconds, r.GBSeconds
}

// costMetadata adds the task's vCPU- and GB-seconds so far to the result's
// metadata; nothing when the task size is unknown.
func (p *Processor) costMetadata(ctx context.Context, md map[string]string) {
	if !p.Cfg.Task.Known() {
		return
	}
	vcpu, gb := p.usage(ctx)
	md[MetaVCPUSeconds] = strconv.FormatFloat(vcpu, 'f', 1, 64)
	md[MetaGBSeconds] = strconv.FormatFloat(gb, 'f', 1, 64)
}

// recordCost writes the job's cost record under COSTS/<YYYY-MM>/ whatever
// the outcome (a failed or interrupted task is billed too); nothing when
// the task size is unknown (TASK_VCPU unset: the embedded pipeline, or a
// processor run by hand). A record that cannot be written is logged: the
// estimate is then low, no work is affected.
func (p *Processor) recordCost(ctx context.Context, job launch.Job, res Result, err error, log zerolog.Logger) {
	if !p.Cfg.Task.Known() {
		return
	}
	outcome := string(res.Outcome)
	var perm permanent
	switch {
	case err == nil:
	case ctx.Err() != nil:
		outcome = "interrupted"
	case errors.As(err, &perm):
		outcome = string(Failed)
	default:
		outcome = "retry"
	}
	var result int64
	if err == nil && res.Outcome == Done {
		result = res.OutSize
	}
	rec := cost.NewRecord(job.Key, outcome, time.Now(), p.runtime(ctx), p.Cfg.Task, result)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	key, werr := cost.Write(wctx, p.Store, rec)
	if werr != nil {
		log.Warn().Err(werr).Msg("cost record not written; this month's estimate will be low")
		return
	}
	log.Debug().Str("cost_record", key).Float64("vcpu_seconds", rec.VCPUSeconds).Float64("gb_seconds", rec.GBSeconds).Msg("cost recorded")
}
