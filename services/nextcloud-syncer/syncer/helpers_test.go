package syncer_test

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"hash/adler32"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/services/nextcloud-syncer/internal/davtest"
	"github.com/hevc-encoder/hevc-encoder/services/nextcloud-syncer/syncer"
	"github.com/rs/zerolog"
)

const source = "InstantUpload/Camera"

// env is one Nextcloud-like server, a library and a config for its users.
type env struct {
	t     *testing.T
	srv   *davtest.Server
	lib   string
	users map[string]string
}

func newEnv(t *testing.T, users ...string) *env {
	t.Helper()
	m := map[string]string{}
	for _, u := range users {
		m[u] = "app-pass-" + u + "-S3cr3t"
	}
	srv, err := davtest.New(filepath.Join(t.TempDir(), "nextcloud"), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, lib: filepath.Join(t.TempDir(), "library"), users: m}
}

func (e *env) config() *syncer.Config {
	cfg := &syncer.Config{
		URL: e.srv.URL, SourceDir: source, TargetDir: "Smartphones/{user}", LibraryRoot: e.lib,
		FileMode: 0o644, DirMode: 0o755, Concurrency: 4, Once: true,
		Timeout: 30 * time.Second, Retries: 2, RetryBackoff: 10 * time.Millisecond,
	}
	for _, u := range sortedKeys(e.users) {
		cfg.Users = append(cfg.Users, syncer.User{Name: u, Password: syncer.Secret(e.users[u])})
	}
	return cfg
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).With().Str("service", syncer.Service).Logger()
}

func (e *env) run(cfg *syncer.Config) ([]syncer.Summary, error) {
	e.t.Helper()
	sums, err := syncer.New(cfg, testLogger(e.t)).RunOnce(context.Background())
	for _, s := range sums {
		e.t.Logf("summary %s: files=%d bytes=%d skipped=%d deferred=%d failed=%d err=%v",
			s.User, s.Files, s.Bytes, s.Skipped, s.Deferred, s.Failed, s.Err)
	}
	return sums, err
}

func (e *env) summary(sums []syncer.Summary, user string) syncer.Summary {
	for _, s := range sums {
		if s.User == user {
			return s
		}
	}
	e.t.Fatalf("no summary for %s", user)
	return syncer.Summary{}
}

// put writes a remote file under the source folder with a whole-second
// mtime; sum is "" (no oc:checksums), "sha1", "all" (SHA1 MD5 ADLER32) or
// a literal value to serve.
func (e *env) put(user, rel string, data []byte, sum string) {
	e.t.Helper()
	full := path.Join(source, rel)
	if err := e.srv.WriteFile(user, full, data, mtimeFor(rel)); err != nil {
		e.t.Fatal(err)
	}
	switch sum {
	case "":
	case "sha1":
		h := sha1.Sum(data)
		e.srv.SetChecksum(user, full, "SHA1:"+hex.EncodeToString(h[:]))
	case "all":
		h := sha1.Sum(data)
		e.srv.SetChecksum(user, full, "SHA1:"+hex.EncodeToString(h[:])+" MD5:"+md5hex(data)+" ADLER32:"+adlerHex(data))
	default:
		e.srv.SetChecksum(user, full, sum)
	}
}

// saveBeforeDelete has the server save data as a new version of rel (with
// no checksum) just before the first DELETE of rel arrives: the file
// changed after its copy was verified.
func (e *env) saveBeforeDelete(user, rel string, data []byte) {
	full := source + "/" + rel
	e.srv.AddFault(&davtest.Fault{Method: "DELETE", Path: rel, Times: 1, Hook: func() {
		e.srv.SetChecksum(user, full, "")
		if err := os.WriteFile(e.srv.Path(user, full), data, 0o644); err != nil {
			e.t.Error(err)
		}
	}})
}

// mtimeFor is a distinct whole-second time per name.
func mtimeFor(rel string) time.Time {
	h := sha256.Sum256([]byte(rel))
	return time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC).Add(time.Duration(h[0])*time.Hour + time.Duration(h[1])*time.Minute)
}

func data(seed uint64, n int) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	rand.NewChaCha8(s).Read(b)
	return b
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// remote is the sha256 of every file left in the user's source folder.
func (e *env) remote(user string) map[string]string {
	e.t.Helper()
	m, err := e.srv.Files(user, source)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) libDir(user string) string { return filepath.Join(e.lib, "Smartphones", user) }

// local is the sha256 of every file in the user's library folder.
func (e *env) local(user string) map[string]string {
	e.t.Helper()
	m, err := davtest.HashTree(e.libDir(user))
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// snapshot is, per user, the content of every remote file.
func (e *env) snapshot() map[string]map[string]string {
	out := map[string]map[string]string{}
	for u := range e.users {
		out[u] = e.remote(u)
	}
	return out
}

var suffixRE = regexp.MustCompile(`^(.*) \(\d+\)(\.[^./]*)?$`)

// sameName reports whether library path got is rel or a suffixed rel.
func sameName(got, rel string) bool {
	if got == rel {
		return true
	}
	m := suffixRE.FindStringSubmatch(got)
	return m != nil && m[1]+m[2] == rel
}

// checkNoLoss asserts the invariant: every file in want is still on the
// server with that content or byte-identical in the library under its name
// (or a suffixed name). It also checks that no temp file is left.
func (e *env) checkNoLoss(want map[string]map[string]string) {
	e.t.Helper()
	for u, files := range want {
		rem, loc := e.remote(u), e.local(u)
		for rel, sum := range files {
			if rem[rel] == sum {
				continue
			}
			found := false
			for lp, ls := range loc {
				if ls == sum && sameName(lp, rel) {
					found = true
					break
				}
			}
			if !found {
				e.t.Errorf("LOST: user %s file %s (sha256 %s) is neither on the server nor in the library", u, rel, sum[:12])
			}
		}
		for lp, ls := range loc {
			if !strings.HasPrefix(path.Base(lp), ".hevc-tmp-") {
				continue
			}
			moved := false // a user's file of that name, moved here
			for rel, sum := range files {
				moved = moved || (ls == sum && sameName(lp, rel))
			}
			if !moved {
				e.t.Errorf("temp file left in the library: %s/%s", u, lp)
			}
		}
	}
}

// checkAllMoved asserts that the server's source folders are empty (the
// folders themselves still exist) and every file is in the library.
func (e *env) checkAllMoved(want map[string]map[string]string) {
	e.t.Helper()
	e.checkNoLoss(want)
	for u := range want {
		if rem := e.remote(u); len(rem) != 0 {
			e.t.Errorf("user %s: files left on the server: %v", u, sortedKeys(rem))
		}
		if _, err := os.Stat(e.srv.Path(u, source)); err != nil {
			e.t.Errorf("user %s: source folder removed: %v", u, err)
		}
	}
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func adlerHex(b []byte) string { return strconv.FormatUint(uint64(adler32.Checksum(b)), 16) }
