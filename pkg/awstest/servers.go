package awstest

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Pinned versions of the test servers.
const (
	MinioModule  = "github.com/minio/minio"
	MinioVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"
	SQSPackage   = "local-aws-sqs"
	SQSVersion   = "2.0.2"
)

// CacheDir is where installs are cached: $AWSTEST_CACHE, else
// $XDG_CACHE_HOME/hevc-encoder (~/.cache/hevc-encoder).
func CacheDir() (string, error) {
	if d := os.Getenv("AWSTEST_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	return filepath.Join(d, "hevc-encoder"), nil
}

// withLock runs fn holding an exclusive lock on name in the cache dir, so
// that test binaries of several packages install only once.
func withLock(name string, fn func() error) error {
	dir, err := CacheDir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cache dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("open lock: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

func goEnv(name string) string {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// minioIsPinned reports whether the binary at path was built from the
// pinned MinIO module version.
func minioIsPinned(path string) bool {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return false
	}
	return info.Main.Path == MinioModule && info.Main.Version == MinioVersion
}

var installMu sync.Mutex

// MinioBinary returns the path of the pinned MinIO server: $AWSTEST_MINIO if
// set, else minio in GOBIN, GOPATH/bin or PATH when built from the pinned
// version, else it runs `go install` (about 2.5 minutes on 2 cores, once).
func MinioBinary(ctx context.Context, logf func(string, ...any)) (string, error) {
	if p := os.Getenv("AWSTEST_MINIO"); p != "" {
		return p, nil
	}
	installMu.Lock()
	defer installMu.Unlock()
	gobin := goEnv("GOBIN")
	if gobin == "" {
		gopath := goEnv("GOPATH")
		if gopath == "" {
			home, _ := os.UserHomeDir()
			gopath = filepath.Join(home, "go")
		}
		gobin = filepath.Join(strings.Split(gopath, string(os.PathListSeparator))[0], "bin")
	}
	target := filepath.Join(gobin, "minio")
	find := func() string {
		if minioIsPinned(target) {
			return target
		}
		if p, err := exec.LookPath("minio"); err == nil && minioIsPinned(p) {
			return p
		}
		return ""
	}
	if p := find(); p != "" {
		return p, nil
	}
	var found string
	err := withLock("minio", func() error {
		if found = find(); found != "" {
			return nil
		}
		if _, err := exec.LookPath("go"); err != nil {
			return fmt.Errorf("minio not installed and no go tool to install it: %w", err)
		}
		logf("awstest: installing %s@%s (a few minutes, once)", MinioModule, MinioVersion)
		ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "install", MinioModule+"@"+MinioVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOWORK=off", "GOFLAGS=-buildvcs=false")
		cmd.Dir = os.TempDir()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go install %s@%s: %w\n%s", MinioModule, MinioVersion, err, tail(out, 4000))
		}
		if !minioIsPinned(target) {
			return fmt.Errorf("go install %s@%s did not produce %s", MinioModule, MinioVersion, target)
		}
		found = target
		return nil
	})
	return found, err
}

// SQSServerDir returns the node_modules directory holding the pinned
// local-aws-sqs, installing it with npm into <cache dir>/npm when missing.
func SQSServerDir(ctx context.Context, logf func(string, ...any)) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	prefix := filepath.Join(cache, "npm") // where scripts/deps.sh installs it too
	modules := filepath.Join(prefix, "node_modules")
	installed := func() bool {
		b, err := os.ReadFile(filepath.Join(modules, SQSPackage, "package.json"))
		if err != nil {
			return false
		}
		var pj struct{ Version string }
		return json.Unmarshal(b, &pj) == nil && pj.Version == SQSVersion
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("node is needed for %s: %w", SQSPackage, err)
	}
	if installed() {
		return modules, nil
	}
	err = withLock("npm-"+SQSPackage, func() error {
		if installed() {
			return nil
		}
		if _, err := exec.LookPath("npm"); err != nil {
			return fmt.Errorf("npm is needed to install %s: %w", SQSPackage, err)
		}
		logf("awstest: installing npm %s@%s into %s", SQSPackage, SQSVersion, prefix)
		if err := os.MkdirAll(prefix, 0o755); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "install", "--prefix", prefix, "--no-audit", "--no-fund",
			"--save-exact", SQSPackage+"@"+SQSVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("npm install %s@%s: %w\n%s", SQSPackage, SQSVersion, err, tail(out, 4000))
		}
		if !installed() {
			return fmt.Errorf("npm install %s@%s: package not found afterwards", SQSPackage, SQSVersion)
		}
		return nil
	})
	return modules, err
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// process is a server started by the harness.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProcess(name string, cmd *exec.Cmd, logPath string) (*process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server dies with the test process even when Close is not reached.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logTail is the end of the server's output, for error messages.
func (p *process) logTail() string {
	b, _ := os.ReadFile(p.log)
	return tail(b, 3000)
}

// stop ends the server: SIGTERM, then SIGKILL after a grace period.
func (p *process) stop() {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitHTTP polls url until it answers 2xx, the process exits or the
// timeout passes.
func waitHTTP(ctx context.Context, p *process, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if p.exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.logTail())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s after %s: %v\n%s", p.name, url, timeout, err, p.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// sqsPatches fix three deviations of local-aws-sqs 2.0.2 from SQS that the
// pipeline's tests would notice:
//   - ChangeMessageVisibility went through the receive path and counted as a
//     receive (ApproximateReceiveCount+1), so a processor's heartbeats would
//     push a message into the DLQ; on SQS only ReceiveMessage counts.
//   - ApproximateNumberOfMessages counted in-flight messages too; on SQS it
//     counts the visible ones only.
//   - A long poll returned only once MaxNumberOfMessages messages were there
//     (or at the timeout); SQS returns as soon as there is one.
var sqsPatches = []struct{ old, new string }{
	{
		"if(r.length==e){clearInterval(c),clearTimeout(n),o();break}}},10)",
		"if(r.length==e)break}r.length&&(clearInterval(c),clearTimeout(n),o())},10)",
	},
	{
		"let n=Number(t.record.attributes.ApproximateReceiveCount)+1;",
		"let n=Number(t.record.attributes.ApproximateReceiveCount)+(i?0:1);",
	},
	{
		"ApproximateNumberOfMessages:String(S(this,E).filter(o=>!o.delayed).length)",
		"ApproximateNumberOfMessages:String(S(this,E).filter(o=>!o.delayed&&o.visible).length)",
	},
}

// patchedSQSModule writes dist/index.awstest.js next to the package's
// dist/index.js with sqsPatches applied and returns its path.
func patchedSQSModule(modules string) (string, error) {
	dist := filepath.Join(modules, SQSPackage, "dist")
	src, err := os.ReadFile(filepath.Join(dist, "index.js"))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", SQSPackage, err)
	}
	s := string(src)
	for _, p := range sqsPatches {
		if n := strings.Count(s, p.old); n != 1 {
			return "", fmt.Errorf("patch %s@%s: found %d occurrences of %q, want 1", SQSPackage, SQSVersion, n, p.old)
		}
		s = strings.Replace(s, p.old, p.new, 1)
	}
	out := filepath.Join(dist, "index.awstest.js")
	if b, err := os.ReadFile(out); err == nil && string(b) == s {
		return out, nil
	}
	tmp, err := os.CreateTemp(dist, ".index.awstest-*.js")
	if err != nil {
		return "", err
	}
	if _, err := tmp.WriteString(s); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return out, nil
}
