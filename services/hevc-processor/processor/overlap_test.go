package processor

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage/fs"
)

// encoded returns a small H.264 clip's Info and path, its HEVC encode and
// what the live decode saw of it.
func encoded(t *testing.T) (media.Info, string, string, media.Decoded) {
	t.Helper()
	return encodedWith(t)
}

// encodedWith encodes with extra output options put before the plan's
// (e.g. a filter that changes the picture).
func encodedWith(t *testing.T, extra ...string) (media.Info, string, string, media.Decoded) {
	t.Helper()
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
	plan.Args = append(extra, plan.Args...)
	d, err := media.EncodeAndDecode(ctx, in, out, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	return info, in, out, d
}

func TestVerifyAndUploadCommitsVerifiedOutput(t *testing.T) {
	info, in, out, d := encoded(t)
	st, err := fs.New(t.TempDir(), "b")
	if err != nil {
		t.Fatal(err)
	}
	p := &Processor{Store: st, Log: zerolog.Nop()}
	key := "DONE/a/clip-hevc.mp4"
	if err := p.verifyAndUpload(context.Background(), info, in, d, out, nil, key, 0, map[string]string{"duration": "1.000"}); err != nil {
		t.Fatal(err)
	}
	obj, err := st.Head(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := fileSHA256(out)
	if obj.SHA256 != sum || obj.Metadata["duration"] != "1.000" {
		t.Fatalf("committed object %+v, want sha256 %s and the metadata", obj, sum)
	}
}

// An output that does not match its input must never reach DONE/, even
// though its upload started before the verdict.
func TestVerifyAndUploadCommitsNothingWhenVerificationFails(t *testing.T) {
	info, in, out, d := encoded(t)
	info.Duration += 30 // the output is now far too short
	st, err := fs.New(t.TempDir(), "b")
	if err != nil {
		t.Fatal(err)
	}
	p := &Processor{Store: st, Log: zerolog.Nop()}
	key := "DONE/a/clip-hevc.mp4"
	err = p.verifyAndUpload(context.Background(), info, in, d, out, nil, key, 0, nil)
	if !errors.Is(err, media.ErrVerify) {
		t.Fatalf("err = %v, want ErrVerify", err)
	}
	if ok, _ := storage.Exists(context.Background(), st, key); ok {
		t.Fatalf("%s was committed although verification failed", key)
	}
	var perm permanent
	if !errors.As(verifyFailure("a/clip", "TODO/a/clip.mp4", err), &perm) {
		t.Fatalf("a mismatch must be permanent")
	}
}

// Issue 15 point 2: the processor compares pictures before DONE/ is
// committed: a result that probes and decodes fine but does not show the
// original's picture (here the encode turns it upside down) is refused
// and nothing is committed.
func TestVerifyAndUploadRefusesAnotherPicture(t *testing.T) {
	info, in, out, d := encodedWith(t, "-vf", "hflip,vflip")
	st, err := fs.New(t.TempDir(), "b")
	if err != nil {
		t.Fatal(err)
	}
	p := &Processor{Store: st, Log: zerolog.Nop()}
	key := "DONE/a/clip-hevc.mp4"
	err = p.verifyAndUpload(context.Background(), info, in, d, out, nil, key, 0, nil)
	if !errors.Is(err, media.ErrVerify) || !strings.Contains(err.Error(), "picture differs") {
		t.Fatalf("err = %v, want ErrVerify naming the picture", err)
	}
	if ok, _ := storage.Exists(context.Background(), st, key); ok {
		t.Fatalf("%s was committed although the picture differs", key)
	}
}

func TestRedactKeepsChainAndHidesURL(t *testing.T) {
	u := "http://127.0.0.1:9000/b/TODO/x.mp4?X-Amz-Signature=abc&X-Amz-Security-Token=tok"
	base := errors.New("ffmpeg: " + u + ": Server returned 403 Forbidden")
	err := redact(base, u)
	if strings.Contains(err.Error(), "X-Amz") || !strings.Contains(err.Error(), "Server returned 403") {
		t.Fatalf("redacted = %q", err)
	}
	if !errors.Is(err, base) {
		t.Fatalf("redact lost the error chain")
	}
	if got := redact(base, "/tmp/input.mp4"); got != base {
		t.Fatalf("a local path needs no redaction")
	}
}
