package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/procstat"
)

// SeedCommand is the seed's exact encode, the anchor of issue 8.
func SeedCommand(in, out string) []string {
	return []string{"-hide_banner", "-nostdin", "-v", "error", "-y", // quiet, non-interactive: no effect on the encode
		"-i", in, "-c:v", "libx265", "-crf", "26", "-preset", "fast", "-c:a", "copy", out}
}

// Encoded is one encode of a clip, measured.
type Encoded struct {
	Clip     string  `json:"clip"`
	Encoder  string  `json:"encoder"`     // seed, ours (= balanced), archive, small
	Bytes    int64   `json:"bytes"`       // the file
	Video    int64   `json:"video_bytes"` // the video stream's packets (the encode itself, without container and audio)
	KbitS    float64 `json:"kbit_s"`
	SSIM     float64 `json:"ssim"`
	SSIMdB   float64 `json:"ssim_db"`
	PSNR     float64 `json:"psnr_db"`
	FPS      float64 `json:"fps"`
	Seconds  float64 `json:"seconds"`
	CPUSecs  float64 `json:"cpu_seconds,omitempty"`
	PixFmt   string  `json:"pix_fmt"`
	Transfer string  `json:"color_transfer,omitempty"`
	Args     string  `json:"x265,omitempty"`
}

// encodeSeed runs the seed's command on clip.
func encodeSeed(ctx context.Context, clip, out string) (time.Duration, time.Duration, error) {
	cmd := exec.CommandContext(ctx, "ffmpeg", SeedCommand(clip, out)...)
	var stderr tail
	cmd.Stderr = &stderr
	wall, cpu, err := timed(cmd)
	if err != nil {
		return wall, cpu, fmt.Errorf("seed encode of %s: %w: %s", clip, err, stderr.String())
	}
	return wall, cpu, nil
}

// encodeOurs runs the production code path (media.Probe, NewPlan, Encode)
// with s sized to this machine's CPUs, as hevc-processor does.
func encodeOurs(ctx context.Context, clip, out string, s media.Settings) (time.Duration, string, error) {
	info, err := media.Probe(ctx, clip)
	if err != nil {
		return 0, "", err
	}
	plan, err := media.NewPlan(info, s.WithCPUs())
	if err != nil {
		return 0, "", err
	}
	x265 := ""
	for i, a := range plan.Args {
		if a == "-x265-params" && i+1 < len(plan.Args) {
			x265 = plan.Args[i+1]
		}
	}
	start := time.Now()
	if err := media.Encode(ctx, clip, out, plan, nil); err != nil {
		return 0, x265, err
	}
	return time.Since(start), x265, nil
}

// measure fills an Encoded from an output file.
func measure(ctx context.Context, c Clip, src, out, encoder string, wall, cpu time.Duration, x265 string) (Encoded, error) {
	e := Encoded{Clip: c.Name, Encoder: encoder, Bytes: fileSize(out), Seconds: round(wall.Seconds(), 3),
		CPUSecs: round(cpu.Seconds(), 2), Args: x265}
	if wall > 0 {
		e.FPS = round(float64(c.Frames())/wall.Seconds(), 2)
	}
	e.KbitS = round(float64(e.Bytes)*8/1000/c.Secs, 1)
	vb, err := videoBytes(ctx, out)
	if err != nil {
		return e, err
	}
	e.Video = vb
	srcFmt := "yuv420p"
	if c.TenBit {
		srcFmt = "yuv420p10le"
	}
	q, err := compare(ctx, out, src, srcFmt)
	if err != nil {
		return e, err
	}
	e.SSIM, e.SSIMdB, e.PSNR = round(q.SSIM, 6), round(q.SSIMdB, 3), round(q.PSNR, 3)
	if info, err := media.Probe(ctx, out); err == nil {
		if v, ok := info.MainVideo(); ok {
			e.PixFmt, e.Transfer = v.PixFmt, v.ColorTransfer
		}
	}
	return e, nil
}

// The efficiency criterion: our default's video stream is not larger than
// the seed's, at an SSIM not lower. Our x265 parameters differ from the
// seed's by the pool size, a second frame in flight on 2-3 CPUs
// (media.FrameThreads) and the balanced tune that pays for it.

// runEfficiency encodes every clip with the seed's command, our default
// and the other quality presets, and emits the comparison rows.
func (h *harness) runEfficiency(ctx context.Context) error {
	clips := efficiencyClips(h.mode)
	dir := filepath.Join(h.work, "efficiency")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	presets := []string{"archive", "small"}
	var all []Encoded
	for _, c := range clips {
		src, err := c.ensure(ctx, h.cache)
		if err != nil {
			return err
		}
		h.logf("efficiency: %s (%dx%d, %gs): seed", c.Name, c.Width, c.Height, c.Secs)
		seedOut := filepath.Join(dir, c.Name+"-seed.mp4")
		wall, cpu, err := encodeSeed(ctx, src, seedOut)
		if err != nil {
			return err
		}
		seed, err := measure(ctx, c, src, seedOut, "seed", wall, cpu, "")
		if err != nil {
			return err
		}
		h.logf("efficiency: %s: ours", c.Name)
		ourOut := filepath.Join(dir, c.Name+"-ours.mp4")
		owall, x265, err := encodeOurs(ctx, src, ourOut, media.DefaultSettings())
		if err != nil {
			return fmt.Errorf("our encode of %s: %w", c.Name, err)
		}
		ours, err := measure(ctx, c, src, ourOut, "ours", owall, 0, x265)
		if err != nil {
			return err
		}
		all = append(all, seed, ours)
		if err := h.emitEfficiency(c, seed, ours); err != nil {
			return err
		}
		if h.mode != tiny && media.FrameThreads(media.CPUs()) > 0 {
			// Why the balanced tune: the second frame alone.
			opt := media.DefaultSettings()
			opt.Tune = ""
			h.logf("efficiency: %s: ours without the balanced tune", c.Name)
			out := filepath.Join(dir, c.Name+"-untuned.mp4")
			w, x, err := encodeOurs(ctx, src, out, opt)
			if err != nil {
				return fmt.Errorf("untuned encode of %s: %w", c.Name, err)
			}
			e, err := measure(ctx, c, src, out, "ours without the tune", w, 0, x)
			if err != nil {
				return err
			}
			all = append(all, e)
			if err := h.sink.emit(Result{Issue: 8, Case: "encode " + c.Name + ": video size with frame-threads=2 but without the balanced tune, vs the seed",
				Ours: kib(e.Video), Anchor: kib(seed.Video), Unit: "KiB", AnchorName: "seed's ffmpeg command",
				Ratio: float64(e.Video) / float64(seed.Video), Target: Info,
				Notes:  fmt.Sprintf("what the tune (%s) pays for: SSIM %.5f (seed %.5f, ours %.5f), %.1f fps (ours %.1f, seed %.1f)", media.BalancedTune, e.SSIM, seed.SSIM, ours.SSIM, e.FPS, ours.FPS, seed.FPS),
				Detail: map[string]any{"encode": e}}); err != nil {
				return err
			}
		}
		for _, p := range presets {
			if h.mode == tiny && p == "archive" {
				continue // the slow preset adds nothing to a harness check
			}
			if h.mode == quick && c.Name != clips[0].Name {
				continue // quick: the presets on the first clip only
			}
			s, err := media.Preset(p)
			if err != nil {
				return err
			}
			h.logf("efficiency: %s: preset %s", c.Name, p)
			out := filepath.Join(dir, c.Name+"-"+p+".mp4")
			w, x, err := encodeOurs(ctx, src, out, s)
			if err != nil {
				return fmt.Errorf("%s encode of %s: %w", p, c.Name, err)
			}
			e, err := measure(ctx, c, src, out, p, w, 0, x)
			if err != nil {
				return err
			}
			all = append(all, e)
			if err := h.emitPreset(c, p, s, e, ours); err != nil {
				return err
			}
		}
	}
	h.encodes = append(h.encodes, all...)
	return nil
}

func (h *harness) emitEfficiency(c Clip, seed, ours Encoded) error {
	sizeRatio := float64(ours.Video) / float64(seed.Video)
	pass := ours.Video <= seed.Video && ours.SSIM >= seed.SSIM
	detail := map[string]any{"seed": seed, "ours": ours, "clip": c.Title,
		"resolution": fmt.Sprintf("%dx%d", c.Width, c.Height), "seconds": c.Secs}
	note := fmt.Sprintf("%s, %dx%d %gs; SSIM ours %.5f vs seed %.5f; PSNR %.2f vs %.2f dB; files %d vs %d bytes (ours keeps creation_time, location and other tags; faststart)",
		c.Title, c.Width, c.Height, c.Secs, ours.SSIM, seed.SSIM, ours.PSNR, seed.PSNR, ours.Bytes, seed.Bytes)
	if c.TenBit {
		note += fmt.Sprintf("; output pix_fmt ours %s (%s) vs seed %s (%s)", ours.PixFmt, ours.Transfer, seed.PixFmt, orNone(seed.Transfer))
	}
	rows := []Result{
		{Case: "encode " + c.Name + ": video size, our default vs the seed", Ours: kib(ours.Video), Anchor: kib(seed.Video), Unit: "KiB",
			Ratio: sizeRatio, Target: "<=1.000 at SSIM >= seed's", Pass: pass, Notes: note, Detail: detail},
		{Case: "encode " + c.Name + ": SSIM", Ours: ours.SSIM, Anchor: seed.SSIM, Unit: "", Ratio: ours.SSIM / seed.SSIM, Target: Info,
			Notes: fmt.Sprintf("%.3f dB vs %.3f dB", ours.SSIMdB, seed.SSIMdB)},
		{Case: "encode " + c.Name + ": PSNR", Ours: ours.PSNR, Anchor: seed.PSNR, Unit: "dB", Ratio: ours.PSNR / seed.PSNR, Target: Info},
		{Case: "encode " + c.Name + ": encode speed", Ours: ours.FPS, Anchor: seed.FPS, Unit: "fps", Ratio: ours.FPS / seed.FPS, Target: Info,
			Notes: fmt.Sprintf("x265 params ours: %s; seed: x265 defaults; load %.1f", ours.Args, procstat.LoadAvg())},
	}
	for _, r := range rows {
		r.Issue, r.AnchorName = 8, "seed's ffmpeg command"
		if err := h.sink.emit(r); err != nil {
			return err
		}
	}
	return nil
}

func (h *harness) emitPreset(c Clip, name string, s media.Settings, e, balanced Encoded) error {
	return h.sink.emit(Result{Issue: 8, Case: fmt.Sprintf("preset %s (CRF %d, %s) on %s: video size vs balanced", name, s.CRF, s.Preset, c.Name),
		Ours: kib(e.Video), Anchor: kib(balanced.Video), Unit: "KiB", AnchorName: "balanced preset",
		Ratio: float64(e.Video) / float64(balanced.Video), Target: Info,
		Notes:  fmt.Sprintf("SSIM %.5f (balanced %.5f), PSNR %.2f dB (balanced %.2f), %.1f fps (balanced %.1f)", e.SSIM, balanced.SSIM, e.PSNR, balanced.PSNR, e.FPS, balanced.FPS),
		Detail: map[string]any{"encode": e, "balanced": balanced}})
}

func kib(b int64) float64 { return round(float64(b)/1024, 1) }

func orNone(s string) string {
	if s == "" {
		return "untagged"
	}
	return s
}

// videoBytes sums the sizes of the main video stream's packets.
func videoBytes(ctx context.Context, file string) (int64, error) {
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "V:0",
		"-show_entries", "packet=size", "-of", "csv=p=0", "file:"+file).Output()
	if err != nil {
		return 0, fmt.Errorf("ffprobe packets of %s: %w", file, err)
	}
	var n int64
	for _, l := range strings.Fields(string(out)) {
		v, err := strconv.ParseInt(strings.Trim(l, ","), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("ffprobe packets of %s: %q", file, l)
		}
		n += v
	}
	return n, nil
}
