package media

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

// fast settings for tests where quality does not matter.
func fast() Settings {
	s := DefaultSettings()
	s.Preset = "ultrafast"
	return s
}

func probe(t *testing.T, path string) Info {
	t.Helper()
	info, err := Probe(context.Background(), path)
	if err != nil {
		t.Fatalf("probe %s: %v", path, err)
	}
	return info
}

// planFor makes a clip of opts at dir/in.mp4 and returns its path, its
// probe and its plan with the fast settings.
func planFor(t *testing.T, dir string, opts mediatest.ClipOpts) (string, Info, Plan) {
	t.Helper()
	mediatest.RequireFFmpeg(t)
	in := filepath.Join(dir, "in.mp4")
	mediatest.Clip(t, in, opts)
	info := probe(t, in)
	plan, err := NewPlan(info, fast())
	if err != nil {
		t.Fatal(err)
	}
	return in, info, plan
}

// encode runs Probe, NewPlan, Encode and Verify on a clip and returns the
// input info, the plan and the output info.
func encode(t *testing.T, in string) (Info, Plan, Info) {
	t.Helper()
	ctx := context.Background()
	info := probe(t, in)
	plan, err := NewPlan(info, fast())
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.mp4")
	if err := Encode(ctx, in, out, plan, nil); err != nil {
		t.Fatalf("encode: %v\nffmpeg %s", err, strings.Join(Command(in, out, plan), " "))
	}
	oi, err := Verify(ctx, info, out)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	sameAsLiveDecode(t, in, out, info, plan, oi)
	return info, plan, oi
}

// sameAsLiveDecode encodes in again with EncodeAndDecode and checks that
// it passes VerifyDecoded and that the MP4 is Encode's: the same packets
// in every stream, the same stream list and the same tags.
func sameAsLiveDecode(t *testing.T, in, out string, info Info, plan Plan, oi Info) {
	t.Helper()
	ctx := context.Background()
	live := filepath.Join(filepath.Dir(out), "live.mp4")
	d, err := EncodeAndDecode(ctx, in, live, plan, nil)
	if err != nil {
		t.Fatalf("encode and decode: %v", err)
	}
	li, err := VerifyDecoded(ctx, info, live, d)
	if err != nil {
		t.Fatalf("verify decoded: %v", err)
	}
	if v, _ := oi.MainVideo(); d.Frames != v.Frames && v.Frames > 0 {
		t.Errorf("live decode saw %d frames, the output has %d", d.Frames, v.Frames)
	}
	if a, b := streamHashes(t, out), streamHashes(t, live); a != b {
		t.Errorf("packets differ:\nEncode:          %s\nEncodeAndDecode: %s", a, b)
	}
	if len(li.Streams) != len(oi.Streams) {
		t.Errorf("streams: Encode %+v, EncodeAndDecode %+v", oi.Streams, li.Streams)
	}
	for k, v := range oi.Tags {
		if li.Tags[k] != v {
			t.Errorf("tag %s: Encode %q, EncodeAndDecode %q", k, v, li.Tags[k])
		}
	}
	if _, err := os.Stat(live + ".decode.hevc"); !os.IsNotExist(err) {
		t.Errorf("spool left behind: %v", err)
	}
}

func streamHashes(t *testing.T, file string) string {
	t.Helper()
	b, err := exec.Command("ffmpeg", "-v", "error", "-i", file, "-map", "0", "-c", "copy", "-f", "streamhash", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("streamhash %s: %v: %s", file, err, b)
	}
	return strings.TrimSpace(string(b))
}

func TestProbe(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	dir := t.TempDir()
	clip := filepath.Join(dir, "clip.mp4")
	mediatest.Clip(t, clip, mediatest.ClipOpts{Width: 160, Height: 120})
	info := probe(t, clip)
	v, ok := info.MainVideo()
	if !ok || v.Codec != "h264" || v.CodecTag != "avc1" || v.Width != 160 || v.Height != 120 || v.PixFmt != "yuv420p" {
		t.Errorf("main video = %+v", v)
	}
	if info.Count("audio") != 1 || info.Count("video") != 1 || info.IsHEVC() {
		t.Errorf("counts/hevc wrong: %+v", info)
	}
	if info.Duration < 1.9 || info.Duration > 2.2 || info.Size <= 0 || info.BitRate <= 0 || !strings.Contains(info.FormatName, "mp4") {
		t.Errorf("format = %+v", info)
	}

	hevc := filepath.Join(dir, "hevc.mp4")
	mediatest.Clip(t, hevc, mediatest.ClipOpts{Width: 160, Height: 120, HEVC: true, NoAudio: true})
	if hi := probe(t, hevc); !hi.IsHEVC() || hi.Count("audio") != 0 {
		t.Errorf("hevc clip: %+v", hi)
	}

	fsClip := filepath.Join(dir, "faststart.mp4")
	mediatest.Clip(t, fsClip, mediatest.ClipOpts{Width: 160, Height: 120, FastStart: true})
	audioOnly := filepath.Join(dir, "audio.m4a")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-i", clip, "-map", "0:a", "-c", "copy", audioOnly).CombinedOutput(); err != nil {
		t.Fatalf("audio-only: %v %s", err, out)
	}
	bad := map[string]func(string){
		"zero.mp4":   func(p string) { mediatest.ZeroBytes(t, p) },
		"text.mp4":   func(p string) { mediatest.TextFile(t, p) },
		"trunc.mp4":  func(p string) { mediatest.Truncated(t, clip, p) }, // moov at the end is lost
		"audio.m4a":  func(string) {},
		"-dash:.mp4": func(p string) { mediatest.TextFile(t, p) }, // odd names stay file names
	}
	for name, make := range bad {
		p := filepath.Join(dir, name)
		make(p)
		_, err := Probe(context.Background(), p)
		if !errors.Is(err, ErrBadInput) {
			t.Errorf("%s: err = %v, want ErrBadInput", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// A missing file or an unreachable URL is not the input's fault.
	for _, p := range []string{filepath.Join(dir, "missing.mp4"), "http://127.0.0.1:1/x.mp4"} {
		if _, err := Probe(context.Background(), p); err == nil || errors.Is(err, ErrBadInput) {
			t.Errorf("%s: err = %v, want a non-ErrBadInput error", p, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Probe(ctx, clip); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled probe: err = %v", err)
	}
}

func TestEncodeVerify(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	base := mediatest.ClipOpts{Width: 160, Height: 120}
	cases := []struct {
		name  string
		opts  func(*mediatest.ClipOpts)
		check func(t *testing.T, in Info, p Plan, out Info)
	}{
		{"plain", nil, func(t *testing.T, in Info, p Plan, out Info) {
			v, _ := out.MainVideo()
			if v.Profile != "Main" || v.PixFmt != "yuv420p" || p.TenBit || p.CopiedAudio != 1 || len(p.Dropped) != 0 {
				t.Errorf("video %+v plan %+v", v, p)
			}
			if out.Streams[1].Codec != "aac" {
				t.Errorf("audio %+v", out.Streams[1])
			}
		}},
		{"two audio tracks", func(o *mediatest.ClipOpts) { o.AudioTracks = 2 }, func(t *testing.T, in Info, p Plan, out Info) {
			if in.Count("audio") != 2 || out.Count("audio") != 2 || p.CopiedAudio != 2 {
				t.Errorf("audio in %d out %d plan %+v", in.Count("audio"), out.Count("audio"), p)
			}
		}},
		{"no audio", func(o *mediatest.ClipOpts) { o.NoAudio = true }, func(t *testing.T, in Info, p Plan, out Info) {
			if out.Count("audio") != 0 {
				t.Errorf("out %+v", out.Streams)
			}
		}},
		{"timecode track", func(o *mediatest.ClipOpts) { o.Timecode = true }, func(t *testing.T, in Info, p Plan, out Info) {
			if in.Count("data") != 1 || len(p.Dropped) != 1 || !strings.HasSuffix(p.Dropped[0], ": data tmcd") {
				t.Errorf("in %+v dropped %q", in.Streams, p.Dropped)
			}
			// ffmpeg 5.1's mp4 muxer writes a fresh tmcd track from the
			// video stream's timecode tag; that is allowed, not required.
			t.Logf("output streams: %+v", out.Streams)
		}},
		{"LPCM audio to AAC", func(o *mediatest.ClipOpts) { o.PCMAudio = true }, func(t *testing.T, in Info, p Plan, out Info) {
			if in.Streams[1].Codec != "pcm_s16le" || p.TranscodedAudio != 1 || p.CopiedAudio != 0 {
				t.Errorf("in %+v plan %+v", in.Streams[1], p)
			}
			if a := out.Streams[1]; a.Kind != "audio" || a.Codec != "aac" {
				t.Errorf("out audio %+v", a)
			}
		}},
		{"10-bit HLG", func(o *mediatest.ClipOpts) { o.TenBitHLG = true }, func(t *testing.T, in Info, p Plan, out Info) {
			v, _ := out.MainVideo()
			if !p.TenBit || v.Profile != "Main 10" || v.PixFmt != "yuv420p10le" ||
				v.ColorPrimaries != "bt2020" || v.ColorTransfer != "arib-std-b67" || v.ColorSpace != "bt2020nc" {
				t.Errorf("out video %+v", v)
			}
		}},
		{"rotation", func(o *mediatest.ClipOpts) { o.Rotate = 90 }, func(t *testing.T, in Info, p Plan, out Info) {
			iv, _ := in.MainVideo()
			ov, _ := out.MainVideo()
			// The display matrix is kept and the frames are not rotated, so
			// the output displays exactly as the input does.
			if iv.Rotation == 0 || ov.Rotation != iv.Rotation || ov.Width != iv.Width || ov.Height != iv.Height {
				t.Errorf("in %+v out %+v", iv, ov)
			}
		}},
		{"variable frame rate", func(o *mediatest.ClipOpts) { o.VFR = true }, func(t *testing.T, in Info, p Plan, out Info) {
			iv, _ := in.MainVideo()
			ov, _ := out.MainVideo()
			// 2 s at 30 fps with 10 of every 30 frames dropped: 40 frames,
			// not the 60 a constant-rate encode would fill in.
			if iv.Frames != 40 || ov.Frames != iv.Frames {
				t.Errorf("frames in %d out %d", iv.Frames, ov.Frames)
			}
		}},
		{"metadata kept", func(o *mediatest.ClipOpts) {
			o.CreationTime, o.Location = "2023-05-01T10:00:00Z", "+48.8584+002.2945/"
		}, func(t *testing.T, in Info, p Plan, out Info) {
			if ct := out.Tags["creation_time"]; !strings.HasPrefix(ct, "2023-05-01T10:00:00") {
				t.Errorf("creation_time = %q (tags %v)", ct, out.Tags)
			}
			if loc := out.Tags["location"]; loc != "+48.8584+002.2945/" {
				t.Errorf("location = %q (tags %v)", loc, out.Tags)
			}
			if loc := out.Tags[AppleLocationKey]; loc != "+48.8584+002.2945/" {
				t.Errorf("%s = %q (tags %v)", AppleLocationKey, loc, out.Tags)
			}
			if out.Tags["compatible_brands"] == in.Tags["compatible_brands"] && strings.Contains(in.Tags["compatible_brands"], "avc1") {
				t.Errorf("input brands copied as tags: %v", out.Tags)
			}
			t.Logf("input tags %v\noutput tags %v", in.Tags, out.Tags)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := base
			if c.opts != nil {
				c.opts(&o)
			}
			in := filepath.Join(t.TempDir(), "in.mp4")
			mediatest.Clip(t, in, o)
			info, plan, out := encode(t, in)
			if v, _ := out.MainVideo(); v.Codec != "hevc" || v.CodecTag != "hvc1" {
				t.Errorf("out video %+v", v)
			}
			c.check(t, info, plan, out)
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	in, info, plan := planFor(t, dir, mediatest.ClipOpts{Width: 160, Height: 120, Seconds: 3})
	out := filepath.Join(dir, "out.mp4")
	if err := Encode(ctx, in, out, plan, nil); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.mp4")
	if b, err := exec.Command("ffmpeg", "-v", "error", "-i", out, "-t", "1", "-map", "0", "-c", "copy", short).CombinedOutput(); err != nil {
		t.Fatalf("shorten: %v %s", err, b)
	}
	noAudio := filepath.Join(dir, "noaudio.mp4")
	if b, err := exec.Command("ffmpeg", "-v", "error", "-i", out, "-map", "0:v", "-c", "copy", noAudio).CombinedOutput(); err != nil {
		t.Fatalf("strip audio: %v %s", err, b)
	}
	truncated := filepath.Join(dir, "truncated.mp4")
	mediatest.Truncated(t, out, truncated) // faststart output: moov survives, samples do not
	text := filepath.Join(dir, "text.mp4")
	mediatest.TextFile(t, text)
	for name, p := range map[string]string{
		"shortened": short, "audio missing": noAudio, "not hevc (the input itself)": in,
		"truncated": truncated, "not a video": text,
	} {
		_, err := Verify(ctx, info, p)
		if !errors.Is(err, ErrVerify) || errors.Is(err, ErrBadInput) {
			t.Errorf("%s: err = %v, want ErrVerify only", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := Verify(ctx, info, out); err != nil {
		t.Errorf("good output: %v", err)
	}
}

func TestEncodeProgress(t *testing.T) {
	in, _, plan := planFor(t, t.TempDir(), mediatest.ClipOpts{Width: 160, Height: 120, Seconds: 3})
	var got []Progress
	out := filepath.Join(t.TempDir(), "out.mp4")
	if err := Encode(context.Background(), in, out, plan, func(p Progress) { got = append(got, p) }); err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		t.Fatal("progress callback never called")
	}
	last := got[len(got)-1]
	if last.Percent != 100 || last.OutTime < 2*time.Second || last.FPS <= 0 {
		t.Errorf("last progress = %+v (all %+v)", last, got)
	}
}

// encoders are the two ways to encode: Encode, and EncodeAndDecode with
// its decode result dropped.
var encoders = map[string]func(ctx context.Context, in, out string, p Plan, onProgress func(Progress)) error{
	"Encode": Encode,
	"EncodeAndDecode": func(ctx context.Context, in, out string, p Plan, onProgress func(Progress)) error {
		_, err := EncodeAndDecode(ctx, in, out, p, onProgress)
		return err
	},
}

func TestEncodeCancel(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.mp4")
	mediatest.Clip(t, in, mediatest.ClipOpts{Width: 160, Height: 120, Seconds: 20})
	plan, err := NewPlan(probe(t, in), fast())
	if err != nil {
		t.Fatal(err)
	}
	// -re reads the input at its own speed, so the encode takes ~20 s
	// and is certainly still running at the first progress report.
	plan.InputArgs = append(plan.InputArgs, "-re")
	for name, encode := range encoders {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, name+".mp4")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := 0
			err = encode(ctx, in, out, plan, func(Progress) { calls++; cancel() })
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if calls == 0 {
				t.Error("no progress before cancel")
			}
			left, _ := filepath.Glob(out + "*")
			if len(left) > 0 {
				t.Errorf("partial output left behind: %q", left)
			}
			// The encoders return after ffmpeg has exited: no process
			// still writes out (or the live decode's spool).
			procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
			for _, p := range procs {
				if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), out) {
					t.Errorf("ffmpeg still running: %s: %q", p, b)
				}
			}
		})
	}
}

func TestEncodeBadInput(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	dir := t.TempDir()
	clip := filepath.Join(dir, "clip.mp4")
	mediatest.Clip(t, clip, mediatest.ClipOpts{Width: 160, Height: 120, FastStart: true, Seconds: 3})
	plan, err := NewPlan(probe(t, clip), fast())
	if err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(dir, "text.mp4")
	mediatest.TextFile(t, text)
	trunc := filepath.Join(dir, "trunc.mp4")
	mediatest.Truncated(t, clip, trunc) // index intact, half the samples gone
	if _, err := Probe(context.Background(), trunc); err != nil {
		t.Fatalf("truncated faststart file should still probe: %v", err)
	}
	audioOnly := filepath.Join(dir, "audio.m4a")
	if b, err := exec.Command("ffmpeg", "-v", "error", "-i", clip, "-map", "0:a", "-c", "copy", audioOnly).CombinedOutput(); err != nil {
		t.Fatalf("audio-only: %v %s", err, b)
	}
	for enc, encode := range encoders {
		for name, p := range map[string]string{"text": text, "truncated": trunc, "no video": audioOnly} {
			out := filepath.Join(dir, enc+"-out-"+name+".mp4")
			err := encode(context.Background(), p, out, plan, nil)
			if !errors.Is(err, ErrBadInput) {
				t.Errorf("%s %s: err = %v, want ErrBadInput", enc, name, err)
			} else {
				t.Logf("%s %s: %v", enc, name, err)
			}
			if left, _ := filepath.Glob(out + "*"); len(left) > 0 {
				t.Errorf("%s %s: output left behind: %q", enc, name, left)
			}
		}
		missing := filepath.Join(dir, "missing.mp4")
		if err := encode(context.Background(), missing, filepath.Join(dir, "o.mp4"), plan, nil); err == nil || errors.Is(err, ErrBadInput) {
			t.Errorf("%s missing input: err = %v, want a non-ErrBadInput error", enc, err)
		}
	}
}
