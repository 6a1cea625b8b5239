package syncer_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/services/nextcloud-syncer/syncer"
)

// A setup under which no user can be synced ends the service at start,
// within 10 s, with status 2 and the variable to fix named; nothing is
// moved or deleted. (One user failing alone does not:
// TestWrongPasswordOtherUsersSync.)
func TestPreflightNamesTheVariable(t *testing.T) {
	e := newEnv(t, "alice", "bob")
	e.put("alice", "a.jpg", data(1, 1000), "")
	e.put("bob", "b.jpg", data(2, 1000), "")
	want := e.snapshot()

	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr
	}()
	// Accepts connections and never answers (a firewall that drops, a
	// server stuck at start).
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	// A web server that is not WebDAV (the Nextcloud host's landing page).
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<html>welcome</html>"))
	}))
	defer web.Close()

	base := map[string]string{
		"NC_URL": e.srv.URL, "NC_USERS": "alice,bob", "LIBRARY_ROOT": e.lib,
		"NC_PASS_alice": e.users["alice"], "NC_PASS_bob": e.users["bob"],
		"INTERVAL": "1s", "LOG_FORMAT": "json",
	}
	cases := []struct {
		name string
		set  map[string]string
		want []string
	}{
		{"every password refused", map[string]string{"NC_PASS_alice": "wrong-Pa55word", "NC_PASS_bob": "wrong-Pa55word"},
			[]string{"NC_PASS_alice:", "NC_PASS_bob:", "HTTP 401"}},
		{"no user has the folder", map[string]string{"NC_SOURCE_DIR": "InstantUpload/Camra"},
			[]string{"NC_SOURCE_DIR:", `"InstantUpload/Camra"`}},
		{"nothing listens", map[string]string{"NC_URL": closed}, []string{"NC_URL: cannot reach", "connection refused"}},
		{"no answer", map[string]string{"NC_URL": "http://" + silent.Addr().String()}, []string{"NC_URL: no answer from", "within 8s"}},
		{"not WebDAV", map[string]string{"NC_URL": web.URL}, []string{"NC_URL:", "HTTP 200", "WebDAV"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range c.set {
				env[k] = v
			}
			var logs bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// Not --once: a long-running syncer must end by itself.
			err := syncer.Main(ctx, nil, func(k string) string { return env[k] }, &logs)
			if ctx.Err() != nil {
				t.Fatalf("still running after 30 s; logs:\n%s", logs.String())
			}
			if !errors.Is(err, syncer.ErrConfig) || syncer.ExitCode(err) != 2 {
				t.Fatalf("want a configuration error (exit 2), got %v (exit %d)", err, syncer.ExitCode(err))
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is more than one line: %q", err)
			}
			for _, secret := range []string{e.users["alice"], e.users["bob"], "wrong-Pa55word"} {
				if strings.Contains(logs.String()+err.Error(), secret) {
					t.Error("a password was logged")
				}
			}
			e.checkNoLoss(want)
			if len(e.remote("alice")) != 1 || len(e.remote("bob")) != 1 {
				t.Error("a remote file was moved or deleted")
			}
		})
	}
}
