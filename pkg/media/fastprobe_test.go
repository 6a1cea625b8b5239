package media

import (
	"context"
	"crypto/rand"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mp4box"
)

// TestProbeBoxesMatchesFFprobe: for the kinds of files phones write, the
// box reader answers what ffprobe answers (streams, kinds, codecs, tags,
// picture size, duration).
func TestProbeBoxesMatchesFFprobe(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		o    mediatest.ClipOpts
	}{
		{"h264 moov at end", mediatest.ClipOpts{}},
		{"faststart", mediatest.ClipOpts{FastStart: true}},
		{"hevc", mediatest.ClipOpts{HEVC: true}},
		{"10-bit h264 hlg", mediatest.ClipOpts{TenBitHLG: true}},
		{"10-bit hevc hlg", mediatest.ClipOpts{TenBitHLG: true, HEVC: true}},
		{"two audio tracks", mediatest.ClipOpts{AudioTracks: 2}},
		{"no audio", mediatest.ClipOpts{NoAudio: true}},
		{"tmcd data track", mediatest.ClipOpts{Timecode: true}},
		{"lpcm in mov", mediatest.ClipOpts{PCMAudio: true}},
		{"rotated", mediatest.ClipOpts{Rotate: 90}},
		{"vfr", mediatest.ClipOpts{VFR: true, Seconds: 3}},
		{"tags", mediatest.ClipOpts{CreationTime: "2024-05-01T10:00:00Z", Location: "+48.8584+002.2945/"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, filepath.Base(t.Name())+".mp4")
			mediatest.Clip(t, p, c.o)
			want := probe(t, p)
			got, err := ProbeBoxes(p)
			if err != nil {
				t.Fatalf("ProbeBoxes: %v", err)
			}
			sameShape(t, got, want)
			fast, err := ProbeFast(context.Background(), p)
			if err != nil {
				t.Fatalf("ProbeFast: %v", err)
			}
			if fast.IsHEVC() != c.o.HEVC || fast.IsHEVC() != want.IsHEVC() {
				t.Errorf("IsHEVC %v, ffprobe %v", fast.IsHEVC(), want.IsHEVC())
			}
		})
	}
}

// sameShape compares what ProbeBoxes promises with ffprobe's answer.
func sameShape(t *testing.T, got, want Info) {
	t.Helper()
	if got.FormatName != want.FormatName {
		t.Errorf("format %q, ffprobe %q", got.FormatName, want.FormatName)
	}
	// Container durations are exact fractions; ffprobe prints microseconds.
	if d := math.Abs(got.Duration - want.Duration); d > 0.001 {
		t.Errorf("duration %.6f, ffprobe %.6f", got.Duration, want.Duration)
	}
	if len(got.Streams) != len(want.Streams) {
		t.Fatalf("%d streams %+v, ffprobe %d %+v", len(got.Streams), got.Streams, len(want.Streams), want.Streams)
	}
	for i, g := range got.Streams {
		w := want.Streams[i]
		if g.Kind != w.Kind || g.CodecTag != w.CodecTag {
			t.Errorf("stream %d: %s/%s, ffprobe %s/%s", i, g.Kind, g.CodecTag, w.Kind, w.CodecTag)
		}
		if g.Codec != "" && g.Codec != w.Codec {
			t.Errorf("stream %d: codec %s, ffprobe %s", i, g.Codec, w.Codec)
		}
		if g.Kind == "video" && (g.Codec == "" || g.Width != w.Width || g.Height != w.Height) {
			t.Errorf("stream %d: video %s %dx%d, ffprobe %s %dx%d", i, g.Codec, g.Width, g.Height, w.Codec, w.Width, w.Height)
		}
		// ffprobe's stream bit_rate is the same sum of sample sizes over the
		// track's duration (it rounds; an exact match is not expected).
		if w.BitRate > 0 && math.Abs(float64(g.BitRate-w.BitRate)) > 0.01*float64(w.BitRate)+8 {
			t.Errorf("stream %d (%s): bit rate %d, ffprobe %d", i, g.Kind, g.BitRate, w.BitRate)
		}
		if g.Kind == "audio" && w.Codec == "aac" && g.Codec != "aac" {
			t.Errorf("stream %d: AAC not recognised (codec %q)", i, g.Codec)
		}
	}
	for _, k := range []string{"video", "audio", "data"} {
		if got.Count(k) != want.Count(k) {
			t.Errorf("%d %s streams, ffprobe %d", got.Count(k), k, want.Count(k))
		}
	}
}

// TestProbeFastFallsBack: what the box reader cannot describe goes to
// ffprobe, which gives its usual answer: fragmented files probe; broken
// ones are ErrBadInput as with Probe.
func TestProbeFastFallsBack(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.mp4")
	mediatest.Clip(t, src, mediatest.ClipOpts{})

	frag := filepath.Join(dir, "frag.mp4")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-v", "error", "-i", src, "-c", "copy",
		"-movflags", "frag_keyframe+empty_moov", frag).CombinedOutput(); err != nil {
		t.Fatalf("fragment: %v: %s", err, out)
	}
	if _, err := ProbeBoxes(frag); !errors.Is(err, mp4box.ErrUnsupported) {
		t.Errorf("fragmented: ProbeBoxes error %v, want ErrUnsupported", err)
	}
	got, err := ProbeFast(ctx, frag)
	if err != nil {
		t.Fatalf("fragmented: ProbeFast: %v", err)
	}
	sameShape(t, got, probe(t, frag))

	garbage := filepath.Join(dir, "garbage.mp4")
	b := make([]byte, 64<<10)
	rand.Read(b)
	if err := os.WriteFile(garbage, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// The random bytes could spell a valid header only with a negligible
	// probability; the zeroed file is a box of size 0 with type "\0\0\0\0".
	zeroed := filepath.Join(dir, "zeroed.mp4")
	if err := os.WriteFile(zeroed, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.mp4") // moov at the end: cut off
	mediatest.Truncated(t, src, truncated)
	empty := filepath.Join(dir, "empty.mp4")
	mediatest.ZeroBytes(t, empty)
	text := filepath.Join(dir, "text.mp4")
	mediatest.TextFile(t, text)
	for _, p := range []string{garbage, zeroed, truncated, empty, text} {
		if _, err := ProbeBoxes(p); err == nil {
			t.Errorf("%s: ProbeBoxes succeeded", filepath.Base(p))
		}
		_, err := ProbeFast(ctx, p)
		if _, perr := Probe(ctx, p); !errors.Is(err, ErrBadInput) || !errors.Is(perr, ErrBadInput) {
			t.Errorf("%s: ProbeFast error %v, Probe error %v; want ErrBadInput from both", filepath.Base(p), err, perr)
		}
	}
	if _, err := ProbeFast(ctx, filepath.Join(dir, "missing.mp4")); err == nil || errors.Is(err, ErrBadInput) {
		t.Errorf("missing file: %v, want an error that is not ErrBadInput", err)
	}
}

// TestProbeBoxesTruncatedFaststart: a file cut short after its movie box
// still describes itself, as ffprobe says too.
func TestProbeBoxesTruncatedFaststart(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.mp4")
	mediatest.Clip(t, src, mediatest.ClipOpts{FastStart: true})
	cut := filepath.Join(dir, "cut.mp4")
	mediatest.Truncated(t, src, cut)
	want, err := Probe(context.Background(), cut)
	if err != nil {
		t.Fatalf("ffprobe should read a truncated faststart file (its index survives): %v", err)
	}
	got, err := ProbeBoxes(cut)
	if err != nil {
		t.Fatalf("ProbeBoxes: %v", err)
	}
	sameShape(t, got, want)
}
