package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

// syncBuffer collects the JSON log lines of every service of a run.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// Issue 15, point 5, end to end: a.mp4 and a.MP4 in one folder are both
// converted, to distinct results (a-hevc.mp4 and a-hevc-MP4.mp4, each made
// from its own original: they differ in length), and each original is
// removed only after its own result was installed.
func TestSpellingsInOneFolder(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	root := t.TempDir()
	clips := []clip{
		{rel: "cam/a.mp4", opts: with(func(o *mediatest.ClipOpts) { o.Seconds = 2 }), want: "converted"},
		{rel: "cam/a.MP4", opts: with(func(o *mediatest.ClipOpts) { o.Seconds = 3 }), want: "converted"},
	}
	makeLibrary(t, root, clips)
	origs := map[string]float64{}
	for _, c := range clips {
		origs[c.rel] = probe(t, filepath.Join(root, filepath.FromSlash(c.rel))).Duration
	}
	logs := &syncBuffer{}
	sum, err := Run(context.Background(), Options{Library: root, Processor: fastSettings(), Jobs: 2, Logger: func(s string) zerolog.Logger {
		return zerolog.New(logs).With().Str("service", s).Logger()
	}})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, logs.b.String())
	}
	if sum.Converted != 2 || len(sum.Failed) != 0 {
		t.Fatalf("summary %+v, want both converted", sum)
	}
	for rel, result := range map[string]string{"cam/a.mp4": "cam/a-hevc.mp4", "cam/a.MP4": "cam/a-hevc-MP4.mp4"} {
		if _, err := os.Lstat(filepath.Join(root, filepath.FromSlash(rel))); !os.IsNotExist(err) {
			t.Errorf("%s still present (%v)", rel, err)
		}
		// ORIGINALS=trash, the default: each original in the trash.
		if d := probe(t, filepath.Join(library.TrashDir(root), filepath.FromSlash(rel))).Duration; math.Abs(d-origs[rel]) > 0.01 {
			t.Errorf("%s in the trash lasts %.2f s, the original %.2f s", rel, d, origs[rel])
		}
		info := probe(t, filepath.Join(root, filepath.FromSlash(result)))
		if d := math.Abs(info.Duration - origs[rel]); d > 0.5 {
			t.Errorf("%s lasts %.2f s, its original %s %.2f s: made from the other spelling?", result, info.Duration, rel, origs[rel])
		}
	}
	ents, _ := os.ReadDir(filepath.Join(root, "cam"))
	if len(ents) != 2 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("cam/ holds %v, want the two results only", names)
	}
	checkNoTemps(t, root)

	// The downloader's log: each original removed (moved to the trash, by
	// default) after the install of the result named for it, under that
	// result's key.
	installed := map[string]int{}
	removed := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(logs.b.Bytes()))
	sc.Buffer(nil, 1<<20)
	for line := 0; sc.Scan(); line++ {
		var l struct {
			Service, Key, File, Original, Message string
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Service != "result-downloader" {
			continue
		}
		switch l.Message {
		case "installed":
			installed[l.Key] = line + 1
		case "original removed", "original moved to the trash":
			if prev, ok := removed[l.Original]; ok {
				t.Errorf("%s removed twice (lines %d and %d)", l.Original, prev, line+1)
			}
			removed[l.Original] = line + 1
			if installed[l.Key] == 0 {
				t.Errorf("%s removed (key %s) before that result was installed", l.Original, l.Key)
			}
		}
	}
	for orig, key := range map[string]string{"a.mp4": "DONE/cam/a-hevc.mp4", "a.MP4": "DONE/cam/a-hevc-MP4.mp4"} {
		if installed[key] == 0 || removed[orig] == 0 {
			t.Errorf("%s: installed at log line %d, %s removed at line %d", key, installed[key], orig, removed[orig])
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", logs.b.String())
	}
}
