package pipeline

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/upload"
)

// Issue 17, point 4: the embedded pipeline's uploader applies MIN_BITRATE:
// a clip below it stays as it is (not encoded, counted as skipped), the
// others are converted.
func TestPipelineMinBitrate(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	root := t.TempDir()
	sums := makeLibrary(t, root, []clip{
		{rel: "cam/VID_1.mp4", opts: meta},
		{rel: "chat/low rate.mp4", make: func(t *testing.T, p string) {
			// 640x360 held to 60 kbit/s: under auto's 1.2 bit/s × 640 × 360 = 276 kbit/s.
			out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y",
				"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=2,noise=alls=8:allf=t",
				"-c:v", "libx264", "-preset", "veryfast", "-b:v", "60k", "-maxrate", "60k", "-bufsize", "60k",
				"-pix_fmt", "yuv420p", p).CombinedOutput()
			if err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, out)
			}
		}},
	})
	orig := probe(t, filepath.Join(root, "cam", "VID_1.mp4"))
	sum, err := Run(context.Background(), Options{Library: root, State: filepath.Join(t.TempDir(), "bucket"), Processor: fastSettings(), Jobs: 1,
		Logger: testLogger(t), MinBitrate: upload.MinBitrate{Auto: true}})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if sum.Converted != 1 || sum.Skipped[upload.SkipBitrate] != 1 {
		t.Errorf("converted %d, skipped for bitrate %d; want 1 and 1 (%+v)", sum.Converted, sum.Skipped[upload.SkipBitrate], sum)
	}
	checkConverted(t, root, "cam/VID_1.mp4", orig)
	low := filepath.Join(root, "chat", "low rate.mp4")
	if sha(t, low) != sums["chat/low rate.mp4"] {
		t.Errorf("LOST or changed: %s", low)
	}
	if _, err := os.Stat(filepath.Join(root, "chat", "low rate-hevc.mp4")); err == nil {
		t.Errorf("the low-rate clip was encoded")
	}
}
