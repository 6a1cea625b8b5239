package syncer_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/services/nextcloud-syncer/internal/davtest"
	"github.com/hevc-encoder/hevc-encoder/services/nextcloud-syncer/syncer"
)

// oddNames covers spaces, '#', '%', '+', quotes, non-ASCII, nesting.
var oddNames = []string{
	"IMG_0001.jpg",
	"VID 0002 with spaces.mp4",
	"hash#tag.jpg",
	"100% done.png",
	"c++ and a+b.txt",
	`double "quoted".jpg`,
	"it's single.heic",
	"naïve café 日本語 🎥.mov",
	"semi;colon,comma&amp=eq?.jpg",
	"2024/05/IMG_1234.JPG",
	"2024/05/deep er/nested/x.dng",
	"folder with spaces/file#1%2B.jpg",
	"no-extension",
	".hidden",
	"empty.txt", // zero bytes
}

func fill(e *env, user string, seed uint64) {
	for i, n := range oddNames {
		size := 1000 + i*7919
		if n == "empty.txt" {
			size = 0
		}
		sum := []string{"", "sha1", "all"}[i%3]
		e.put(user, n, data(seed+uint64(i), size), sum)
	}
}

func TestMovesManyUsersNestedOddNames(t *testing.T) {
	users := []string{"alice", "bob", "carol.smith", "dave-x", "eve", "frank", "grace"}
	e := newEnv(t, users...)
	for i, u := range users {
		fill(e, u, uint64(i)*100)
	}
	// An empty folder that was empty before the pass stays.
	if err := os.MkdirAll(e.srv.Path("alice", source+"/already empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := e.snapshot()
	sums, err := e.run(e.config())
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	e.checkAllMoved(want)
	for _, u := range users {
		s := e.summary(sums, u)
		if s.Files != len(oddNames) || s.Failed != 0 || s.Skipped != 0 || s.Err != nil {
			t.Errorf("%s: summary %+v", u, s)
		}
		loc := e.local(u)
		for rel, sum := range want[u] {
			if loc[rel] != sum {
				t.Errorf("%s: %s not in the library under its own name", u, rel)
			}
			p := filepath.Join(e.libDir(u), filepath.FromSlash(rel))
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if !st.ModTime().Equal(mtimeFor(rel)) {
				t.Errorf("%s: mtime %s, want %s", rel, st.ModTime().UTC(), mtimeFor(rel))
			}
			if st.Mode().Perm() != 0o644 {
				t.Errorf("%s: mode %v", rel, st.Mode())
			}
		}
		for _, d := range []string{"", "2024", "2024/05", "2024/05/deep er/nested", "folder with spaces"} {
			st, err := os.Stat(filepath.Join(e.libDir(u), d))
			if err != nil || st.Mode().Perm() != 0o755 {
				t.Errorf("%s: dir %q: %v %v", u, d, st.Mode(), err)
			}
		}
		// Emptied subfolders are removed; the source folder is not.
		if _, err := os.Stat(e.srv.Path(u, source+"/2024")); !os.IsNotExist(err) {
			t.Errorf("%s: emptied folder 2024 still on the server (%v)", u, err)
		}
	}
	if _, err := os.Stat(e.srv.Path("alice", source+"/already empty")); err != nil {
		t.Errorf("a folder that was empty before the pass was removed: %v", err)
	}
	// A second pass has nothing to do.
	sums, err = e.run(e.config())
	if err != nil || e.summary(sums, "alice").Files != 0 {
		t.Errorf("second pass: %v %+v", err, sums)
	}
}

func TestLargeFileStreams(t *testing.T) {
	e := newEnv(t, "alice")
	const size = 200 << 20
	rel := "big/VID_200MiB.mp4"
	p := e.srv.Path("alice", source+"/"+rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h1, h256 := sha1.New(), sha256.New()
	rng := rand.NewChaCha8([32]byte{7})
	if _, err := io.CopyN(io.MultiWriter(f, h1, h256), rng, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	e.srv.SetChecksum("alice", source+"/"+rel, "SHA1:"+hex.EncodeToString(h1.Sum(nil)))
	want := map[string]map[string]string{"alice": {rel: hex.EncodeToString(h256.Sum(nil))}}
	sums, err := e.run(e.config())
	if err != nil {
		t.Fatal(err)
	}
	e.checkAllMoved(want)
	if s := e.summary(sums, "alice"); s.Files != 1 || s.Bytes != size {
		t.Errorf("summary %+v", s)
	}
}

func TestCollisions(t *testing.T) {
	e := newEnv(t, "alice")
	lib := e.libDir("alice")
	write := func(rel string, b []byte) {
		p := filepath.Join(lib, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	same1, same2, diff, other := data(1, 5000), data(2, 6000), data(3, 7000), data(4, 7000)
	// identical, with a checksum (no download needed) and without.
	write("same-sum.jpg", same1)
	e.put("alice", "same-sum.jpg", same1, "sha1")
	write("same-nosum.jpg", same2)
	e.put("alice", "same-nosum.jpg", same2, "")
	// different content, same size and name → "name (1).ext".
	write("diff.jpg", other)
	e.put("alice", "diff.jpg", diff, "all")
	// taken names up to (2): the identical copy sits at "(2)".
	write("multi.jpg", data(5, 100))
	write("multi (1).jpg", data(6, 100))
	write("multi (2).jpg", data(7, 100))
	e.put("alice", "multi.jpg", data(7, 100), "")
	// a remote file whose own name is a suffixed name of another one.
	write("race.jpg", data(8, 10))
	e.put("alice", "race.jpg", data(9, 10), "")
	e.put("alice", "race (1).jpg", data(10, 10), "")
	before := e.local("alice")
	want := e.snapshot()
	sums, err := e.run(e.config())
	if err != nil {
		t.Fatal(err)
	}
	e.checkAllMoved(want)
	loc := e.local("alice")
	for rel, sum := range before {
		if loc[rel] != sum {
			t.Errorf("library file %s was changed", rel)
		}
	}
	if loc["diff (1).jpg"] != sha(diff) {
		t.Errorf("diff.jpg not kept as 'diff (1).jpg': %v", sortedKeys(loc))
	}
	if _, ok := loc["multi (3).jpg"]; ok {
		t.Errorf("identical multi.jpg copied again as multi (3).jpg")
	}
	if _, ok := loc["same-sum (1).jpg"]; ok {
		t.Errorf("identical file copied again")
	}
	s := e.summary(sums, "alice")
	if s.Skipped != 3 || s.Files != 3 {
		t.Errorf("want 3 skipped (identical) and 3 moved, got %+v", s)
	}
	if n := len(loc) - len(before); n != 3 {
		t.Errorf("%d new library files, want 3: %v", n, sortedKeys(loc))
	}
}

func TestWrongChecksumIsNotInstalled(t *testing.T) {
	e := newEnv(t, "alice")
	good, bad := data(1, 30000), data(2, 30000)
	e.put("alice", "good.jpg", good, "sha1")
	e.put("alice", "bad.jpg", bad, "SHA1:"+strings.Repeat("ab", 20))
	e.put("alice", "bad-md5.jpg", data(3, 100), "MD5:"+strings.Repeat("0", 32))
	want := e.snapshot()
	sums, err := e.run(e.config())
	if err == nil {
		t.Fatal("want an error for the files with a wrong checksum")
	}
	e.checkNoLoss(want)
	loc, rem := e.local("alice"), e.remote("alice")
	if _, ok := loc["bad.jpg"]; ok {
		t.Error("file with a wrong checksum was installed")
	}
	if _, ok := loc["bad-md5.jpg"]; ok {
		t.Error("file with a wrong MD5 was installed")
	}
	if rem["bad.jpg"] != sha(bad) {
		t.Error("file with a wrong checksum was deleted from the server")
	}
	if loc["good.jpg"] != sha(good) || rem["good.jpg"] != "" {
		t.Error("good file not moved")
	}
	if s := e.summary(sums, "alice"); s.Failed != 2 || s.Files != 1 {
		t.Errorf("summary %+v", s)
	}
}

func TestFileModifiedDuringDownload(t *testing.T) {
	e := newEnv(t, "alice")
	rel := "VID_live.mp4"
	full := source + "/" + rel
	orig, next := data(1, 1<<20), data(2, 1<<20) // same size: only the ETag tells
	e.put("alice", rel, orig, "")
	e.put("alice", "other.jpg", data(3, 1000), "sha1")
	e.srv.AddFault(&davtest.Fault{Method: "GET", Path: rel, Times: 1, After: 256 << 10, Hook: func() {
		// Rewrite in place (the server's open file sees the new bytes).
		if err := os.WriteFile(e.srv.Path("alice", full), next, 0o644); err != nil {
			t.Error(err)
		}
	}})
	sums, err := e.run(e.config())
	if err != nil {
		t.Fatalf("a changed file is deferred, not a failure: %v", err)
	}
	if s := e.summary(sums, "alice"); s.Deferred != 1 || s.Files != 1 {
		t.Errorf("summary %+v", s)
	}
	loc := e.local("alice")
	if _, ok := loc[rel]; ok {
		t.Errorf("a file that changed during the download was installed")
	}
	want := map[string]map[string]string{"alice": {rel: sha(next)}}
	e.checkNoLoss(want)
	if e.remote("alice")[rel] != sha(next) {
		t.Fatal("changed file not on the server")
	}
	if _, err := e.run(e.config()); err != nil {
		t.Fatal(err)
	}
	e.checkAllMoved(want)
	if e.local("alice")[rel] != sha(next) {
		t.Error("new version not moved on the next pass")
	}
}

func TestFileModifiedBeforeDelete(t *testing.T) {
	e := newEnv(t, "alice")
	rel := "IMG_edit.jpg"
	orig, next := data(1, 4000), data(2, 5000)
	e.put("alice", rel, orig, "sha1")
	e.saveBeforeDelete("alice", rel, next)
	sums, err := e.run(e.config())
	if err != nil {
		t.Fatal(err)
	}
	if s := e.summary(sums, "alice"); s.Deferred != 1 {
		t.Errorf("summary %+v", s)
	}
	if e.remote("alice")[rel] != sha(next) {
		t.Fatal("file changed after the copy was deleted on the server (If-Match ignored?)")
	}
	if _, err := e.run(e.config()); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{"alice": {rel: sha(next)}}
	e.checkAllMoved(want)
	loc := e.local("alice")
	if loc[rel] != sha(orig) || loc["IMG_edit (1).jpg"] != sha(next) {
		t.Errorf("want both versions kept: %v", loc)
	}
}

// TestFaults: after each fault and a re-run, every remote file is either
// still on the server or byte-identical in the library, never both missing.
func TestFaults(t *testing.T) {
	cases := []struct {
		name      string
		fault     davtest.Fault
		transient bool // a retry within the pass gets through
	}{
		{name: "GET 500", fault: davtest.Fault{Method: "GET", Path: "IMG_0001.jpg", Status: 500}},
		{name: "GET 503 all", fault: davtest.Fault{Method: "GET", Status: 503}},
		{name: "DELETE 500", fault: davtest.Fault{Method: "DELETE", Path: "VID 0002 with spaces.mp4", Status: 500}},
		{name: "DELETE 503 all", fault: davtest.Fault{Method: "DELETE", Status: 503}},
		{name: "connection drop mid-GET", fault: davtest.Fault{Method: "GET", Path: "big.bin", Drop: true, After: 1 << 20}},
		{name: "connection drop every GET", fault: davtest.Fault{Method: "GET", Drop: true, After: 100}},
		{name: "connection drop on DELETE", fault: davtest.Fault{Method: "DELETE", Drop: true}},
		{name: "PROPFIND 500 on subfolder", fault: davtest.Fault{Method: "PROPFIND", Path: "2024/05", Status: 500}},
		{name: "PROPFIND 503 on source", fault: davtest.Fault{Method: "PROPFIND", User: "bob", Path: "Camera", Status: 503}},
		{name: "transient GET 503", fault: davtest.Fault{Method: "GET", Path: "big.bin", Status: 503, Times: 1}, transient: true},
		{name: "transient drop mid-GET", fault: davtest.Fault{Method: "GET", Path: "big.bin", Drop: true, After: 3 << 20, Times: 2}, transient: true},
		{name: "DELETE carried out, answer lost", fault: davtest.Fault{Method: "DELETE", Path: "hash#tag.jpg", Lose: true, Times: 1}, transient: true},
		{name: "GET carried out, answer lost", fault: davtest.Fault{Method: "GET", Lose: true}},
		{name: "transient DELETE 500", fault: davtest.Fault{Method: "DELETE", Status: 500, Times: 2}, transient: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "alice", "bob")
			for i, u := range []string{"alice", "bob"} {
				fill(e, u, uint64(i)*100)
				e.put(u, "big.bin", data(uint64(50+i), 8<<20), "sha1")
			}
			want := e.snapshot()
			f := tc.fault
			e.srv.AddFault(&f)
			_, err := e.run(e.config())
			if tc.transient && err != nil {
				t.Errorf("transient fault: want success after retries, got %v", err)
			}
			if !tc.transient && err == nil {
				t.Errorf("fault %s: want an error", tc.name)
			}
			e.checkNoLoss(want)
			e.srv.ClearFaults()
			if _, err := e.run(e.config()); err != nil {
				t.Fatalf("re-run: %v", err)
			}
			e.checkAllMoved(want)
		})
	}
}

func TestWrongPasswordOtherUsersSync(t *testing.T) {
	e := newEnv(t, "alice", "bob", "carol", "dave") // dave has no InstantUpload folder
	for i, u := range []string{"alice", "bob", "carol"} {
		e.put(u, "a.jpg", data(uint64(i), 1000), "sha1")
		e.put(u, "sub/b.jpg", data(uint64(i+10), 2000), "")
	}
	want := e.snapshot()
	secretFile := filepath.Join(t.TempDir(), "carol.secret")
	if err := os.WriteFile(secretFile, []byte(e.users["carol"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"NC_URL": e.srv.URL, "NC_USERS": "alice, bob,carol,dave", "LIBRARY_ROOT": e.lib, "ONCE": "true",
		"NC_PASS_dave":  e.users["dave"],
		"NC_PASS_alice": e.users["alice"], "NC_PASS_bob": "wrong-Pa55word", "NC_PASS_carol_FILE": secretFile,
		"LOG_FORMAT": "json",
	}
	var logs bytes.Buffer
	err := syncer.Main(context.Background(), nil, func(k string) string { return env[k] }, &logs)
	t.Log(logs.String())
	if err == nil || !strings.Contains(err.Error(), "bob") || !errors.Is(err, syncer.ErrAuth) {
		t.Fatalf("want an auth error for bob, got %v", err)
	}
	if !strings.Contains(err.Error(), "user dave") || !errors.Is(err, syncer.ErrNotFound) {
		t.Errorf("want a not-found error for dave's missing folder, got %v", err)
	}
	if syncer.ExitCode(err) != 1 {
		t.Errorf("exit code %d", syncer.ExitCode(err))
	}
	for _, secret := range []string{e.users["alice"], "wrong-Pa55word", e.users["carol"]} {
		if strings.Contains(logs.String(), secret) || strings.Contains(err.Error(), secret) {
			t.Errorf("a password was logged")
		}
	}
	e.checkNoLoss(want)
	if len(e.remote("alice")) != 0 || len(e.remote("carol")) != 0 {
		t.Error("alice's or carol's files were not moved")
	}
	if len(e.remote("bob")) != 2 {
		t.Error("bob's files are not all still on the server")
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	e := newEnv(t, "alice")
	fill(e, "alice", 1)
	want := e.snapshot()
	cfg := e.config()
	cfg.DryRun = true
	sums, err := e.run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s := e.summary(sums, "alice"); s.Files != len(oddNames) {
		t.Errorf("summary %+v", s)
	}
	if got := e.remote("alice"); len(got) != len(want["alice"]) {
		t.Errorf("dry run changed the server: %d files left", len(got))
	}
	if _, err := os.Stat(e.lib); !os.IsNotExist(err) {
		t.Errorf("dry run created the library: %v", err)
	}
	if e.srv.Count("GET") != 0 || e.srv.Count("DELETE") != 0 {
		t.Errorf("dry run sent GET/DELETE: %d/%d", e.srv.Count("GET"), e.srv.Count("DELETE"))
	}
}

// TestRcloneServer runs the happy path against `rclone serve webdav`.
func TestRcloneServer(t *testing.T) {
	if _, err := davtest.RcloneBin(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	users := map[string]string{"alice": "pw-alice", "bob smith": "pw-bob"}
	root := filepath.Join(t.TempDir(), "rclone-root")
	rc, err := davtest.StartRclone(context.Background(), root, users)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	lib := filepath.Join(t.TempDir(), "library")
	want := map[string]map[string]string{}
	for u := range users {
		want[u] = map[string]string{}
		for i, n := range oddNames {
			b := data(uint64(i), 500+i*1000)
			p := filepath.Join(root, u, source, filepath.FromSlash(n))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, mtimeFor(n), mtimeFor(n)); err != nil {
				t.Fatal(err)
			}
			want[u][n] = sha(b)
		}
	}
	cfg := &syncer.Config{URL: rc.URL, SourceDir: source, TargetDir: "Smartphones/{user}", LibraryRoot: lib,
		FileMode: 0o644, DirMode: 0o755, Concurrency: 4, Once: true, Timeout: 30e9, Retries: 1, RetryBackoff: 1e7}
	for _, u := range sortedKeys(users) {
		cfg.Users = append(cfg.Users, syncer.User{Name: u, Password: syncer.Secret(users[u])})
	}
	sums, err := syncer.New(cfg, testLogger(t)).RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for u, files := range want {
		rem, err := davtest.HashTree(filepath.Join(root, u, source))
		if err != nil {
			t.Fatal(err)
		}
		if len(rem) != 0 {
			t.Errorf("%s: left on the server: %v", u, sortedKeys(rem))
		}
		loc, err := davtest.HashTree(filepath.Join(lib, "Smartphones", u))
		if err != nil {
			t.Fatal(err)
		}
		for rel, sum := range files {
			if loc[rel] != sum {
				t.Errorf("%s: %s missing or different in the library", u, rel)
				continue
			}
			st, _ := os.Stat(filepath.Join(lib, "Smartphones", u, filepath.FromSlash(rel)))
			if !st.ModTime().Equal(mtimeFor(rel)) {
				t.Errorf("%s: mtime %s, want %s", rel, st.ModTime().UTC(), mtimeFor(rel))
			}
		}
	}
	for _, s := range sums {
		if s.Files != len(oddNames) || s.Failed != 0 {
			t.Errorf("summary %+v", s)
		}
	}
}
