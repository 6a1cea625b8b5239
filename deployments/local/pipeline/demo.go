package pipeline

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// DemoClip describes one generated demo video.
type DemoClip struct {
	Rel  string
	Args []string // ffmpeg arguments between the inputs and the output
	In   []string // ffmpeg input arguments
}

// DemoClips are short lavfi clips covering what phones produce: metadata
// with a location, two audio tracks, a timecode track, an odd file name.
func DemoClips() []DemoClip {
	v := func(src string) []string {
		return []string{"-f", "lavfi", "-i", src + "=size=640x360:rate=30:duration=3"}
	}
	a := func(freq int) []string {
		return []string{"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:sample_rate=48000:duration=3", freq)}
	}
	meta := []string{"-metadata", "creation_time=2023-05-01T10:00:00Z", "-metadata", "location=+48.8584+002.2945/", "-movflags", "+use_metadata_tags"}
	h264 := []string{"-c:v", "libx264", "-preset", "veryfast", "-crf", "12", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"}
	return []DemoClip{
		{Rel: "Smartphones/alice/VID_20230501_100000.mp4", In: append(v("testsrc2"), a(440)...), Args: append(append([]string{}, h264...), meta...)},
		{Rel: "Smartphones/alice/Holiday 2023/Beach #1 + sunset é.mp4", In: append(v("testsrc"), a(660)...), Args: append(append([]string{}, h264...), meta...)},
		{Rel: "Smartphones/bob/two audio tracks.mp4", In: append(append(v("testsrc2"), a(440)...), a(880)...),
			Args: append([]string{"-map", "0:v", "-map", "1:a", "-map", "2:a"}, append(append([]string{}, h264...), meta...)...)},
		{Rel: "Smartphones/bob/timecode.MP4", In: append(v("rgbtestsrc"), a(330)...), Args: append(append([]string{"-timecode", "01:00:00:00"}, h264...), meta...)},
	}
}

// MakeDemo writes the demo clips into dir with ffmpeg; dir appears only
// once every clip is made.
func MakeDemo(ctx context.Context, dir string) error {
	tmp := dir + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	for _, c := range DemoClips() {
		out := filepath.Join(tmp, filepath.FromSlash(c.Rel))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		args := append([]string{"-nostdin", "-v", "error", "-y"}, c.In...)
		args = append(append(args, c.Args...), out)
		if b, err := exec.CommandContext(ctx, "ffmpeg", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("generate demo clip %s: %w: %s", c.Rel, err, strings.TrimSpace(string(b)))
		}
	}
	return os.Rename(tmp, dir)
}
