// Package preflighttest runs a service binary with each of our own
// misconfigurations (wrong bucket, wrong queue, wrong secret, missing
// credentials, unreachable endpoint) against the real test servers and
// checks that it refuses to start: a non-zero exit within 10 s (the
// operator's patience, issue 18) with one line that names the variable,
// and no secret in its output.
package preflighttest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
)

// Deadline is how soon a misconfigured service must have exited.
const Deadline = 10 * time.Second

// WrongSecret is the secret of the "wrong secret" case; it must never be
// printed.
const WrongSecret = "wrong-secret-must-not-be-printed"

// Case is one misconfiguration.
type Case struct {
	Name string
	// Env overrides the base environment; an empty value unsets.
	Env map[string]string
	// Var is the variable the error line must name; Want more words it
	// must hold.
	Var  string
	Want []string
}

// ClosedPort is a local TCP address nothing listens on.
func ClosedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// Cases are the misconfigurations every service that uses the bucket must
// refuse; with queue, also a wrong WORK_QUEUE_URL (queue names the
// variable to break: WORK_QUEUE_URL or RESULTS_QUEUE_URL).
func Cases(t testing.TB, e *awstest.Env, queue string) []Case {
	closed := ClosedPort(t)
	cs := []Case{
		{Name: "wrong bucket", Env: map[string]string{"S3_BUCKET": "no-such-bucket-here"}, Var: "S3_BUCKET", Want: []string{`"no-such-bucket-here" does not exist`, e.S3Endpoint}},
		{Name: "wrong secret", Env: map[string]string{"AWS_SECRET_ACCESS_KEY": WrongSecret}, Var: "AWS_SECRET_ACCESS_KEY", Want: []string{"SignatureDoesNotMatch"}},
		{Name: "unknown access key", Env: map[string]string{"AWS_ACCESS_KEY_ID": "AKIDNOTKNOWNHERE"}, Var: "AWS_ACCESS_KEY_ID", Want: []string{"InvalidAccessKeyId"}},
		{Name: "missing credentials", Env: map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": ""}, Var: "AWS_ACCESS_KEY_ID", Want: []string{"no AWS credentials"}},
		{Name: "unreachable endpoint", Env: map[string]string{"S3_ENDPOINT": closed}, Var: "S3_ENDPOINT", Want: []string{"connection refused", closed}},
	}
	if queue != "" {
		missing := strings.TrimSuffix(e.SQSEndpoint, "/") + "/000000000000/no-such-queue-here"
		cs = append(cs,
			Case{Name: "wrong queue", Env: map[string]string{queue: missing}, Var: queue, Want: []string{"does not exist"}},
			Case{Name: "unreachable queue endpoint", Env: map[string]string{"SQS_ENDPOINT": closed}, Var: "SQS_ENDPOINT", Want: []string{"connection refused"}},
		)
	}
	return cs
}

// Env merges base (KEY=value) and overrides; an empty override unsets.
func Env(base []string, over map[string]string) []string {
	m := map[string]string{}
	for _, kv := range base {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	for k, v := range over {
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// Run runs bin args with base+case environment for each case and checks
// the refusal.
func Run(t *testing.T, e *awstest.Env, bin string, args []string, base []string, cases []Case) {
	t.Helper()
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.Name, " ", "_"), func(t *testing.T) {
			env := Env(base, c.Env)
			// A generous outer limit: the check below is the spec's 10 s.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = env
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			err := cmd.Run()
			took := time.Since(start)
			out := stdout.String() + stderr.String()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
				t.Fatalf("%s: exit %v, want a non-zero status\n%s", c.Name, err, out)
			}
			if took >= Deadline {
				t.Errorf("%s: exited after %s, want < %s", c.Name, took.Round(time.Millisecond), Deadline)
			}
			line := errorLine(stderr.String(), c.Var)
			if line == "" {
				t.Fatalf("%s: no line names %s:\n%s", c.Name, c.Var, out)
			}
			for _, w := range c.Want {
				if !strings.Contains(line, w) {
					t.Errorf("%s: line %q lacks %q", c.Name, line, w)
				}
			}
			if strings.Contains(out, WrongSecret) || strings.Contains(out, e.SecretKey) {
				t.Errorf("%s: a secret was printed:\n%s", c.Name, out)
			}
			t.Logf("%s: exit %d after %s: %s", c.Name, ee.ExitCode(), took.Round(time.Millisecond), line)
		})
	}
}

// errorLine is the line of out that carries "<VAR>: ", the service's
// error line.
func errorLine(out, v string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, v+": ") {
			return l
		}
	}
	return ""
}
