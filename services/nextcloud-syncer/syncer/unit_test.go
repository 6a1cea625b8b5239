package syncer

import (
	"hash/adler32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseChecksums(t *testing.T) {
	got := ParseChecksums(" SHA1:abc  md5:DEF ADLER32:1a2b\n bogus :x ")
	want := []Checksum{{"SHA1", "abc"}, {"MD5", "DEF"}, {"ADLER32", "1a2b"}}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %v want %v", i, got[i], want[i])
		}
	}
	b := []byte("x")
	sum := adler32.New()
	sum.Write(b)
	if !matches("ADLER32", sum.Sum(nil), "0x00790079") || !matches("ADLER32", sum.Sum(nil), "790079") {
		t.Error("adler32 with or without leading zeros")
	}
}

func TestCollisionName(t *testing.T) {
	for in, want := range map[string]string{
		"/a/IMG.jpg":      "/a/IMG (2).jpg",
		"/a/x.tar.gz":     "/a/x.tar (2).gz",
		"/a/.hidden":      "/a/.hidden (2)",
		"/a/no-extension": "/a/no-extension (2)",
	} {
		if got := collisionName(in, 2); got != want {
			t.Errorf("%s: %s want %s", in, got, want)
		}
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	sec := filepath.Join(dir, "s")
	os.WriteFile(sec, []byte("from-file\r\n"), 0o600)
	env := map[string]string{
		"NC_URL": "https://cloud.example.com/nc", "NC_USERS": "alice,bob.smith,Carol-X", "LIBRARY_ROOT": dir,
		"NC_PASS_alice": "a", "NC_PASS_bob_smith_FILE": sec, "NC_PASS_CAROL_X": "c",
		"FILE_MODE": "0640", "DIR_MODE": "750", "CONCURRENCY": "8", "ONCE": "1",
	}
	cfg, _, err := LoadConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Users) != 3 || cfg.Users[1].Password.Reveal() != "from-file" || cfg.Users[2].Password.Reveal() != "c" {
		t.Errorf("users %+v", cfg.Users)
	}
	if cfg.FileMode != 0o640 || cfg.DirMode != 0o750 || cfg.Concurrency != 8 || !cfg.Once {
		t.Errorf("%+v", cfg)
	}
	if got := cfg.Target("alice"); got != filepath.Join(dir, "Smartphones", "alice") {
		t.Errorf("target %s", got)
	}
	if s := strings.Join([]string{cfg.Users[0].Password.String()}, ""); s != "***" {
		t.Errorf("secret printed as %q", s)
	}
	delete(env, "NC_PASS_CAROL_X")
	env["NC_TARGET_DIR"] = "../escape/{user}"
	_, _, err = LoadConfig([]string{"--concurrency", "0"}, func(k string) string { return env[k] })
	for _, want := range []string{"NC_PASS_Carol-X", "NC_TARGET_DIR", "CONCURRENCY"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error naming %s, got %v", want, err)
		}
	}
	if ExitCodeOf(err) != 2 {
		t.Errorf("config error exit code %d", ExitCode(err))
	}
}

func ExitCodeOf(err error) int { return ExitCode(err) }

func TestREADMEListsEveryVariable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	md := NewConfigSet(&Config{}, func(string) string { return "" }).Markdown()
	for _, line := range strings.Split(md, "\n")[2:] {
		if f := strings.Split(line, "|"); len(f) > 2 {
			if v := strings.TrimSpace(f[1]); !strings.Contains(string(b), v) {
				t.Errorf("README.md does not document %s", v)
			}
		}
	}
}
