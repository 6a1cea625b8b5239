package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/downloader"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/internal/testutil"
)

// TestRestoreCommand: `restore --help`, `restore --list`, a restore, and
// a restore refused because a newer file took the name (exit 1, both
// files left, the message says so).
func TestRestoreCommand(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	l := newLib(t)
	rels := []string{"m/one.mp4", "m/two é.mp4"}
	sums := map[string]string{}
	for _, rel := range rels {
		testutil.Clip(t, l.path(rel), clip2s)
		sums[rel] = testutil.SHA(t, l.path(rel))
		key, _ := testutil.PutResult(t, l.st, l.root, rel, testutil.ResultOpts{})
		d := &downloader.Downloader{Store: l.st, Log: zerolog.Nop(), Cfg: downloader.Config{Root: l.root, DirMode: 0o755, Concurrency: 1}}
		if res, err := d.Install(context.Background(), key); err != nil || res.Trashed == "" {
			t.Fatalf("install %s: %+v %v", key, res, err)
		}
	}

	stdout, stderr, err := command(t, os.Environ(), "restore", "--help")
	if err != nil || !strings.Contains(stdout+stderr, "--keep-result") || !strings.Contains(stdout+stderr, "LIBRARY_ROOT") {
		t.Errorf("restore --help: %v\n%s%s", err, stdout, stderr)
	}
	stdout, stderr, err = command(t, l.env(), "restore", "--list")
	if err != nil || !strings.Contains(stdout, rels[0]) || !strings.Contains(stdout, rels[1]) || !strings.Contains(stdout, "2 original(s)") {
		t.Errorf("restore --list: %v\n%s%s", err, stdout, stderr)
	}

	stdout, stderr, err = command(t, l.env(), "restore", rels[0])
	if err != nil || !strings.Contains(stdout, "restored "+l.path(rels[0])) || !strings.Contains(stdout, "removed its result") {
		t.Errorf("restore: %v\n%s%s", err, stdout, stderr)
	}
	if testutil.SHA(t, l.path(rels[0])) != sums[rels[0]] || exists(l.path(library.HevcRel(rels[0]))) {
		t.Errorf("after restore: original or result wrong")
	}

	testutil.WriteFile(t, l.path(rels[1]), []byte("a newer file"))
	stdout, stderr, err = command(t, l.env(), "restore", rels[1])
	if err == nil || !strings.Contains(stdout, "not restored") || !strings.Contains(stdout, "nothing was changed") {
		t.Errorf("restore over a newer file: %v\n%s%s", err, stdout, stderr)
	}
	if b, _ := os.ReadFile(l.path(rels[1])); string(b) != "a newer file" {
		t.Errorf("newer file changed")
	}
	if files, _, _, _ := library.TrashUsage(l.root); files != 1 || !exists(l.path(library.HevcRel(rels[1]))) {
		t.Errorf("refused restore changed the trash (%d files) or the result", files)
	}
}
