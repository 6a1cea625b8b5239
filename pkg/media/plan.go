package media

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	ffmpeg "github.com/u2takey/ffmpeg-go"
)

// Settings tune the x265 encode.
type Settings struct {
	CRF    int    // x265 constant rate factor, 0..51 (lower is better quality)
	Preset string // x265 preset: ultrafast … placebo
	// Threads is the x265 worker count: 0 lets x265 size its pool to the
	// machine (the host's CPUs, even in a container: see WithCPUs); N>0
	// sets pools=N and the frame threads for N workers (FrameThreads).
	Threads int
	// Tune holds the x265 parameters that come with the quality preset
	// (balanced: BalancedTune), applied before X265Params.
	Tune       string
	X265Params string // extra "k=v:k=v" x265 parameters, appended last (they win)
	// AudioBitrate is used for audio that MP4 cannot carry as-is and is
	// re-encoded to AAC; "" means "192k".
	AudioBitrate string
}

// BalancedTune is what the balanced preset adds to the seed's x265
// preset fast: three search settings of preset slow (more reference
// frames, finer sub-pixel search, more merge candidates). They pay for the
// second frame in flight that FrameThreads gives 2-3 CPUs, whose motion
// search may only reach the rows of the reference frame already encoded:
// with both, `make bench` measured every clip 0.5-1.4 % smaller than the
// seed's command at an SSIM as high or higher, encoded 1-31 % faster on
// 2 CPUs; frame-threads=2 alone was 0.2-0.4 % larger at an SSIM no higher.
const BalancedTune = "ref=4:subme=3:max-merge=3"

// SeedParams, as X265Params of the balanced preset, undo BalancedTune and
// FrameThreads (frame-threads=0 is x265's own choice): the seed's
// bitstream, bit for bit on a machine without a CPU quota.
const SeedParams = "frame-threads=0:ref=3:subme=2:max-merge=2"

// DefaultSettings is the balanced preset: the seed's CRF 26 and x265
// preset fast, plus BalancedTune.
func DefaultSettings() Settings {
	return Settings{CRF: 26, Preset: "fast", Tune: BalancedTune, AudioBitrate: "192k"}
}

// Preset returns the Settings of a named quality preset for users:
//
//	name       CRF  x265 preset  use
//	archive    22   slow         near-transparent, larger files, ~2-3x slower
//	balanced   26   fast+tune    the seed's default (DefaultSettings)
//	small      28   medium       smaller files, visible softening on fine detail
//
// Names are case-insensitive; "" means "balanced".
func Preset(name string) (Settings, error) {
	s := DefaultSettings()
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "archive":
		s.CRF, s.Preset, s.Tune = 22, "slow", ""
	case "balanced", "":
	case "small":
		s.CRF, s.Preset, s.Tune = 28, "medium", ""
	default:
		return Settings{}, fmt.Errorf("unknown quality preset %q (want archive, balanced or small)", name)
	}
	return s, nil
}

var x265Presets = map[string]bool{
	"ultrafast": true, "superfast": true, "veryfast": true, "faster": true, "fast": true,
	"medium": true, "slow": true, "slower": true, "veryslow": true, "placebo": true,
}

// Validate checks the settings before they reach ffmpeg.
func (s Settings) Validate() error {
	if s.CRF < 0 || s.CRF > 51 {
		return fmt.Errorf("x265 CRF must be 0..51, got %d", s.CRF)
	}
	if !x265Presets[s.Preset] {
		return fmt.Errorf("unknown x265 preset %q", s.Preset)
	}
	if s.Threads < 0 {
		return fmt.Errorf("x265 threads must be >= 0, got %d", s.Threads)
	}
	for _, p := range []string{s.Tune, s.X265Params} {
		if strings.ContainsAny(p, " \t\n") {
			return fmt.Errorf("x265 params %q must not contain spaces", p)
		}
	}
	if s.AudioBitrate != "" && !regexp.MustCompile(`^[0-9]+[kKM]?$`).MatchString(s.AudioBitrate) {
		return fmt.Errorf("audio bitrate %q is not like 192k", s.AudioBitrate)
	}
	return nil
}

// Plan is one encode, ready for Encode. The ffmpeg command Encode runs is
//
//	ffmpeg <runtime flags> InputArgs... -i <input> Args... <output>
//
// where the runtime flags are -hide_banner -nostdin -nostats -v error
// -progress pipe:1 -y. Args holds only output options (no input or output
// name), rendered by ffmpeg-go from its KwArgs (so options appear sorted by
// name; repeated options such as -map keep their order).
type Plan struct {
	InputArgs []string // options placed before -i (e.g. -noautorotate)
	Args      []string // output options placed between the input and the output
	// CopiedAudio and TranscodedAudio count the audio streams copied as-is
	// and re-encoded to AAC.
	CopiedAudio, TranscodedAudio int
	// Dropped names the input streams the output will not carry, e.g.
	// "stream 2: data tmcd".
	Dropped  []string
	TenBit   bool    // output is 10-bit main10 (10-bit or HLG/PQ input)
	Duration float64 // input duration in seconds, for progress percent/ETA
	// The main video's coded size, frame count (0 when the container does
	// not say) and frame rate: where EncodeAndDecode samples pictures.
	Width, Height int
	Frames        int64
	FrameRate     float64
}

// audioCopyable lists the audio codecs MP4 can hold as they are.
var audioCopyable = map[string]bool{
	"aac": true, "mp3": true, "ac3": true, "eac3": true, "alac": true, "opus": true, "flac": true,
}

var highBitDepth = regexp.MustCompile(`(1[0246](le|be)$|^p01[026])`)

// isTenBit reports whether a video stream needs a 10-bit encode: more than
// 8 bits per sample, or an HDR transfer (HLG, PQ).
func isTenBit(v Stream) bool {
	return highBitDepth.MatchString(v.PixFmt) || v.ColorTransfer == "arib-std-b67" || v.ColorTransfer == "smpte2084"
}

// Colour names x265 accepts; ffprobe uses the same spellings for these.
var (
	x265Prim = set("bt709", "bt470m", "bt470bg", "smpte170m", "smpte240m", "film", "bt2020",
		"smpte428", "smpte431", "smpte432")
	x265Transfer = set("bt709", "bt470m", "bt470bg", "smpte170m", "smpte240m", "linear", "log100",
		"log316", "iec61966-2-4", "bt1361e", "iec61966-2-1", "bt2020-10", "bt2020-12", "smpte2084",
		"smpte428", "arib-std-b67")
	x265Matrix = set("gbr", "bt709", "fcc", "bt470bg", "smpte170m", "smpte240m", "ycgco", "bt2020nc",
		"bt2020c", "smpte2085", "chroma-derived-nc", "chroma-derived-c", "ictcp")
)

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// NewPlan builds the encode for a probed input (DESIGN.md "Media"):
// libx265 with CRF/preset, hvc1 tag, the main video plus every audio stream
// mapped explicitly, audio copied when MP4 can hold it (else AAC), 10-bit
// and HDR kept as main10 with their colours, frame timing passed through,
// the display matrix kept (no auto-rotation), container metadata kept.
// It fails with ErrBadInput when there is no video stream.
func NewPlan(info Info, s Settings) (Plan, error) {
	if err := s.Validate(); err != nil {
		return Plan{}, fmt.Errorf("plan %s: %w", info.Path, err)
	}
	if s.AudioBitrate == "" {
		s.AudioBitrate = DefaultSettings().AudioBitrate
	}
	v, ok := info.MainVideo()
	if !ok {
		return Plan{}, fmt.Errorf("%w: %s: no video stream", ErrBadInput, info.Path)
	}
	p := Plan{TenBit: isTenBit(v), Duration: info.Duration,
		Width: v.Width, Height: v.Height, Frames: v.Frames, FrameRate: v.FrameRate}
	kw := ffmpeg.KwArgs{
		"f":            "mp4",
		"map":          []string{"0:V:0", "0:a?"},
		"c:v":          "libx265",
		"crf":          strconv.Itoa(s.CRF),
		"preset":       s.Preset,
		"tag:v":        "hvc1",
		"fps_mode":     "passthrough",
		"map_metadata": "0",
		"metadata":     metadata(info.Tags),
		"movflags":     "+faststart+use_metadata_tags",
	}
	x265 := []string{"log-level=error"}
	if p.TenBit {
		kw["pix_fmt"], kw["profile:v"] = "yuv420p10le", "main10"
	} else {
		kw["pix_fmt"], kw["profile:v"] = "yuv420p", "main"
	}
	if x265Prim[v.ColorPrimaries] {
		kw["color_primaries"] = v.ColorPrimaries
		x265 = append(x265, "colorprim="+v.ColorPrimaries)
	}
	if x265Transfer[v.ColorTransfer] {
		kw["color_trc"] = v.ColorTransfer
		x265 = append(x265, "transfer="+v.ColorTransfer)
	}
	if x265Matrix[v.ColorSpace] {
		kw["colorspace"] = v.ColorSpace
		x265 = append(x265, "colormatrix="+v.ColorSpace)
	}
	if s.Threads > 0 {
		x265 = append(x265, fmt.Sprintf("pools=%d", s.Threads))
		if n := FrameThreads(s.Threads); n > 0 {
			x265 = append(x265, fmt.Sprintf("frame-threads=%d", n))
		}
	}
	for _, p := range []string{s.Tune, s.X265Params} {
		if p = strings.Trim(p, ":"); p != "" {
			x265 = append(x265, p)
		}
	}
	kw["x265-params"] = strings.Join(x265, ":")

	seenVideo := false
	audio := 0
	for _, st := range info.Streams {
		switch {
		case st.Kind == "video" && !st.AttachedPic && !seenVideo:
			seenVideo = true
		case st.Kind == "audio":
			if audioCopyable[st.Codec] {
				kw[fmt.Sprintf("c:a:%d", audio)] = "copy"
				p.CopiedAudio++
				if st.Codec == "flac" {
					kw["strict"] = "experimental" // ffmpeg 5.1: "flac in MP4 support is experimental"
				}
			} else {
				kw[fmt.Sprintf("c:a:%d", audio)] = "aac"
				kw[fmt.Sprintf("b:a:%d", audio)] = s.AudioBitrate
				p.TranscodedAudio++
			}
			audio++
		default:
			p.Dropped = append(p.Dropped, describe(st))
		}
	}
	// Keep the display matrix as it is: the frames are not rotated, so the
	// output's matrix (copied by ffmpeg) displays them as the input did.
	p.InputArgs = []string{"-noautorotate"}
	p.Args = ffmpeg.ConvertKwargsToCmdLineArgs(kw)
	return p, nil
}

// AppleLocationKey is the QuickTime metadata key Apple Photos reads the
// recording place from (ISO 6709, e.g. "+48.8584+002.2945+035.000/").
const AppleLocationKey = "com.apple.quicktime.location.ISO6709"

var iso6709 = regexp.MustCompile(`^[+-][0-9]+(\.[0-9]+)?[+-][0-9]+(\.[0-9]+)?([+-][0-9]+(\.[0-9]+)?)?(CRS[A-Z0-9_]+)?/?$`)

// metadata returns the -metadata edits on top of -map_metadata 0:
//   - the container brands are cleared: use_metadata_tags would otherwise
//     store the input's major_brand/compatible_brands as bogus mdta keys
//     (the muxer writes the real ftyp anyway);
//   - a plain "location" (Android's ©xyz, 3GPP loci) is also written under
//     the Apple key, which is what Apple Photos reads from MP4/MOV.
func metadata(tags map[string]string) []string {
	m := []string{"major_brand=", "minor_version=", "compatible_brands="}
	if loc := strings.TrimSpace(tags["location"]); iso6709.MatchString(loc) && tags[AppleLocationKey] == "" {
		m = append(m, AppleLocationKey+"="+loc)
	}
	return m
}

// describe names a dropped stream for the job's record.
func describe(st Stream) string {
	name := st.Codec
	if name == "" {
		name = st.CodecTag
	}
	if name == "" {
		name = "unknown"
	}
	d := fmt.Sprintf("stream %d: %s %s", st.Index, st.Kind, name)
	switch {
	case st.Kind == "video" && st.AttachedPic:
		d += " (attached picture)"
	case st.Kind == "video":
		d += " (extra video)"
	}
	return d
}
