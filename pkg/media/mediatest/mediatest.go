// Package mediatest makes small test videos with ffmpeg's lavfi sources
// (testsrc2 video, sine audio) for tests that need real media files, plus
// broken inputs (zero bytes, truncated, text named .mp4).
package mediatest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RequireFFmpeg fails the test when ffmpeg or ffprobe is missing and
// CI=true, and skips it otherwise. It is the only skip our tests allow.
func RequireFFmpeg(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required (CI=true): %v", tool, err)
			}
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

// ClipOpts describe a generated clip. The zero value is a 2 s, 320x240,
// 30 fps H.264 MP4 with one AAC track.
type ClipOpts struct {
	Seconds       float64 // default 2
	Width, Height int     // default 320x240
	FPS           int     // default 30
	AudioTracks   int     // default 1 (see NoAudio)
	NoAudio       bool    // no audio track at all
	// PCMAudio makes the audio pcm_s16le. MP4 cannot hold LPCM in ffmpeg
	// 5.1 ("Could not find tag for codec pcm_s16le"), so the file is then
	// QuickTime (.mov) content, whatever path's extension says.
	PCMAudio  bool
	Timecode  bool // add a tmcd timecode track (-timecode 01:00:00:00)
	TenBitHLG bool // 10-bit (H.264 High 10, or HEVC Main 10) tagged bt2020 / arib-std-b67 (HLG)
	HEVC      bool // the video is already HEVC (libx265, tagged hvc1)
	// CreationTime and Location set the container tags creation_time and
	// location (ISO 6709, e.g. "+48.8584+002.2945/"), written with
	// -movflags use_metadata_tags.
	CreationTime, Location string
	// Rotate sets the video's display matrix (degrees, e.g. 90). ffmpeg 5.1
	// only applies -metadata:s:v rotate= when stream-copying, so the clip is
	// remuxed in a second step.
	Rotate    int
	VFR       bool // drop frames 10-19 of every 30: variable frame rate
	FastStart bool // moov before mdat (then a truncated copy still probes)
}

// Clip writes a generated clip to path, failing the test on error.
func Clip(t testing.TB, path string, o ClipOpts) {
	t.Helper()
	RequireFFmpeg(t)
	if o.Seconds <= 0 {
		o.Seconds = 2
	}
	if o.Width <= 0 || o.Height <= 0 {
		o.Width, o.Height = 320, 240
	}
	if o.FPS <= 0 {
		o.FPS = 30
	}
	tracks := o.AudioTracks
	if tracks <= 0 {
		tracks = 1
	}
	if o.NoAudio {
		tracks = 0
	}
	dur := fmt.Sprintf("%g", o.Seconds)
	args := []string{"-hide_banner", "-nostdin", "-v", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d:duration=%s", o.Width, o.Height, o.FPS, dur)}
	for k := 0; k < tracks; k++ {
		args = append(args, "-f", "lavfi", "-i",
			fmt.Sprintf("sine=frequency=%d:sample_rate=48000:duration=%s", 440+110*k, dur))
	}
	args = append(args, "-map", "0:v")
	for k := 0; k < tracks; k++ {
		args = append(args, "-map", fmt.Sprintf("%d:a", k+1))
	}
	if o.VFR {
		args = append(args, "-vf", "select='not(between(mod(n,30),10,19))'", "-fps_mode", "passthrough")
	}
	pixFmt := "yuv420p"
	if o.TenBitHLG {
		pixFmt = "yuv420p10le"
		args = append(args, "-color_primaries", "bt2020", "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc")
	}
	if o.HEVC {
		x265 := "log-level=error"
		if o.TenBitHLG {
			x265 += ":colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc"
		}
		args = append(args, "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", x265, "-tag:v", "hvc1")
	} else {
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast")
		if o.TenBitHLG {
			args = append(args, "-profile:v", "high10")
		}
	}
	args = append(args, "-pix_fmt", pixFmt)
	if tracks > 0 {
		if o.PCMAudio {
			args = append(args, "-c:a", "pcm_s16le")
		} else {
			args = append(args, "-c:a", "aac", "-b:a", "96k")
		}
	}
	format := "mp4"
	if o.PCMAudio {
		format = "mov"
	}

	// Container options: applied in the single pass, or in the remux pass
	// when a display matrix has to be set.
	var box []string
	if o.Timecode {
		box = append(box, "-timecode", "01:00:00:00")
	}
	flags := ""
	if o.CreationTime != "" {
		box = append(box, "-metadata", "creation_time="+o.CreationTime)
		flags += "+use_metadata_tags"
	}
	if o.Location != "" {
		box = append(box, "-metadata", "location="+o.Location)
		if !strings.Contains(flags, "use_metadata_tags") {
			flags += "+use_metadata_tags"
		}
	}
	if o.FastStart {
		flags += "+faststart"
	}
	if flags != "" {
		box = append(box, "-movflags", flags)
	}
	box = append(box, "-f", format)

	if o.Rotate == 0 {
		run(t, append(append(args, box...), "file:"+path)...)
		return
	}
	tmp := filepath.Join(t.TempDir(), "unrotated."+format)
	run(t, append(args, "-f", format, "file:"+tmp)...)
	remux := []string{"-hide_banner", "-nostdin", "-v", "error", "-y", "-i", "file:" + tmp,
		"-map", "0:v", "-map", "0:a?", "-c", "copy", "-fps_mode", "passthrough",
		"-metadata:s:v:0", fmt.Sprintf("rotate=%d", o.Rotate)}
	run(t, append(append(remux, box...), "file:"+path)...)
}

func run(t testing.TB, args ...string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("ffmpeg", args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
}

// Truncated writes the first half of src to dst, like an interrupted upload.
func Truncated(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("truncate %s: %v", src, err)
	}
	if err := os.WriteFile(dst, b[:len(b)/2], 0o644); err != nil {
		t.Fatalf("truncate %s: %v", dst, err)
	}
}

// ZeroBytes creates an empty file at path.
func ZeroBytes(t testing.TB, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatalf("zero-byte file %s: %v", path, err)
	}
}

// TextFile writes a few lines of text to path (e.g. "notes.mp4"): a file
// that is named like a video but is not one.
func TextFile(t testing.TB, path string) {
	t.Helper()
	text := "This is not a video.\nIt is a text file with a .mp4 name.\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatalf("text file %s: %v", path, err)
	}
}
