package media

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

// The readers started before the encode give VerifyDecoded's verdicts,
// name the file (never their loopback URL), and end when closed unused.
func TestReadback(t *testing.T) {
	dir := t.TempDir()
	in, info, plan := planFor(t, dir, mediatest.ClipOpts{Width: 160, Height: 120})
	ctx := context.Background()
	start := func(out string) *Readback {
		t.Helper()
		rb, err := StartReadback(ctx, out)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rb.Close)
		return rb
	}

	out := filepath.Join(dir, "out.mp4")
	rb := start(out)
	d, err := EncodeAndDecodeFor(ctx, in, out, plan, nil, rb)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rb.Verify(ctx, info, d)
	if err != nil {
		t.Fatalf("good output: %v", err)
	}
	if v, ok := got.MainVideo(); !ok || v.Codec != "hevc" || got.Path != out {
		t.Errorf("probe of the output: %+v", got)
	}
	// The sampled pictures and the shape checks too (VerifyEncoded's).
	if _, err := VerifyReadBack(ctx, info, in, start(out), d); err != nil {
		t.Errorf("VerifyReadBack of a good output: %v", err)
	}

	// The MP4 must hold exactly the frames the live decode saw.
	if _, err := start(out).Verify(ctx, info, Decoded{Frames: d.Frames + 1}); !errors.Is(err, ErrVerify) {
		t.Errorf("frame count off: err = %v, want ErrVerify", err)
	}
	// A damaged MP4 fails, and the message names the file.
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.mp4")
	if err := os.WriteFile(bad, b[:len(b)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = start(bad).Verify(ctx, info, d)
	if !errors.Is(err, ErrVerify) {
		t.Errorf("truncated output: err = %v, want ErrVerify", err)
	}
	if err != nil && (strings.Contains(err.Error(), "127.0.0.1") || !strings.Contains(err.Error(), bad)) {
		t.Errorf("the message should name %s, not the readers' URL: %v", bad, err)
	}
	// An output that never came (a failed encode): Close ends the readers.
	start(filepath.Join(dir, "never.mp4")).Close()
}
