package mediatest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

func TestClip(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	ctx := context.Background()
	cases := []struct {
		name  string
		o     mediatest.ClipOpts
		check func(t *testing.T, i media.Info)
	}{
		{"defaults", mediatest.ClipOpts{}, func(t *testing.T, i media.Info) {
			v, _ := i.MainVideo()
			if v.Codec != "h264" || v.Width != 320 || v.Height != 240 || i.Count("audio") != 1 || i.Duration < 1.9 || i.Duration > 2.2 {
				t.Errorf("%+v", i)
			}
		}},
		{"three tracks, size, length", mediatest.ClipOpts{AudioTracks: 3, Width: 96, Height: 64, Seconds: 1}, func(t *testing.T, i media.Info) {
			v, _ := i.MainVideo()
			if i.Count("audio") != 3 || v.Width != 96 || i.Duration > 1.2 {
				t.Errorf("%+v", i)
			}
		}},
		{"no audio", mediatest.ClipOpts{NoAudio: true, Width: 96, Height: 64}, func(t *testing.T, i media.Info) {
			if i.Count("audio") != 0 {
				t.Errorf("%+v", i.Streams)
			}
		}},
		{"LPCM", mediatest.ClipOpts{PCMAudio: true, Width: 96, Height: 64}, func(t *testing.T, i media.Info) {
			if i.Streams[1].Codec != "pcm_s16le" {
				t.Errorf("%+v", i.Streams)
			}
		}},
		{"HEVC HLG", mediatest.ClipOpts{HEVC: true, TenBitHLG: true, Width: 96, Height: 64}, func(t *testing.T, i media.Info) {
			v, _ := i.MainVideo()
			if !i.IsHEVC() || v.CodecTag != "hvc1" || v.PixFmt != "yuv420p10le" || v.ColorTransfer != "arib-std-b67" || v.ColorPrimaries != "bt2020" {
				t.Errorf("%+v", v)
			}
		}},
		{"H.264 HLG", mediatest.ClipOpts{TenBitHLG: true, Width: 96, Height: 64}, func(t *testing.T, i media.Info) {
			v, _ := i.MainVideo()
			if v.Codec != "h264" || v.Profile != "High 10" || v.PixFmt != "yuv420p10le" || v.ColorSpace != "bt2020nc" {
				t.Errorf("%+v", v)
			}
		}},
		{"rotate with timecode and tags (remux path)", mediatest.ClipOpts{Rotate: 90, Timecode: true, CreationTime: "2023-05-01T10:00:00Z",
			Location: "+48.8584+002.2945/", Width: 96, Height: 64}, func(t *testing.T, i media.Info) {
			v, _ := i.MainVideo()
			if v.Rotation == 0 || i.Count("data") != 1 || i.Tags["location"] != "+48.8584+002.2945/" || i.Tags["creation_time"] == "" {
				t.Errorf("%+v", i)
			}
		}},
		{"VFR", mediatest.ClipOpts{VFR: true, Width: 96, Height: 64}, func(t *testing.T, i media.Info) {
			if v, _ := i.MainVideo(); v.Frames != 40 {
				t.Errorf("frames = %d, want 40", v.Frames)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "clip.mp4")
			mediatest.Clip(t, p, c.o)
			i, err := media.Probe(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, i)
		})
	}
}

func TestBrokenFiles(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.mp4")
	mediatest.Clip(t, src, mediatest.ClipOpts{Width: 96, Height: 64})
	trunc, zero, text := filepath.Join(dir, "t.mp4"), filepath.Join(dir, "z.mp4"), filepath.Join(dir, "x.mp4")
	mediatest.Truncated(t, src, trunc)
	mediatest.ZeroBytes(t, zero)
	mediatest.TextFile(t, text)
	a, _ := os.Stat(src)
	b, _ := os.Stat(trunc)
	if b.Size() != a.Size()/2 {
		t.Errorf("truncated size %d of %d", b.Size(), a.Size())
	}
	for _, p := range []string{trunc, zero, text} {
		if _, err := media.Probe(context.Background(), p); !errors.Is(err, media.ErrBadInput) {
			t.Errorf("%s: %v", p, err)
		}
	}
}
