package media

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
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
