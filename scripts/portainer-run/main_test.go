package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestJobImage(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	none := env(nil)
	trigger, sync := Jobs["trigger"], Jobs["sync"]
	for _, c := range []struct {
		getenv   func(string) string
		tmpl     string
		job      Job
		want     string
		wantFail bool
	}{
		{none, "registry.invalid/me/hevc/result-downloader:1.2", trigger, "registry.invalid/me/hevc/sqs-dispatcher:1.2", false},
		{none, "registry.invalid:5000/result-downloader", trigger, "registry.invalid:5000/sqs-dispatcher", false},
		{none, "result-downloader:dev", trigger, "sqs-dispatcher:dev", false},
		{none, "registry.invalid/me/hevc/downloader:1.2", trigger, "", true},
		{none, "registry.invalid/me/hevc/result-downloader@sha256:abc", trigger, "", true},
		{none, "registry.invalid/me/hevc/nextcloud-syncer@sha256:abc", sync, "registry.invalid/me/hevc/nextcloud-syncer@sha256:abc", false},
		{env(map[string]string{"IMAGE_REGISTRY": "registry.invalid/x/", "IMAGE_TAG": "9"}), "whatever", trigger, "registry.invalid/x/sqs-dispatcher:9", false},
		{env(map[string]string{"IMAGE_REGISTRY": "registry.invalid/x"}), "whatever", sync, "registry.invalid/x/nextcloud-syncer:latest", false},
	} {
		got, err := jobImage(c.getenv, c.tmpl, c.job)
		if c.wantFail != (err != nil) || got != c.want {
			t.Errorf("jobImage(%s, %s) = %q, %v; want %q (fail %v)", c.tmpl, c.job.Name, got, err, c.want, c.wantFail)
		}
	}
}

func TestDemux(t *testing.T) {
	var in bytes.Buffer
	for _, f := range []struct {
		stream byte
		s      string
	}{{1, "out 1\n"}, {2, "err 1\n"}, {1, strings.Repeat("x", 70000)}, {2, ""}} {
		hdr := [8]byte{f.stream}
		binary.BigEndian.PutUint32(hdr[4:], uint32(len(f.s)))
		in.Write(hdr[:])
		in.WriteString(f.s)
	}
	var so, se bytes.Buffer
	if err := demux(&in, &so, &se); err != nil {
		t.Fatal(err)
	}
	if so.String() != "out 1\n"+strings.Repeat("x", 70000) || se.String() != "err 1\n" {
		t.Errorf("stdout %d bytes, stderr %q", so.Len(), se.String())
	}

	// A TTY container's log is not multiplexed.
	so.Reset()
	if err := demux(strings.NewReader("plain text\n"), &so, &se); err != nil || so.String() != "plain text\n" {
		t.Errorf("raw stream: %q %v", so.String(), err)
	}
	// A truncated frame is an error, not silence.
	if err := demux(bytes.NewReader([]byte{1, 0, 0, 0, 0, 0, 0, 9, 'a'}), &so, &se); err == nil {
		t.Errorf("truncated frame accepted")
	}
	// No output at all.
	if err := demux(strings.NewReader(""), &so, &se); err != nil {
		t.Errorf("empty stream: %v", err)
	}
}

func TestContainerConfigOverridesTemplate(t *testing.T) {
	tmpl := &ContainerInspect{}
	tmpl.Config.Env = []string{"PATH=/bin", "ONCE=false", "A=1", "HOME=/root"}
	tmpl.Config.User = "1000:1000"
	tmpl.HostConfig = HostConfig{Binds: []string{"/p:/library"}, AutoRemove: true}
	cfg := containerConfig(options{stack: "s", job: Jobs["sync"], args: []string{"--dry-run"}}, tmpl, "img")
	if strings.Join(cfg.Env, " ") != "ONCE=true A=1" {
		t.Errorf("env %v", cfg.Env)
	}
	if strings.Join(cfg.Cmd, " ") != "--dry-run" || cfg.HostConfig.NetworkMode != "s_default" || cfg.HostConfig.AutoRemove {
		t.Errorf("cmd %v network %q autoremove %v", cfg.Cmd, cfg.HostConfig.NetworkMode, cfg.HostConfig.AutoRemove)
	}
}

// A name clash is a conflict whether Docker (409) or Podman's compatible
// API (500, "already in use") reports it: either way the leftover job
// container is inspected and, when stopped, removed.
func TestNameClashIsConflict(t *testing.T) {
	for _, e := range []*APIError{
		{Status: 409, Message: "Conflict. The container name is already in use"},
		{Status: 500, Message: `container create: creating container storage: the container name "hevc-encoder-process" is already in use by 40f1. You have to remove that container to be able to reuse that name: that name is already in use`},
	} {
		if !errors.Is(e, ErrConflict) {
			t.Errorf("%d %q: not ErrConflict", e.Status, e.Message)
		}
	}
	if errors.Is(&APIError{Status: 500, Message: "no space left on device"}, ErrConflict) {
		t.Error("any 500 taken for a conflict")
	}
}
