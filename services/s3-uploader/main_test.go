package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "s3-uploader")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func runBin(t *testing.T, bin string, env []string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestBinary: --help, a dry run, a real run with its summary and JSON
// log lines, a re-run that uploads nothing, and exit status 1 on failure.
func TestBinary(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	bin := build(t)
	stdout, stderr, err := runBin(t, bin, os.Environ(), "--help")
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"LIBRARY_ROOT", "INCLUDE", "EXCLUDE", "MIN_AGE", "CONCURRENCY", "--dry-run", "STORAGE", "S3_BUCKET"} {
		if !strings.Contains(stdout+stderr, want) {
			t.Errorf("help lacks %s", want)
		}
	}

	root, bucket := t.TempDir(), t.TempDir()
	old := time.Now().Add(-time.Hour)
	for _, rel := range []string{"a/one.mp4", "a/TWO.MP4"} {
		p := filepath.Join(root, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		mediatest.Clip(t, p, mediatest.ClipOpts{Seconds: 1})
		os.Chtimes(p, old, old)
	}
	env := append(os.Environ(), "STORAGE=fs", "FS_ROOT="+bucket, "LIBRARY_ROOT="+root, "LOG_FORMAT=json")

	stdout, stderr, err = runBin(t, bin, env, "--dry-run")
	if err != nil || !strings.Contains(stdout, "dry run: would upload 2 file(s)") {
		t.Fatalf("dry run: %v\n%s\n%s", err, stdout, stderr)
	}
	if ents, _ := os.ReadDir(filepath.Join(bucket, "TODO")); len(ents) > 0 {
		t.Errorf("dry run uploaded")
	}

	stdout, stderr, err = runBin(t, bin, env)
	if err != nil || !strings.Contains(stdout, "uploaded 2 file(s)") {
		t.Fatalf("run: %v\n%s\n%s", err, stdout, stderr)
	}
	for _, want := range []string{`"service":"s3-uploader"`, `"message":"uploaded"`, `"key":"TODO/a/TWO.MP4"`, `"message":"done"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("log lacks %s:\n%s", want, stderr)
		}
	}
	for _, k := range []string{"TODO/a/one.mp4", "TODO/a/TWO.MP4"} {
		if _, err := os.Stat(filepath.Join(bucket, filepath.FromSlash(k))); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}

	stdout, _, err = runBin(t, bin, env)
	if err != nil || !strings.Contains(stdout, "uploaded 0 file(s)") || !strings.Contains(stdout, "already in TODO/") {
		t.Errorf("re-run: %v\n%s", err, stdout)
	}

	_, stderr, err = runBin(t, bin, append(env, "LIBRARY_ROOT="+filepath.Join(root, "missing")))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr, "missing") {
		t.Errorf("missing library: %v\n%s", err, stderr)
	}

	// The AWS path: the same binary on MinIO.
	e := awstest.Shared(t)
	t.Cleanup(e.Close) // after the scratch bucket is removed
	scratch := e.ScratchBucket(t)
	awsEnv := append(append(os.Environ(), e.Environ()...), "S3_BUCKET="+scratch, "LIBRARY_ROOT="+root, "LOG_FORMAT=json")
	for _, want := range []string{"uploaded 2 file(s)", "uploaded 0 file(s)"} {
		stdout, stderr, err = runBin(t, bin, awsEnv)
		if err != nil || !strings.Contains(stdout, want) {
			t.Errorf("on MinIO: %v, want %q\n%s\n%s", err, want, stdout, stderr)
		}
	}
	out, err := e.S3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &scratch, Key: aws.String("TODO/a/TWO.MP4")})
	if err != nil || out.Metadata["source-sha256"] == "" || out.Metadata["sha256"] != out.Metadata["source-sha256"] {
		t.Errorf("TODO/a/TWO.MP4 on MinIO: %v %v", err, out)
	}
}
