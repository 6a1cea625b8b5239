// Package processor is hevc-processor's logic: one job is one file,
// TODO/<rel>.mp4 → libx265 → verify → DONE/<rel>-hevc.mp4.
package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/cost"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// Outcome is how a job ended.
type Outcome string

// Outcomes. Only Done produces a DONE/ object; Failed and NoGain write a
// FAILED/<rel>.mp4.json record (NoGain is not an error, but the original is
// kept and the file must not be queued again).
const (
	Done        Outcome = "done"
	Failed      Outcome = "failed"
	NoGain      Outcome = "no-gain"
	AlreadyHEVC Outcome = "already-hevc"
	Gone        Outcome = "gone" // TODO/ object no longer exists (processed before)
)

// Config tunes the processor.
type Config struct {
	Settings media.Settings
	// WorkDir holds the job's input and output (ephemeral storage on
	// Fargate); "" means the OS temp dir.
	WorkDir string
	// Heartbeat is how often the work message's visibility is extended to
	// Visibility while the job runs.
	Heartbeat, Visibility time.Duration
	// StreamInput lets ffmpeg read the input from a presigned URL when the
	// store supports it, instead of downloading it first.
	StreamInput bool
	// Task is the ECS task's size (TASK_VCPU, TASK_MEMORY_GIB); when known,
	// each job records its cost (cost.go).
	Task cost.TaskSize
}

// Processor runs jobs against a store and (optionally) the work queue.
type Processor struct {
	Store storage.Store
	Queue queue.Queue // nil when jobs do not come from a queue
	Cfg   Config
	Log   zerolog.Logger
	// Started is when the task started (main sets it: one task, one job);
	// zero means each job's own start. The cost record's runtime runs
	// from it.
	Started time.Time
}

// Result describes a finished job.
type Result struct {
	Key             string
	Outcome         Outcome
	Reason          string
	InSize, OutSize int64
	Elapsed         time.Duration
}

// Record is the JSON written to FAILED/<rel>.mp4.json.
type Record struct {
	Key          string    `json:"key"`
	Status       Outcome   `json:"status"`
	Reason       string    `json:"reason"`
	SourceSize   int64     `json:"source_size"`
	SourceSHA256 string    `json:"source_sha256,omitempty"`
	OutputSize   int64     `json:"output_size,omitempty"`
	Dropped      []string  `json:"dropped_streams,omitempty"`
	Time         time.Time `json:"time"`

	// EncodeSeconds is how long the job ran before it ended here (the
	// library's history reads it).
	EncodeSeconds float64 `json:"encode_seconds,omitempty"`
	// VCPUSeconds and GBSeconds are the task's usage so far, when its size
	// is known (cost.go; the history reads them too).
	VCPUSeconds float64 `json:"vcpu_seconds,omitempty"`
	GBSeconds   float64 `json:"gb_seconds,omitempty"`
}

// ErrInterrupted is wrapped by Process's error when ctx was cancelled
// (SIGTERM): the job was handed back to the queue for a retry.
var ErrInterrupted = errors.New("interrupted; message released for a retry")

// permanent marks failures that retrying cannot fix.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Process does one job. A nil error means the job is finished for good (its
// message is deleted); an error means it should be retried (the message is
// left to reappear, or made visible at once when ctx was cancelled).
func (p *Processor) Process(ctx context.Context, job launch.Job) (Result, error) {
	start := time.Now()
	ctx = withJobStart(ctx, start) // the cost's runtime when Started is not set (cost.go)
	log := p.Log.With().Str("key", job.Key).Logger()
	stopHeartbeat := p.heartbeat(ctx, job, log)
	res, err := p.process(ctx, job, log)
	stopHeartbeat()
	res.Key, res.Elapsed = job.Key, time.Since(start)
	p.recordCost(ctx, job, res, err, log)

	var perm permanent
	switch {
	case err == nil:
	case ctx.Err() != nil:
		// Interrupted (SIGTERM, Spot): hand the job back at once. Checked
		// before permanent failures: a tool killed by the cancellation can
		// look like a bad input, and must not end in FAILED/.
		p.release(job, log)
		return res, fmt.Errorf("process %s: %w: %w", job.Key, ErrInterrupted, ctx.Err())
	case errors.As(err, &perm):
		res.Outcome, res.Reason = Failed, perm.Error()
		if rerr := p.writeRecord(context.WithoutCancel(ctx), job.Key, res, nil); rerr != nil {
			return res, fmt.Errorf("record failure of %s: %w (failure: %v)", job.Key, rerr, err)
		}
		log.Error().Str("reason", res.Reason).Msg("failed permanently; original kept, recorded in FAILED/")
	default:
		// Hand the job back now, with a backoff, rather than after the
		// visibility the heartbeat (or the dispatcher's start grace) set.
		RetryLater(ctx, p.Queue, job, log)
		log.Warn().Err(err).Msg("transient failure; the message will be redelivered")
		return res, err
	}
	if p.Queue != nil && job.Receipt != "" {
		if derr := p.Queue.Delete(context.WithoutCancel(ctx), job.Receipt); derr != nil {
			// Harmless: a redelivery finds DONE/ or no TODO/ and ends.
			log.Warn().Err(derr).Msg("delete work message")
		}
	}
	log.Info().Str("outcome", string(res.Outcome)).Int64("in_bytes", res.InSize).Int64("out_bytes", res.OutSize).
		Dur("elapsed", res.Elapsed).Msg("job finished")
	return res, nil
}

func (p *Processor) process(ctx context.Context, job launch.Job, log zerolog.Logger) (Result, error) {
	begun := time.Now()
	rel, err := library.RelFromTodo(job.Key)
	if err != nil {
		// No FAILED/ key can be derived from a key outside the rules.
		log.Error().Err(err).Msg("refusing job")
		return Result{Outcome: Failed, Reason: err.Error()}, nil
	}
	doneKey, _ := library.DoneKey(rel)
	// Streaming, the input's probe needs only the key: it runs while the
	// HEAD is answered, and the HEAD's findings come first (overlap.go).
	early := p.probeEarly(ctx, job.Key)
	defer early.close()
	src, err := p.Store.Head(ctx, job.Key)
	if errors.Is(err, storage.ErrNotFound) {
		// The store reports a missing bucket as the configuration error
		// it is (awserr.IsConfig), never as a missing key.
		log.Info().Msg("TODO object is gone (already processed); nothing to do")
		return Result{Outcome: Gone}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("head %s: %w", job.Key, err)
	}
	log.Debug().Int64("in_bytes", src.Size).Msg("head")
	res := Result{InSize: src.Size}
	if src.Size == 0 {
		return res, permanent{fmt.Errorf("%s is empty (0 bytes)", rel)}
	}

	// Scratch space for input (unless streamed), output and the live
	// decode's copy, checked before anything is written (disk.go).
	_, streamed := p.Store.(storage.Presigner)
	streamed = streamed && p.Cfg.StreamInput
	if err := p.checkSpace(rel, src.Size, streamed, job); err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp(p.Cfg.WorkDir, "job-*")
	if err != nil {
		return res, fmt.Errorf("work directory: %w", err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "output.mp4")
	in, closeInput, err := p.input(ctx, job.Key, src.Size, src.SHA256, dir, early)
	if err != nil {
		return res, p.noSpace(rel, src.Size, streamed, job, err)
	}
	defer closeInput()

	info, err := early.result(ctx, in)
	if errors.Is(err, media.ErrBadInput) {
		// Name the library file, not our scratch copy.
		return res, permanent{fmt.Errorf("%s is not a readable video: %s", rel, mediaReason(err, in, rel))}
	}
	if err != nil {
		return res, fmt.Errorf("probe %s: %w", job.Key, redact(err, in))
	}
	info.Path = rel // messages name the file, never a presigned URL
	log.Debug().Msg("probed input")
	if info.IsHEVC() {
		log.Info().Msg("already HEVC; not re-encoding")
		res.Outcome = AlreadyHEVC
		return res, p.Store.Delete(ctx, job.Key)
	}
	plan, err := media.NewPlan(info, p.Cfg.Settings)
	if err != nil {
		return res, permanent{fmt.Errorf("%s cannot be encoded: %s", rel, mediaReason(err, in, rel))}
	}
	if len(plan.Dropped) > 0 {
		log.Info().Strs("dropped", plan.Dropped).Msg("streams MP4 cannot carry are dropped")
	}
	// The verification's readers of the output start now, their start-up
	// off the critical path (media.Readback); without them (no loopback
	// port) the verification starts its own after the encode.
	rb, err := media.StartReadback(ctx, out)
	if err != nil {
		log.Warn().Err(err).Msg("verification readers not started early")
	} else {
		defer rb.Close()
	}
	// The output's video is decoded while it is encoded (media.EncodeAndDecode).
	decoded, err := media.EncodeAndDecodeFor(ctx, in, out, plan, progressLogger(log), rb)
	if errors.Is(err, media.ErrVerify) {
		return res, verifyFailure(rel, job.Key, err)
	}
	if err != nil {
		if errors.Is(err, media.ErrBadInput) {
			// media says "<input> cannot be decoded: …" or "… is truncated: …".
			return res, permanent{errors.New(mediaReason(err, in, rel))}
		}
		return res, p.noSpace(rel, src.Size, streamed, job, fmt.Errorf("encode %s: %w", job.Key, redact(err, in)))
	}
	log.Info().Int64("frames", decoded.Frames).Dur("decode_tail", decoded.Tail).Msg("encoded; video decoded during the encode")
	st, err := os.Stat(out)
	if err != nil {
		return res, fmt.Errorf("stat output of %s: %w", job.Key, err)
	}
	res.OutSize = st.Size()
	if res.OutSize >= res.InSize {
		if _, err := p.verifyDecoded(ctx, info, out, decoded, rb); err != nil {
			return res, verifyFailure(rel, job.Key, err)
		}
		res.Outcome, res.Reason = NoGain, fmt.Sprintf("HEVC output (%d bytes) is not smaller than the input (%d bytes); original kept", res.OutSize, res.InSize)
		res.Elapsed = time.Since(begun)
		if err := p.writeRecord(ctx, job.Key, res, plan.Dropped); err != nil {
			return res, err
		}
		return res, p.Store.Delete(ctx, job.Key)
	}

	md := map[string]string{
		storage.MetaSourceSize: strconv.FormatInt(src.Size, 10),
		storage.MetaDuration:   strconv.FormatFloat(info.Duration, 'f', 3, 64),
		// Encoded, not yet verified and stored: close to the job's time.
		storage.MetaEncodeSeconds: strconv.FormatFloat(time.Since(begun).Seconds(), 'f', 1, 64),
	}
	if src.SHA256 != "" {
		md[storage.MetaSourceSHA] = src.SHA256
	}
	if v := src.Metadata[storage.MetaSourceMtime]; v != "" {
		md[storage.MetaSourceMtime] = v
	}
	p.costMetadata(ctx, md) // the task's vCPU- and GB-seconds so far (cost.go)
	// Verification and upload overlap; DONE/ is committed only once the
	// output is verified (overlap.go).
	log.Info().Int64("in_bytes", res.InSize).Int64("out_bytes", res.OutSize).Msg("verifying and uploading result")
	if err := p.verifyAndUpload(log.WithContext(ctx), info, in, decoded, out, rb, doneKey, res.OutSize, md); err != nil {
		if errors.Is(err, media.ErrVerify) {
			return res, verifyFailure(rel, job.Key, err)
		}
		return res, fmt.Errorf("upload %s: %w", doneKey, err)
	}
	log.Debug().Msg("verified and uploaded")
	// Only now, with the verified result durable, is the work object removed.
	if err := p.deleteTodo(ctx, job.Key, src, log); err != nil {
		return res, fmt.Errorf("delete %s after upload: %w", job.Key, err)
	}
	res.Outcome = Done
	return res, nil
}

// input returns what ffmpeg reads, and a function to call when done with
// it: when the store presigns and streaming is on (encoding overlaps the
// transfer), the URL of a loopback proxy to the object (inputproxy.go: no
// presigned URL in ffmpeg's arguments, each one short-lived, every read
// pinned to the object's ETag; early's, when the probe started it); else
// a local copy downloaded (and checksum-verified) into dir.
func (p *Processor) input(ctx context.Context, key string, size int64, sha, dir string, early *earlyProbe) (string, func(), error) {
	if early != nil {
		if err := early.px.expect(size, sha); err != nil {
			return "", nil, err
		}
		return early.px.URL, func() {}, nil // early.close stops it
	}
	if ps, ok := p.Store.(storage.Presigner); ok && p.Cfg.StreamInput {
		px, err := startInputProxy(ps, key, size)
		if err != nil {
			return "", nil, err
		}
		return px.URL, px.Close, nil
	}
	in := filepath.Join(dir, "input.mp4")
	return in, func() {}, p.download(ctx, key, in)
}

func (p *Processor) download(ctx context.Context, key, dst string) error {
	r, _, err := p.Store.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	defer r.Close()
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("download %s: %w", key, err)
	}
	return f.Close()
}

func (p *Processor) writeRecord(ctx context.Context, key string, res Result, dropped []string) error {
	rel, err := library.RelFromTodo(key)
	if err != nil {
		return nil // nothing to name it by; already logged
	}
	fk, _ := library.FailedKey(rel)
	rec := Record{Key: key, Status: res.Outcome, Reason: res.Reason, SourceSize: res.InSize, OutputSize: res.OutSize, Dropped: dropped, Time: time.Now().UTC(),
		EncodeSeconds: res.Elapsed.Seconds()}
	rec.VCPUSeconds, rec.GBSeconds = p.usage(ctx)
	if h, err := p.Store.Head(ctx, key); err == nil {
		rec.SourceSHA256 = h.SHA256
		if v := h.Metadata[storage.MetaSourceSHA]; v != "" {
			rec.SourceSHA256 = v
		}
	}
	b, _ := json.MarshalIndent(rec, "", "  ")
	if _, err := p.Store.Put(ctx, fk, strings.NewReader(string(b)), storage.PutOptions{}); err != nil {
		return fmt.Errorf("write %s: %w", fk, err)
	}
	if res.Outcome == Failed {
		// The original stays in the library; TODO/ is only the work copy.
		if err := p.Store.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete %s after recording failure: %w", key, err)
		}
	}
	return nil
}

// heartbeat keeps the work message invisible while the job runs.
func (p *Processor) heartbeat(ctx context.Context, job launch.Job, log zerolog.Logger) (stop func()) {
	if p.Queue == nil || job.Receipt == "" || p.Cfg.Heartbeat <= 0 {
		return func() {}
	}
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(p.Cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
				if err := p.Queue.ChangeVisibility(hctx, job.Receipt, p.Cfg.Visibility); err != nil && hctx.Err() == nil {
					log.Warn().Err(err).Msg("heartbeat: extend message visibility")
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (p *Processor) release(job launch.Job, log zerolog.Logger) {
	if p.Queue == nil || job.Receipt == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Queue.ChangeVisibility(ctx, job.Receipt, 0); err != nil {
		log.Warn().Err(err).Msg("release message for retry")
		return
	}
	log.Warn().Msg("interrupted; message made visible again for a retry")
}

// RetryLater makes the work message reappear after queue.RetryDelay of its
// receive count: a transient failure (the store restarting, a network
// blip) is retried within seconds, and a lasting one ever more slowly until
// maxReceiveCount dead-letters it.
// q may be nil (no queue: nothing to hand back).
//
// The hand-back is tried for up to handBackFor: the failure that brought
// the job here (the network of a container that has just started, a
// restarting peer) often keeps the queue out of reach for a few seconds
// too, and a message not handed back stays hidden for the dispatcher's
// START_GRACE (minutes) instead of the backoff (seconds).
func RetryLater(ctx context.Context, q queue.Queue, job launch.Job, log zerolog.Logger) {
	if q == nil || job.Receipt == "" {
		return
	}
	delay := queue.RetryDelay(job.ReceiveCount)
	until := time.Now().Add(handBackFor)
	for {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := q.ChangeVisibility(actx, job.Receipt, delay)
		cancel()
		if err == nil {
			break
		}
		if time.Now().Add(handBackPause).After(until) {
			log.Warn().Err(err).Msg("schedule the retry; the message reappears after its visibility timeout")
			return
		}
		log.Debug().Err(err).Msg("schedule the retry; trying again")
		time.Sleep(handBackPause)
	}
	log.Info().Dur("retry_in", delay).Int("receive_count", job.ReceiveCount).Msg("message handed back for a retry")
}

// handBackFor bounds RetryLater's attempts, handBackPause spaces them.
var handBackFor, handBackPause = time.Minute, 2 * time.Second

// mediaReason is a media error as a FAILED/ reason: without the "bad
// input" sentinel (the record's status says it failed) and naming the
// library file where ffmpeg names our scratch copy or URL, each once
// (ffprobe prefixes its message with the input, and the error names it
// again: "bad input: input: input: Invalid data…").
func mediaReason(err error, in, rel string) string {
	msg := strings.TrimPrefix(err.Error(), media.ErrBadInput.Error()+": ")
	for _, name := range []string{in, rel} {
		msg = strings.ReplaceAll(msg, name+": ", "")
	}
	// "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d5012b6240] ": ffmpeg's context, not for people.
	msg = ffmpegContext.ReplaceAllString(msg, "")
	return strings.ReplaceAll(msg, in, rel)
}

var ffmpegContext = regexp.MustCompile(`\[[^\]]* @ 0x[0-9a-f]+\] `)

// progressLogger logs ffmpeg progress at most every 5 s or 10 %.
func progressLogger(log zerolog.Logger) func(media.Progress) {
	var last time.Time
	lastPct := -10.0
	return func(pr media.Progress) {
		if time.Since(last) < 5*time.Second && pr.Percent-lastPct < 10 && pr.Percent < 100 {
			return
		}
		last, lastPct = time.Now(), pr.Percent
		log.Info().Float64("percent", round1(pr.Percent)).Float64("fps", round1(pr.FPS)).
			Str("eta", pr.ETA.Truncate(time.Second).String()).Msg("encoding")
	}
}

func round1(f float64) float64 { return float64(int(f*10+0.5)) / 10 }
