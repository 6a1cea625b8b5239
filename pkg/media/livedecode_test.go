package media

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

func TestVerifyDecodedRejects(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.mp4")
	mediatest.Clip(t, in, mediatest.ClipOpts{Width: 160, Height: 120})
	info := probe(t, in)
	plan, err := NewPlan(info, fast())
	if err != nil {
		t.Fatal(err)
	}
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

func TestStartIdle(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SCHED_IDLE is Linux's")
	}
	cmd := exec.Command("sleep", "5")
	if err := startIdle(cmd); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if p := policy(t, filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "sched")); p != "5" {
		t.Errorf("child policy %q, want 5 (SCHED_IDLE)", p)
	}
	if p := policy(t, "/proc/self/sched"); p != "0" {
		t.Errorf("our own policy %q, want 0 (normal)", p)
	}
}

func policy(t *testing.T, file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "policy" {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no policy in %s", file)
	return ""
}
