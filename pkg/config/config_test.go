package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEnvFlagsSecretsAndValidation(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(secret, []byte("s3cret\n"), 0o600)
	env := map[string]string{"NAME": "from-env", "N": "3", "PASS_FILE": secret, "SIZE": "16MiB", "WAIT": "5s"}
	var (
		name, pass string
		n          int
		size       int64
		wait       time.Duration
		on         bool
	)
	s := New("svc", "test")
	s.SetGetenv(func(k string) string { return env[k] })
	s.String(&name, "NAME", "def", "a name")
	s.Int(&n, "N", 1, "a number")
	s.String(&pass, "PASS", "", "a secret", Secret(), Required())
	s.Int64(&size, "SIZE", 0, "a size")
	s.Duration(&wait, "WAIT", time.Second, "a wait")
	s.Bool(&on, "ON", false, "a switch")
	if err := s.Parse([]string{"--n", "7", "--on"}); err != nil {
		t.Fatal(err)
	}
	if name != "from-env" || n != 7 || pass != "s3cret" || size != 16<<20 || wait != 5*time.Second || !on {
		t.Fatalf("got %q %d %q %d %v %v", name, n, pass, size, wait, on)
	}
	var help strings.Builder
	s.PrintHelp(&help)
	if strings.Contains(help.String(), "s3cret") || !strings.Contains(help.String(), "PASS_FILE") {
		t.Fatalf("help leaks the secret or omits _FILE:\n%s", help.String())
	}

	s2 := New("svc", "test")
	s2.SetGetenv(func(k string) string { return map[string]string{"N": "x"}[k] })
	s2.Int(&n, "N", 1, "a number")
	if err := s2.Parse(nil); err == nil || !strings.Contains(err.Error(), "N:") {
		t.Fatalf("bad int: %v", err)
	}
	s3 := New("svc", "test")
	s3.SetGetenv(func(string) string { return "" })
	s3.String(&pass, "PASS", "", "a secret", Required())
	s3.Check(func() error { return errors.New("CHECK failed") })
	err := s3.Parse(nil)
	if err == nil || !strings.Contains(err.Error(), "PASS is required") || !strings.Contains(err.Error(), "CHECK failed") {
		t.Fatalf("required/check: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"123": 123, "16K": 16 << 10, "8MiB": 8 << 20, "1G": 1 << 30, "5mb": 5 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	if _, err := ParseSize("lots"); err == nil {
		t.Error("accepted junk")
	}
}
