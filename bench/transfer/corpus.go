package main

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

// corpus is the media the services move: H.264 originals (what a phone
// writes, moov at the end) and the HEVC results the processor would make
// of them (same duration, same audio track, tagged hvc1), large and small.
// Real videos, not random bytes: the uploader probes what it uploads and
// the downloader checks a result against its original.
type corpus struct {
	bigOrig, bigResult     string // ≈ size each, same duration
	smallOrig, smallResult string // ≈ 1 MiB each, same duration
}

// base is a short clip from ffmpeg's lavfi sources, with strong temporal
// noise so that the encoders really spend the bitrate asked for.
type base struct {
	name string
	hevc bool
	secs int
	kbps int
	w, h int
}

func (b base) args(out string) []string {
	video := fmt.Sprintf("testsrc2=size=%dx%d:rate=30:duration=%d,noise=alls=40:allf=t+u", b.w, b.h, b.secs)
	a := []string{"-hide_banner", "-nostdin", "-v", "error", "-y",
		"-f", "lavfi", "-i", video,
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=330:sample_rate=48000:duration=%d", b.secs),
		"-map", "0:v", "-map", "1:a", "-pix_fmt", "yuv420p", "-b:v", fmt.Sprintf("%dk", b.kbps)}
	if b.hevc {
		a = append(a, "-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1",
			"-x265-params", fmt.Sprintf("log-level=error:vbv-maxrate=%d:vbv-bufsize=%d", b.kbps, b.kbps))
	} else {
		a = append(a, "-c:v", "libx264", "-preset", "ultrafast", "-maxrate", fmt.Sprintf("%dk", b.kbps), "-bufsize", fmt.Sprintf("%dk", b.kbps))
	}
	return append(a, "-c:a", "aac", "-b:a", "128k", "-metadata", "creation_time=2024-05-01T10:00:00Z", "-f", "mp4", out)
}

// cached runs ffmpeg with args(tmp) unless the cache holds its output.
func cached(ctx context.Context, dir, name string, args func(out string) []string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "transfer v1 %q", args("out.mp4"))
	p := filepath.Join(dir, name+"-"+hex.EncodeToString(h.Sum(nil))[:12]+".mp4")
	if st, err := os.Stat(p); err == nil && st.Size() > 0 {
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache %s: %w", dir, err)
	}
	tmp := p + ".part.mp4"
	if out, err := exec.CommandContext(ctx, "ffmpeg", args(tmp)...).CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("generate %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("generate %s: %w", name, err)
	}
	return p, nil
}

// looped repeats src loops times without re-encoding (-stream_loop, -c copy).
func looped(ctx context.Context, dir, name, src string, loops int) (string, error) {
	return cached(ctx, dir, name, func(out string) []string {
		a := []string{"-hide_banner", "-nostdin", "-v", "error", "-y",
			"-stream_loop", strconv.Itoa(loops - 1), "-i", "file:" + src, "-map", "0", "-c", "copy"}
		if strings.Contains(name, "hevc") {
			a = append(a, "-tag:v", "hvc1")
		}
		// The source's name and size are part of the cache key.
		st, _ := os.Stat(src)
		a = append(a, "-metadata", fmt.Sprintf("comment=%s %d", filepath.Base(src), st.Size()))
		return append(a, "-f", "mp4", out)
	})
}

// makeCorpus generates (or finds in dir) the originals and results: the
// large pair is a 4 s clip of about 30 Mbit/s looped to about size bytes.
func makeCorpus(ctx context.Context, dir string, size int64) (corpus, error) {
	var c corpus
	bigBase := func(hevc bool) base {
		return base{name: "base", hevc: hevc, secs: 4, kbps: 30000, w: 640, h: 360}
	}
	smallBase := func(hevc bool) base {
		// 1 s, about 1 MiB with the audio (the encoders overshoot on noise).
		kbps := 5600
		if hevc {
			kbps = 6000
		}
		return base{name: "small", hevc: hevc, secs: 1, kbps: kbps, w: 640, h: 360}
	}
	gen := func(b base) (string, error) {
		name := b.name + "-h264"
		if b.hevc {
			name = b.name + "-hevc"
		}
		return cached(ctx, dir, name, b.args)
	}
	var err error
	if c.smallOrig, err = gen(smallBase(false)); err != nil {
		return c, err
	}
	if c.smallResult, err = gen(smallBase(true)); err != nil {
		return c, err
	}
	bo, err := gen(bigBase(false))
	if err != nil {
		return c, err
	}
	br, err := gen(bigBase(true))
	if err != nil {
		return c, err
	}
	st, err := os.Stat(br)
	if err != nil {
		return c, err
	}
	// As many loops as make the result about size; the original gets the
	// same number, so that both last as long.
	loops := max(1, int((size+st.Size()/2)/st.Size()))
	if c.bigOrig, err = looped(ctx, dir, fmt.Sprintf("big%d-h264", loops), bo, loops); err != nil {
		return c, err
	}
	if c.bigResult, err = looped(ctx, dir, fmt.Sprintf("big%d-hevc", loops), br, loops); err != nil {
		return c, err
	}
	return c, nil
}

// defaultCacheDir is where generated media is kept between runs (as the
// harness's clips, bench/clips.go).
func defaultCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "hevc-encoder", "bench", "transfer")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "hevc-encoder", "bench", "transfer")
	}
	return filepath.Join(os.TempDir(), "hevc-encoder-bench", "transfer")
}

// place puts src at dst (creating its directory) as a hard link when the
// file system allows, else as a copy. The services never modify an
// original: the downloader only unlinks it once its result is installed.
func place(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	os.Remove(dst)
	if err := os.Link(src, dst); err != nil {
		if err := copyFile(src, dst); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.Open(src)
	if err != nil {
		return err
	}
	defer b.Close()
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := f.ReadFrom(b); err != nil {
		f.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return f.Close()
}
