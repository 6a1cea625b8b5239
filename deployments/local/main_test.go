package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/deployments/local/pipeline"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
)

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Issue 15, point 7: `make run` starts a fresh demo when the last one
// finished, but never removes a DEMO_DIR holding files it did not
// generate: the run stops with an error naming them, and they stay.
func TestFinishedDemoWithForeignFilesIsKept(t *testing.T) {
	demo := filepath.Join(t.TempDir(), "demo-library")
	writeFile(t, filepath.Join(demo, demoDone), "")
	clip := pipeline.DemoClips()[0].Rel
	writeFile(t, filepath.Join(demo, filepath.FromSlash(library.HevcRel(clip))), "a result of the last demo")
	user := filepath.Join(demo, "Smartphones", "alice", "my own video.mp4")
	writeFile(t, user, "not a demo clip")
	err := realMain(context.Background(), []string{"--demo-dir", demo})
	if err == nil || !strings.Contains(err.Error(), "my own video.mp4") {
		t.Fatalf("realMain: %v, want an error naming the foreign file", err)
	}
	if b, err := os.ReadFile(user); err != nil || string(b) != "not a demo clip" {
		t.Fatalf("LOST: %s: %v", user, err)
	}
}

// A finished demo holding only what the demo made is removed for a fresh
// one.
func TestFinishedDemoIsReset(t *testing.T) {
	demo := filepath.Join(t.TempDir(), "demo-library")
	writeFile(t, filepath.Join(demo, demoDone), "")
	writeFile(t, filepath.Join(demo, library.StateDirName, "bucket", "DONE", "x"), "state")
	for _, c := range pipeline.DemoClips() {
		writeFile(t, filepath.Join(demo, filepath.FromSlash(library.HevcRel(c.Rel))), "result")
	}
	writeFile(t, filepath.Join(demo, filepath.FromSlash(pipeline.DemoClips()[1].Rel)), "a kept original")
	if err := resetDemo(demo); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(demo); !os.IsNotExist(err) {
		t.Fatalf("demo library not removed: %v", err)
	}
}
