package media

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// pair reports whether args contains flag immediately followed by value.
func pair(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}

func h264(idx int) Stream {
	return Stream{Index: idx, Kind: "video", Codec: "h264", CodecTag: "avc1", PixFmt: "yuv420p", Width: 1920, Height: 1080}
}

func audio(idx int, codec string) Stream {
	return Stream{Index: idx, Kind: "audio", Codec: codec}
}

func TestNewPlan(t *testing.T) {
	hlg := h264(0)
	hlg.PixFmt, hlg.ColorPrimaries, hlg.ColorTransfer, hlg.ColorSpace = "yuv420p10le", "bt2020", "arib-std-b67", "bt2020nc"
	pq8 := h264(0) // HDR transfer on an 8-bit stream still goes 10-bit
	pq8.ColorPrimaries, pq8.ColorTransfer, pq8.ColorSpace = "bt2020", "smpte2084", "bt2020nc"
	bt709 := h264(0)
	bt709.ColorPrimaries, bt709.ColorTransfer, bt709.ColorSpace = "bt709", "bt709", "bt709"
	odd := h264(0)
	odd.ColorPrimaries, odd.ColorTransfer, odd.ColorSpace = "unknown", "reserved", ""
	cover := Stream{Index: 0, Kind: "video", Codec: "mjpeg", AttachedPic: true, Width: 600, Height: 600}
	tmcd := Stream{Index: 2, Kind: "data", CodecTag: "tmcd"}

	cases := []struct {
		name          string
		streams       []Stream
		settings      func(*Settings)
		copied, trans int
		dropped       []string
		tenBit        bool
		want          [][2]string // flag/value pairs that must appear
		wantX265      []string    // substrings of -x265-params
		notX265       []string
		absent        []string // flags that must not appear
	}{
		{name: "plain h264 aac", streams: []Stream{h264(0), audio(1, "aac")}, copied: 1,
			want:   [][2]string{{"-c:v", "libx265"}, {"-crf", "26"}, {"-preset", "fast"}, {"-pix_fmt", "yuv420p"}, {"-profile:v", "main"}, {"-c:a:0", "copy"}},
			absent: []string{"-color_primaries", "-strict", "-b:a:0"}},
		{name: "no audio", streams: []Stream{h264(0)}},
		{name: "two audio tracks, one LPCM", streams: []Stream{h264(0), audio(1, "aac"), audio(2, "pcm_s16le")}, copied: 1, trans: 1,
			want: [][2]string{{"-c:a:0", "copy"}, {"-c:a:1", "aac"}, {"-b:a:1", "192k"}}},
		{name: "every copyable codec", streams: []Stream{h264(0), audio(1, "aac"), audio(2, "mp3"), audio(3, "ac3"), audio(4, "eac3"), audio(5, "alac"), audio(6, "opus"), audio(7, "flac")},
			copied: 7, want: [][2]string{{"-c:a:6", "copy"}, {"-strict", "experimental"}}},
		{name: "amr and vorbis to aac", streams: []Stream{h264(0), audio(1, "amr_nb"), audio(2, "vorbis")}, trans: 2,
			settings: func(s *Settings) { s.AudioBitrate = "128k" },
			want:     [][2]string{{"-c:a:0", "aac"}, {"-b:a:0", "128k"}, {"-c:a:1", "aac"}}},
		{name: "timecode track dropped", streams: []Stream{h264(0), audio(1, "aac"), tmcd}, copied: 1,
			dropped: []string{"stream 2: data tmcd"}},
		{name: "cover art, subtitles, extra video dropped",
			streams: []Stream{cover, h264(1), audio(2, "aac"), {Index: 3, Kind: "subtitle", Codec: "mov_text"}, h264(4), {Index: 5, Kind: "data", Codec: "bin_data", CodecTag: "mebx"}},
			copied:  1,
			dropped: []string{"stream 0: video mjpeg (attached picture)", "stream 3: subtitle mov_text", "stream 4: video h264 (extra video)", "stream 5: data bin_data"}},
		{name: "10-bit HLG", streams: []Stream{hlg, audio(1, "aac")}, copied: 1, tenBit: true,
			want:     [][2]string{{"-pix_fmt", "yuv420p10le"}, {"-profile:v", "main10"}, {"-color_primaries", "bt2020"}, {"-color_trc", "arib-std-b67"}, {"-colorspace", "bt2020nc"}},
			wantX265: []string{"colorprim=bt2020", "transfer=arib-std-b67", "colormatrix=bt2020nc"}},
		{name: "8-bit PQ goes 10-bit", streams: []Stream{pq8}, tenBit: true,
			want: [][2]string{{"-pix_fmt", "yuv420p10le"}, {"-color_trc", "smpte2084"}}},
		{name: "8-bit bt709 keeps its tags", streams: []Stream{bt709},
			want: [][2]string{{"-pix_fmt", "yuv420p"}, {"-color_primaries", "bt709"}}, wantX265: []string{"colormatrix=bt709"}},
		{name: "unknown colours not passed", streams: []Stream{odd}, absent: []string{"-color_primaries", "-color_trc", "-colorspace"},
			notX265: []string{"colorprim", "transfer", "colormatrix"}},
		{name: "threads and extra params", streams: []Stream{h264(0)},
			settings: func(s *Settings) { s.Threads, s.X265Params, s.CRF, s.Preset, s.Tune = 4, "aq-mode=3", 22, "slow", "" },
			want:     [][2]string{{"-crf", "22"}, {"-preset", "slow"}},
			wantX265: []string{"pools=4:aq-mode=3", "log-level=error"}, notX265: []string{"frame-threads", "ref="}},
		{name: "balanced on 2 CPUs: a second frame and the tune, user params last", streams: []Stream{h264(0)},
			settings: func(s *Settings) { s.Threads, s.X265Params = 2, "frame-threads=1" },
			wantX265: []string{"pools=2:frame-threads=2:" + BalancedTune + ":frame-threads=1"}},
		{name: "x265's own frame threads from 4 CPUs", streams: []Stream{h264(0)},
			settings: func(s *Settings) { s.Threads = 8 },
			wantX265: []string{"pools=8:" + BalancedTune}, notX265: []string{"frame-threads"}},
		{name: "hevc input still plans", streams: []Stream{{Index: 0, Kind: "video", Codec: "hevc", CodecTag: "hvc1", PixFmt: "yuv420p", Width: 64, Height: 64}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := DefaultSettings()
			if c.settings != nil {
				c.settings(&s)
			}
			p, err := NewPlan(Info{Path: "in.mp4", Duration: 12.5, Streams: c.streams}, s)
			if err != nil {
				t.Fatal(err)
			}
			a := p.Args
			// Always: explicit mapping (never a bare -map 0), hvc1, metadata, VFR, faststart.
			for _, w := range [][2]string{{"-map", "0:V:0"}, {"-map", "0:a?"}, {"-tag:v", "hvc1"}, {"-map_metadata", "0"},
				{"-movflags", "+faststart+use_metadata_tags"}, {"-fps_mode", "passthrough"}, {"-f", "mp4"}, {"-c:v", "libx265"}} {
				if !pair(a, w[0], w[1]) {
					t.Errorf("missing %s %s in %q", w[0], w[1], a)
				}
			}
			if pair(a, "-map", "0") {
				t.Errorf("bare -map 0 in %q", a)
			}
			if i := slices.Index(a, "-map"); i < 0 || a[i+1] != "0:V:0" || a[i+2] != "-map" || a[i+3] != "0:a?" {
				t.Errorf("want -map 0:V:0 -map 0:a? in that order: %q", a)
			}
			if !slices.Equal(p.InputArgs, []string{"-noautorotate"}) {
				t.Errorf("InputArgs = %q", p.InputArgs)
			}
			for _, w := range c.want {
				if !pair(a, w[0], w[1]) {
					t.Errorf("missing %s %s in %q", w[0], w[1], a)
				}
			}
			for _, f := range c.absent {
				if slices.Contains(a, f) {
					t.Errorf("unexpected %s in %q", f, a)
				}
			}
			x265 := a[slices.Index(a, "-x265-params")+1]
			for _, w := range c.wantX265 {
				if !strings.Contains(x265, w) {
					t.Errorf("x265-params %q lacks %q", x265, w)
				}
			}
			for _, w := range c.notX265 {
				if strings.Contains(x265, w) {
					t.Errorf("x265-params %q has %q", x265, w)
				}
			}
			if p.CopiedAudio != c.copied || p.TranscodedAudio != c.trans {
				t.Errorf("copied/transcoded = %d/%d, want %d/%d", p.CopiedAudio, p.TranscodedAudio, c.copied, c.trans)
			}
			if !slices.Equal(p.Dropped, c.dropped) {
				t.Errorf("Dropped = %q, want %q", p.Dropped, c.dropped)
			}
			if p.TenBit != c.tenBit {
				t.Errorf("TenBit = %v, want %v", p.TenBit, c.tenBit)
			}
			if p.Duration != 12.5 {
				t.Errorf("Duration = %v", p.Duration)
			}
		})
	}
}

func TestPlanMetadata(t *testing.T) {
	loc := "+48.8584+002.2945/"
	for _, c := range []struct {
		tags  map[string]string
		apple string // expected -metadata com.apple...=value, "" for none
	}{
		{nil, ""},
		{map[string]string{"location": loc}, loc},
		{map[string]string{"location": "+48.8584+002.2945+035.000/"}, "+48.8584+002.2945+035.000/"},
		{map[string]string{"location": loc, AppleLocationKey: "+1+2/"}, ""}, // already there: copied by -map_metadata
		{map[string]string{"location": "Paris"}, ""},
	} {
		p, err := NewPlan(Info{Path: "in.mp4", Streams: []Stream{h264(0)}, Tags: c.tags}, DefaultSettings())
		if err != nil {
			t.Fatal(err)
		}
		for _, clear := range []string{"major_brand=", "minor_version=", "compatible_brands="} {
			if !pair(p.Args, "-metadata", clear) {
				t.Errorf("%v: missing -metadata %s in %q", c.tags, clear, p.Args)
			}
		}
		has := slices.ContainsFunc(p.Args, func(a string) bool { return strings.HasPrefix(a, AppleLocationKey+"=") })
		if c.apple == "" && has || c.apple != "" && !pair(p.Args, "-metadata", AppleLocationKey+"="+c.apple) {
			t.Errorf("%v: args %q, want Apple location %q", c.tags, p.Args, c.apple)
		}
	}
}

func TestNewPlanErrors(t *testing.T) {
	_, err := NewPlan(Info{Path: "a.m4a", Streams: []Stream{audio(0, "aac")}}, DefaultSettings())
	if !errors.Is(err, ErrBadInput) {
		t.Errorf("audio only: err = %v, want ErrBadInput", err)
	}
	_, err = NewPlan(Info{Path: "c.mp4", Streams: []Stream{{Kind: "video", Codec: "mjpeg", AttachedPic: true}}}, DefaultSettings())
	if !errors.Is(err, ErrBadInput) {
		t.Errorf("cover only: err = %v, want ErrBadInput", err)
	}
	good := Info{Path: "v.mp4", Streams: []Stream{h264(0)}}
	for name, mod := range map[string]func(*Settings){
		"crf":     func(s *Settings) { s.CRF = 52 },
		"preset":  func(s *Settings) { s.Preset = "quick" },
		"threads": func(s *Settings) { s.Threads = -1 },
		"params":  func(s *Settings) { s.X265Params = "a=1 b=2" },
		"bitrate": func(s *Settings) { s.AudioBitrate = "lots" },
	} {
		s := DefaultSettings()
		mod(&s)
		if _, err := NewPlan(good, s); err == nil || errors.Is(err, ErrBadInput) {
			t.Errorf("%s: err = %v, want a settings error", name, err)
		}
	}
}

func TestPreset(t *testing.T) {
	for name, want := range map[string]Settings{
		"archive":  {CRF: 22, Preset: "slow", AudioBitrate: "192k"},
		"balanced": {CRF: 26, Preset: "fast", Tune: BalancedTune, AudioBitrate: "192k"},
		"":         DefaultSettings(),
		"Small":    {CRF: 28, Preset: "medium", AudioBitrate: "192k"},
	} {
		got, err := Preset(name)
		if err != nil || got != want {
			t.Errorf("Preset(%q) = %+v, %v; want %+v", name, got, err, want)
		}
	}
	if d := DefaultSettings(); d.CRF != 26 || d.Preset != "fast" || d.Threads != 0 {
		t.Errorf("DefaultSettings = %+v, want the seed's crf 26 fast", d)
	}
	if _, err := Preset("tiny"); err == nil {
		t.Error("Preset(tiny): want error")
	}
}

func TestReadProgress(t *testing.T) {
	in := "frame=10\nfps=20.5\nout_time_us=1000000\nspeed=2x\nprogress=continue\n" +
		"frame=20\nfps=N/A\nout_time_us=N/A\nspeed=N/A\nprogress=continue\n" +
		"frame=40\nfps=21\nout_time_us=3000000\nspeed=1.5x\nprogress=end\n"
	var got []Progress
	readProgress(strings.NewReader(in), 4, func(p Progress) { got = append(got, p) })
	if len(got) != 3 {
		t.Fatalf("got %d reports: %+v", len(got), got)
	}
	if g := got[0]; g.Percent != 25 || g.FPS != 20.5 || g.Speed != 2 || g.ETA.Seconds() != 1.5 || g.OutTime.Seconds() != 1 {
		t.Errorf("first = %+v", g)
	}
	if g := got[2]; g.Percent != 100 || g.ETA != 0 {
		t.Errorf("last = %+v", g)
	}
}
