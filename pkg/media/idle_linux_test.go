package media

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestStartIdle(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	if err := startIdle(cmd); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if p := policy(t, filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "sched")); p != "5" {
		t.Errorf("child policy %q, want 5 (SCHED_IDLE)", p)
	}
	if p := policy(t, "/proc/self/sched"); p != "0" {
		t.Errorf("our own policy %q, want 0 (normal)", p)
	}
}

func policy(t *testing.T, file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "policy" {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no policy in %s", file)
	return ""
}
