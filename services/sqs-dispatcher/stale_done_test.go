package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/ecstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// Issue 15, point 3: a result in DONE/ made from an older version of the
// original does not make the dispatcher delete the newer TODO/ object:
// the source SHA-256 recorded on the result differs from the TODO/
// object's, so the newer version is dispatched and encoded.
func TestOlderResultDoesNotDeleteNewerTodo(t *testing.T) {
	env := awstest.Shared(t)
	st := env.NewScratchStore(t)
	q := env.NewScratchQueue(t, 30*time.Second, 3)
	srv := startECS(t, env, ecstest.Options{})
	newer := clip(t, false)
	h := sha256.Sum256([]byte("the older version"))
	older := hex.EncodeToString(h[:])
	put(t, st, "TODO/v/clip.mp4", newer)
	if _, err := st.Put(context.Background(), "DONE/v/clip-hevc.mp4", bytes.NewReader(newer), storage.PutOptions{
		Size: int64(len(newer)), Metadata: map[string]string{storage.MetaSourceSHA: older},
	}); err != nil {
		t.Fatal(err)
	}
	sendEvents(t, env, q.Name(), st.Bucket(), "TODO/v/clip.mp4")
	dispatch(t, vars(env, st.Bucket(), q.Name(), srv, nil))
	n := sha256.Sum256(newer)
	want := hex.EncodeToString(n[:])
	waitFor(t, 3*time.Minute, "the newer version encoded", func() (bool, error) {
		v, i := depth(t, env, q.Name())
		if v+i != 0 || !allStopped(srv) {
			return false, nil
		}
		obj, err := st.Head(context.Background(), "DONE/v/clip-hevc.mp4")
		return err == nil && obj.Metadata[storage.MetaSourceSHA] == want, nil
	})
	if n := len(srv.TasksFor("TODO/v/clip.mp4")); n != 1 {
		t.Errorf("%d tasks for the newer TODO/ object, want 1", n)
	}
}
