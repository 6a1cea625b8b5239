package bench

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

func TestVerifyRow(t *testing.T) {
	c := Clip{Title: "1080p30 H.264 + AAC", Secs: 30}
	r := verifyRow(c, verifyCost{Wall: 2, CPU: 3}, 100, 150)
	if r.Issue != 15 || r.Ratio != 0.02 || !r.Pass || r.Target != "<=0.05" || r.Unit != "s" || r.Ours != 2 || r.Anchor != 100 {
		t.Fatalf("row %+v", r)
	}
	if !strings.Contains(r.Notes, "CPU 3.00 s vs the encode's 150.0 s (2.0 %)") {
		t.Errorf("notes %q", r.Notes)
	}
	if r := verifyRow(c, verifyCost{Wall: 6, CPU: 9}, 100, 150); r.Pass {
		t.Errorf("6 %% passed: %+v", r)
	}
	if r := verifyRow(c, verifyCost{Wall: 1}, 0, 0); r.Pass || r.Ratio != 0 {
		t.Errorf("no encode time: %+v", r)
	}
}

// measureVerify times a real VerifyResult (tiny clip) and fails when the
// result does not verify.
func TestMeasureVerify(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.mp4"), filepath.Join(dir, "out.mp4")
	mediatest.Clip(t, in, mediatest.ClipOpts{Seconds: 1, Width: 160, Height: 96})
	ctx := context.Background()
	info, err := media.Probe(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := media.NewPlan(info, media.Settings{CRF: 30, Preset: "ultrafast", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := media.Encode(ctx, in, out, plan, nil); err != nil {
		t.Fatal(err)
	}
	v, err := measureVerify(ctx, in, out)
	if err != nil || v.Wall <= 0 || v.CPU <= 0 {
		t.Fatalf("measureVerify = %+v, %v", v, err)
	}
	if _, err := measureVerify(ctx, out, in); err == nil {
		t.Errorf("the H.264 input verified as a result")
	}
}
