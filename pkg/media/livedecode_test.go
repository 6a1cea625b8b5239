package media

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

func TestVerifyDecodedRejects(t *testing.T) {
	dir := t.TempDir()
	in, info, plan := planFor(t, dir, mediatest.ClipOpts{Width: 160, Height: 120})
	out := filepath.Join(dir, "out.mp4")
	ctx := context.Background()
	d, err := EncodeAndDecode(ctx, in, out, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyDecoded(ctx, info, out, d); err != nil {
		t.Fatalf("good output: %v", err)
	}
	// The MP4 must hold exactly the frames the live decode saw.
	if _, err := VerifyDecoded(ctx, info, out, Decoded{Frames: d.Frames + 1}); !errors.Is(err, ErrVerify) {
		t.Errorf("frame count off: err = %v, want ErrVerify", err)
	}
	// A damaged MP4 fails even though the stream decoded.
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.mp4")
	if err := os.WriteFile(bad, b[:len(b)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyDecoded(ctx, info, bad, d); !errors.Is(err, ErrVerify) {
		t.Errorf("truncated output: err = %v, want ErrVerify", err)
	}
}

func TestFollower(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	done := make(chan struct{})
	got := make(chan string)
	go func() {
		var sb strings.Builder
		buf := make([]byte, 3)
		fl := &follower{f: r, done: done, ctx: context.Background()}
		for {
			n, err := fl.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				got <- sb.String()
				return
			}
		}
	}()
	for _, s := range []string{"abc", "defg", "", "h"} {
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
		runtime.Gosched()
	}
	f.WriteString("ij") // written before done: must be read
	close(done)
	if s := <-got; s != "abcdefghij" {
		t.Errorf("read %q", s)
	}
}

// TestLiveDecodeArgsRejectDamage: the live decoder skips the loop filters
// and probes little; it must still count every frame of a good stream and
// report a damaged one.
func TestLiveDecodeArgsRejectDamage(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.hevc")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=2",
		"-c:v", "libx265", "-x265-params", "log-level=error:pools=1:frame-threads=1", "-f", "hevc", good).CombinedOutput()
	if err != nil {
		t.Fatalf("encode: %v: %s", err, out)
	}
	decode := func(path string) (frames int64, stderr string) {
		cmd := exec.Command("ffmpeg", liveDecodeArgs(path)...)
		var e strings.Builder
		cmd.Stderr = &e
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		frames = lastFrame(stdout)
		if err := cmd.Wait(); err != nil {
			e.WriteString(err.Error())
		}
		return frames, e.String()
	}
	if n, msg := decode(good); n != 60 || msg != "" {
		t.Fatalf("good stream: %d frames (want 60), messages %q", n, msg)
	}
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := len(b) / 3; i < len(b)/3+2000; i++ {
		b[i] = byte(rnd.UintN(256))
	}
	bad := filepath.Join(dir, "bad.hevc")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, msg := decode(bad); msg == "" {
		t.Error("damaged stream decoded without an error message")
	}
}
