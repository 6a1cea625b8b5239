package main

import (
	"os"
	"strings"
	"testing"
)

// Issue 18, point 6: `make bench` on a fresh machine failed with "stat
// /usr/bin/aws: no such file or directory" because scripts/deps.sh saw
// another aws on PATH and installed nothing. The script must check for,
// and install, the very CLI the benchmark runs.
func TestDepsInstallTheAWSCLIWeRun(t *testing.T) {
	b, err := os.ReadFile("../../scripts/deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, "[ -x "+osAWS+" ]") || !strings.Contains(s, "apt-get install -y -qq awscli") {
		t.Errorf("scripts/deps.sh does not check for %s and install the awscli package when it is missing", osAWS)
	}
	bench := ""
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "bench)") {
			bench = l
		}
	}
	if !strings.Contains(bench, "os_aws") {
		t.Errorf("`scripts/deps.sh bench` does not install the AWS CLI: %q", bench)
	}
}
