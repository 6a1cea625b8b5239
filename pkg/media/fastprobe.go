package media

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mp4box"
)

// movFormat is ffprobe's format_name for every ISO BMFF / QuickTime file.
const movFormat = "mov,mp4,m4a,3gp,3g2,mj2"

// ProbeFast returns what Probe would for a local MP4 or QuickTime file, as
// far as the container says it: streams (kind, codec, tag, picture size,
// duration) and the duration, read from the file's boxes in microseconds
// instead of spawning ffprobe (tens of milliseconds, more than uploading a
// 1 MiB file). It is meant for classification (is it HEVC?) and for
// comparing stream counts and durations; fields that need a decoder's look
// at the bitstream (PixFmt, Profile, colour, Rotation, Frames) and the tags
// are left empty, so plans and full verification use Probe.
//
// Whatever the box reader does not fully understand — a URL, another
// container, a fragmented or damaged file, a codec it has no name for, no
// video — goes to Probe, which then gives its usual answer and errors.
func ProbeFast(ctx context.Context, input string) (Info, error) {
	if strings.Contains(input, "://") {
		return Probe(ctx, input)
	}
	info, err := ProbeBoxes(strings.TrimPrefix(input, "file:"))
	if err != nil {
		return Probe(ctx, input)
	}
	return info, nil
}

// videoCodecs and audioCodecs name sample entry codes the way ffprobe's
// codec_name does. A video code not listed makes ProbeBoxes fail (the
// caller falls back to ffprobe): the video codec is what decides about a
// file. An unknown audio code leaves the codec empty; the stream still
// counts.
var (
	videoCodecs = map[string]string{"avc1": "h264", "avc3": "h264", "hvc1": "hevc", "hev1": "hevc"}
	audioCodecs = map[string]string{
		"ac-3": "ac3", "ec-3": "eac3", "alac": "alac", "Opus": "opus", "fLaC": "flac",
		".mp3": "mp3", "sowt": "pcm_s16le", "twos": "pcm_s16be",
	}
	// handlerKinds maps track handlers to ffprobe's codec_type.
	handlerKinds = map[string]string{
		"vide": "video", "soun": "audio", "tmcd": "data", "meta": "data",
		"text": "subtitle", "sbtl": "subtitle", "subt": "subtitle",
	}
)

// ProbeBoxes reads a local file's MP4/QuickTime boxes (package mp4box)
// into an Info shaped like Probe's (see ProbeFast for what it leaves out).
// It fails for anything it cannot describe completely.
func ProbeBoxes(path string) (Info, error) {
	info := Info{Path: path, Tags: map[string]string{}}
	f, err := os.Open(path)
	if err != nil {
		return info, fmt.Errorf("probe %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return info, fmt.Errorf("probe %s: %w", path, err)
	}
	m, err := mp4box.Read(f, st.Size())
	if err != nil {
		return info, fmt.Errorf("probe %s: %w", path, err)
	}
	info.FormatName = movFormat
	info.Size = st.Size()
	info.Duration = m.Seconds()
	if info.Duration > 0 {
		info.BitRate = int64(float64(info.Size*8) / info.Duration)
	}
	for i, t := range m.Tracks {
		kind, ok := handlerKinds[t.Handler]
		if !ok {
			return info, fmt.Errorf("probe %s: track %d: handler %q", path, t.ID, t.Handler)
		}
		s := Stream{Index: i, Kind: kind, CodecTag: t.Format, Duration: t.Seconds(), BitRate: t.BitRate()}
		switch kind {
		case "video":
			if s.Codec = videoCodecs[t.Format]; s.Codec == "" {
				return info, fmt.Errorf("probe %s: track %d: video format %q", path, t.ID, t.Format)
			}
			s.Width, s.Height = t.Width, t.Height
		case "audio":
			s.Codec = audioCodecs[t.Format]
			if t.Format == "mp4a" {
				switch t.ObjectType {
				case 0x40, 0x66, 0x67, 0x68:
					s.Codec = "aac"
				case 0x69, 0x6b:
					s.Codec = "mp3"
				}
			}
		}
		info.Streams = append(info.Streams, s)
	}
	// The same conditions as Probe's: anything short of a plain, complete
	// video goes to ffprobe for the verdict.
	v, ok := info.MainVideo()
	switch {
	case !ok:
		return info, fmt.Errorf("probe %s: no video track", path)
	case v.Width <= 0 || v.Height <= 0:
		return info, fmt.Errorf("probe %s: video track without a picture size", path)
	case info.Duration <= 0:
		return info, fmt.Errorf("probe %s: no movie duration", path)
	}
	return info, nil
}
