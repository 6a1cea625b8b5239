package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/adapters/preflighttest"
	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
)

func TestMain(m *testing.M) { awstest.Main(m) }

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hevc-processor")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// TestPreflightRefusesMisconfiguration: the processor, run with each of our
// own mistakes against MinIO, exits 2 (bad configuration) within 10 s with
// one line naming the variable: a missing bucket is never "already
// processed" (exit 0).
func TestPreflightRefusesMisconfiguration(t *testing.T) {
	e := awstest.Shared(t)
	bin := build(t)
	base := append(os.Environ(), e.Environ()...)
	base = append(base, "S3_OBJECT_KEY=TODO/preflight/x.mp4", "LOG_FORMAT=json")
	cases := preflighttest.Cases(t, e, "")
	preflighttest.Run(t, e, bin, nil, base, cases)
	// Exit status 2 in particular: the dispatcher must not take it for done.
	cmd := exec.Command(bin)
	cmd.Env = preflighttest.Env(base, cases[0].Env)
	var ee *exec.ExitError
	if err := cmd.Run(); !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
		t.Errorf("wrong bucket: %v, want exit status %d", err, exitUsage)
	}
}

// TestBadInputReason: real bad inputs (not a video; a truncated clip) end
// in FAILED/ with a reason that names the library file once and repeats no
// word ("bad input: input: input: …" before).
func TestBadInputReason(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	e := awstest.Shared(t)
	bin := build(t)
	ctx := context.Background()
	bucket := e.ScratchBucket(t)
	st, err := s3store.New(ctx, e.StoreConfig(bucket))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.mp4")
	mediatest.TextFile(t, text)
	clip := filepath.Join(dir, "clip.mp4")
	// moov first: the truncated copy still probes, and fails decoding.
	mediatest.Clip(t, clip, mediatest.ClipOpts{Seconds: 2, FastStart: true})
	cut := filepath.Join(dir, "cut.mp4")
	mediatest.Truncated(t, clip, cut)
	for rel, src := range map[string]string{"bad/notes.mp4": text, "bad/cut.mp4": cut} {
		f, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Put(ctx, "TODO/"+rel, f, storage.PutOptions{Size: -1})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		cmd := exec.CommandContext(cctx, bin)
		cmd.Env = append(append(os.Environ(), e.Environ()...), "S3_BUCKET="+bucket, "S3_OBJECT_KEY=TODO/"+rel,
			"WORK_QUEUE_URL=", "X265_PRESET=ultrafast", "X265_THREADS=1", "LOG_FORMAT=json")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err = cmd.Run()
		cancel()
		if err != nil {
			t.Fatalf("%s: %v\n%s", rel, err, stderr.String())
		}
		r, _, err := st.Get(ctx, "FAILED/"+rel+".json")
		if err != nil {
			t.Fatalf("%s: no FAILED/ record: %v\n%s", rel, err, stderr.String())
		}
		var rec struct{ Status, Reason string }
		err = json.NewDecoder(r).Decode(&rec)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s", rel, rec.Reason)
		if rec.Status != "failed" || !strings.HasPrefix(rec.Reason, rel+" ") || strings.Count(rec.Reason, rel) != 1 {
			t.Errorf("%s: record %+v: want a failure naming %s once, first", rel, rec, rel)
		}
		if w, ok := repeated(rec.Reason); ok {
			t.Errorf("%s: reason repeats %q: %s", rel, w, rec.Reason)
		}
		for _, bad := range []string{"bad input", dir, "/tmp/", "job-", " @ 0x", "http"} {
			if strings.Contains(rec.Reason, bad) {
				t.Errorf("%s: reason holds %q: %s", rel, bad, rec.Reason)
			}
		}
	}
}

// repeated finds a word that follows itself, ignoring punctuation and
// numbers ("input: input", not ffmpeg's "#0:0").
func repeated(s string) (string, bool) {
	words := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '/')
	})
	for i := 1; i < len(words); i++ {
		if words[i] == words[i-1] && strings.ContainsAny(words[i], "abcdefghijklmnopqrstuvwxyz") {
			return words[i], true
		}
	}
	return "", false
}

// TestS3DownAtStartRetriesSoon: a processor that finds S3 unreachable at
// start (a restart, a cold network) exits 75 and hands its message back for
// the first backoff (10 s), instead of leaving it hidden for the
// dispatcher's START_GRACE.
func TestS3DownAtStartRetriesSoon(t *testing.T) {
	e := awstest.Shared(t)
	bin := build(t)
	ctx := context.Background()
	q := e.NewScratchQueue(t, 30*time.Second, 5)
	if err := q.Send(ctx, `{"Records":[]}`); err != nil {
		t.Fatal(err)
	}
	msgs, err := q.Receive(ctx, 1, 5*time.Second)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive: %v (%d messages)", err, len(msgs))
	}
	// Hidden as the dispatcher hides it for the task's start.
	if err := q.ChangeVisibility(ctx, msgs[0].Receipt, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(), e.Environ()...), "LOG_FORMAT=json",
		"S3_ENDPOINT="+preflighttest.ClosedPort(t), "S3_OBJECT_KEY=TODO/down/x.mp4",
		"WORK_QUEUE_URL="+q.Name(), "SQS_RECEIPT_HANDLE="+msgs[0].Receipt, "SQS_RECEIVE_COUNT=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitTransient || !strings.Contains(string(out), `"retry_in":10000`) {
		t.Fatalf("exit %v, want %d with the message handed back:\n%s", err, exitTransient, out)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err := q.Receive(ctx, 1, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 {
			if got[0].ID != msgs[0].ID || got[0].ReceiveCount != 2 {
				t.Errorf("got message %s (receive %d), want %s again", got[0].ID, got[0].ReceiveCount, msgs[0].ID)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the message did not come back after the backoff")
		}
	}
}
