package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Clip is a generated test video: an ffmpeg lavfi source encoded to H.264
// the way a phone would (High profile, AAC audio, moov at the end).
type Clip struct {
	Name   string // short name used in case names
	Title  string // what it stands for
	Width  int
	Height int
	FPS    int
	Secs   float64
	// Video is the lavfi filter graph producing the picture; {W}, {H}, {R}
	// and {D} are replaced with width, height, frame rate and duration.
	Video string
	// TenBit encodes H.264 High 10 tagged BT.2020 HLG (phones' HDR video).
	TenBit bool
	CRF    int // x264 CRF of the "camera" encode (default 20)
}

// Frames is the clip's frame count.
func (c Clip) Frames() int { return int(float64(c.FPS)*c.Secs + 0.5) }

func (c Clip) graph() string {
	r := strings.NewReplacer("{W}", strconv.Itoa(c.Width), "{H}", strconv.Itoa(c.Height),
		"{SW}", strconv.Itoa(even(c.Width*24/100)), "{SH}", strconv.Itoa(even(c.Height*60/100)),
		"{R}", strconv.Itoa(c.FPS), "{D}", strconv.FormatFloat(c.Secs, 'f', -1, 64))
	return r.Replace(c.Video)
}

func even(n int) int { return max(2, n&^1) }

// args is the ffmpeg command that generates the clip into out.
func (c Clip) args(out string) []string {
	crf := c.CRF
	if crf == 0 {
		crf = 20
	}
	a := []string{"-hide_banner", "-nostdin", "-v", "error", "-y",
		"-f", "lavfi", "-i", c.graph(),
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=330:sample_rate=48000:duration=%g", c.Secs),
		"-map", "0:v", "-map", "1:a", "-t", strconv.FormatFloat(c.Secs, 'f', -1, 64),
		"-c:v", "libx264", "-preset", "veryfast", "-crf", strconv.Itoa(crf), "-g", strconv.Itoa(2 * c.FPS)}
	if c.TenBit {
		a = append(a, "-pix_fmt", "yuv420p10le", "-profile:v", "high10",
			"-color_primaries", "bt2020", "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc")
	} else {
		a = append(a, "-pix_fmt", "yuv420p", "-profile:v", "high")
	}
	a = append(a, "-c:a", "aac", "-b:a", "128k",
		"-metadata", "creation_time=2024-05-01T10:00:00Z", out)
	return a
}

// key identifies the clip's content for the cache.
func (c Clip) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "v2 %q", c.args("out.mp4"))
	return c.Name + "-" + hex.EncodeToString(h.Sum(nil))[:12] + ".mp4"
}

// Sensor-like texture: fine temporal noise on top of the synthetic picture,
// so x265 has detail to spend bits on as in real footage (a clean lavfi
// pattern compresses to almost nothing and encodes unrealistically fast).
const (
	// Low motion, like a talking head: a static scene (colour bars and a
	// gradient) with one slowly swaying subject and light sensor noise.
	talkingHead = "smptehdbars=s={W}x{H}:r={R}:d={D}[bg];" +
		"gradients=s={W}x{H}:r={R}:d={D}:speed=0.002:c0=0x503020:c1=0xc0a080[g];" +
		"[bg][g]blend=all_mode=overlay:all_opacity=0.6[scene];" +
		"gradients=s={SW}x{SH}:r={R}:d={D}:speed=0.01:c0=0xd0a080:c1=0x906040[subject];" +
		"[scene][subject]overlay=x=main_w*0.38+main_w*0.03*sin(2*PI*t/4):y=main_h*0.22+main_h*0.015*sin(2*PI*t/3)," +
		"noise=alls=4:allf=t"
	// High motion: the moving test pattern scrolled across the frame
	// (a fast pan) with sensor noise.
	highMotion = "testsrc2=s={W}x{H}:r={R}:d={D},scroll=horizontal=0.013:vertical=0.004,noise=alls=5:allf=t"
	// Low light: a dark, low-contrast scene drowned in strong temporal
	// noise (high ISO).
	lowLight = "testsrc2=s={W}x{H}:r={R}:d={D},eq=brightness=-0.28:contrast=0.45:saturation=0.6,noise=alls=22:allf=t+u"
	// 10-bit HLG: a moving pattern in BT.2020 10-bit with light noise.
	hlg = "testsrc2=s={W}x{H}:r={R}:d={D},noise=alls=4:allf=t,format=yuv420p10le"
	// The overhead clip: moving pattern plus sensor noise at 1080p30
	// (about 13 Mbit/s, a phone's bitrate).
	overheadVideo = "testsrc2=s={W}x{H}:r={R}:d={D},noise=alls=5:allf=t"
)

// efficiencyClips is the set encoded by ours and by the seed.
func efficiencyClips(m mode) []Clip {
	w, h, secs := 1280, 720, 6.0
	switch m {
	case quick:
		w, h, secs = 640, 360, 2
	case tiny:
		w, h, secs = 160, 96, 1
	}
	mk := func(name, title, video string, tenBit bool) Clip {
		return Clip{Name: name, Title: title, Width: w, Height: h, FPS: 30, Secs: secs, Video: video, TenBit: tenBit}
	}
	return []Clip{
		mk("talking-head", "low motion, talking-head-like", talkingHead, false),
		mk("high-motion", "fast pan over a moving pattern", highMotion, false),
		mk("low-light", "dark, noisy (high ISO)", lowLight, false),
		mk("hlg-10bit", "10-bit BT.2020 HLG (phone HDR)", hlg, true),
	}
}

// overheadClip is the processor-overhead clip: 30 s 1080p30 (reduced in
// the quick and tiny modes).
func overheadClip(m mode) Clip {
	c := Clip{Name: "overhead", Title: "1080p30 H.264 + AAC", Width: 1920, Height: 1080, FPS: 30, Secs: 30, Video: overheadVideo}
	switch m {
	case quick:
		c.Title, c.Width, c.Height, c.Secs = "720p30 H.264 + AAC", 1280, 720, 4
	case tiny:
		c.Title, c.Width, c.Height, c.Secs = "160x96 H.264 + AAC", 160, 96, 1
	}
	return c
}

// ensure returns the path of the generated clip, generating it into the
// cache directory when missing (generation of the 30 s 1080p clip takes
// about a minute and a half on 2 cores; cached across runs).
func (c Clip) ensure(ctx context.Context, cacheDir string) (string, error) {
	p := filepath.Join(cacheDir, c.key())
	if st, err := os.Stat(p); err == nil && st.Size() > 0 {
		return p, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("clip cache %s: %w", cacheDir, err)
	}
	tmp := p + ".part.mp4"
	cmd := exec.CommandContext(ctx, "ffmpeg", c.args(tmp)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("generate clip %s: %w: %s", c.Name, err, clip(strings.TrimSpace(string(out)), 600))
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("generate clip %s: %w", c.Name, err)
	}
	return p, nil
}

// defaultCacheDir is where generated clips are kept between runs.
func defaultCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "hevc-encoder", "bench")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "hevc-encoder", "bench")
	}
	return filepath.Join(os.TempDir(), "hevc-encoder-bench")
}
