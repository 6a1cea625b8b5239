package processor

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// replacingStore puts a new version of the TODO/ object (the original
// saved again and uploaded) while the result is being stored.
type replacingStore struct {
	storage.Store
	t     *testing.T
	todo  string
	newer []byte
	done  bool
}

func (s *replacingStore) Put(ctx context.Context, key string, r io.Reader, o storage.PutOptions) (storage.Object, error) {
	obj, err := s.Store.Put(ctx, key, r, o)
	if err == nil && strings.HasPrefix(key, "DONE/") && !s.done {
		s.done = true
		if _, perr := s.Store.Put(ctx, s.todo, bytes.NewReader(s.newer), storage.PutOptions{Size: int64(len(s.newer))}); perr != nil {
			s.t.Error(perr)
		}
	}
	return obj, err
}

// Issue 15, point 3: a job does not delete a TODO/ object that was
// replaced while it ran; the newer version stays for its own job.
func TestTodoReplacedWhileEncodingIsKept(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	dir := t.TempDir()
	clip, newer := filepath.Join(dir, "clip.mp4"), filepath.Join(dir, "newer.mp4")
	mediatest.Clip(t, clip, mediatest.ClipOpts{Seconds: 2})
	mediatest.Clip(t, newer, mediatest.ClipOpts{Seconds: 3})
	key := "TODO/a/clip.mp4"
	putFile(t, st, key, clip)
	nb, err := os.ReadFile(newer)
	if err != nil {
		t.Fatal(err)
	}
	rs := &replacingStore{Store: st, t: t, todo: key, newer: nb}
	p := &Processor{Store: rs, Cfg: testConfig(t), Log: zerolog.Nop()}
	res, err := p.Process(context.Background(), launch.Job{Key: key})
	if err != nil || res.Outcome != Done {
		t.Fatalf("process: %+v, %v", res, err)
	}
	obj, err := st.Head(context.Background(), key)
	if err != nil {
		t.Fatalf("LOST: the newer TODO/ object was deleted: %v", err)
	}
	if obj.Size != int64(len(nb)) {
		t.Errorf("TODO/ object is %d bytes, want the newer version's %d", obj.Size, len(nb))
	}
	if ok, _ := storage.Exists(context.Background(), st, "DONE/a/clip-hevc.mp4"); !ok {
		t.Errorf("result of the first version not stored")
	}
}
