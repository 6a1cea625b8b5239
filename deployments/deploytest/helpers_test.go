package deploytest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Services are the five programs, each services/<name>/ with its own image.
var Services = []string{"nextcloud-syncer", "s3-uploader", "sqs-dispatcher", "hevc-processor", "result-downloader"}

var (
	rootOnce sync.Once
	rootDir  string
	tmpDir   string
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "deploytest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// repoRoot is the repository root (the directory with go.work).
func repoRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		d, err := filepath.Abs("../..")
		if err == nil {
			if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
				rootDir = d
			}
		}
	})
	if rootDir == "" {
		t.Fatal("repository root (with go.work) not found two levels up")
	}
	return rootDir
}

func inCI() bool { return os.Getenv("CI") == "true" }

// needTool returns the path of tool; a missing tool skips the test, except
// under CI=true where it fails.
func needTool(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if inCI() {
			t.Fatalf("%s not found on PATH (CI=true: required)", tool)
		}
		t.Skipf("%s not found on PATH", tool)
	}
	return p
}

// goEnv is the environment for go commands on the workspace: GOWORK unset
// (this module runs with GOWORK=off; the services build with go.work).
func goEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GOWORK=") || strings.HasPrefix(kv, "GOOS=") || strings.HasPrefix(kv, "GOARCH=") || strings.HasPrefix(kv, "CGO_ENABLED=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func run(t testing.TB, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// serviceHasMain reports whether services/<svc>/main.go exists; while the
// services are being written one may still be missing.
func serviceHasMain(t testing.TB, svc string) bool {
	_, err := os.Stat(filepath.Join(repoRoot(t), "services", svc, "main.go"))
	return err == nil
}

func requireService(t testing.TB, svc string) {
	t.Helper()
	if !serviceHasMain(t, svc) {
		if inCI() {
			t.Fatalf("services/%s/main.go does not exist", svc)
		}
		t.Skipf("services/%s/main.go does not exist yet", svc)
	}
}

var (
	hostBinMu sync.Mutex
	hostBins  = map[string]string{}
)

// hostBinary builds services/<svc> for this machine (once per run).
func hostBinary(t testing.TB, svc string) string {
	t.Helper()
	requireService(t, svc)
	hostBinMu.Lock()
	defer hostBinMu.Unlock()
	if p, ok := hostBins[svc]; ok {
		return p
	}
	p := filepath.Join(tmpDir, "host", svc)
	// The flags of the images' builds, so that the cross-compile test for
	// this platform reuses the build cache.
	out, err := run(t, repoRoot(t), goEnv("CGO_ENABLED=0", "GOFLAGS=-buildvcs=false"), "go", "build", "-trimpath", "-ldflags=-s -w", "-o", p, "./services/"+svc)
	if err != nil {
		t.Fatalf("go build ./services/%s: %v\n%s", svc, err, out)
	}
	hostBins[svc] = p
	return p
}

// ServiceVar is one variable of a service's configuration, from --help.
type ServiceVar struct {
	Name     string
	Required bool
}

var helpLine = regexp.MustCompile(`^\s+--[a-z0-9-]+ / ([A-Z][A-Z0-9_]*)( \[required\])?\s*$`)

var (
	varsMu    sync.Mutex
	varsCache = map[string]map[string]ServiceVar{}
)

// serviceVars runs `<svc> [args] --help` and returns the variables it
// reads (pkg/config's help table).
func serviceVars(t testing.TB, svc string, args ...string) map[string]ServiceVar {
	t.Helper()
	key := svc + " " + strings.Join(args, " ")
	varsMu.Lock()
	if v, ok := varsCache[key]; ok {
		varsMu.Unlock()
		return v
	}
	varsMu.Unlock()
	bin := hostBinary(t, svc)
	cmd := exec.Command(bin, append(args, "--help")...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + tmpDir}
	out, _ := cmd.CombinedOutput() // --help may exit 0 or 2
	vars := map[string]ServiceVar{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := helpLine.FindStringSubmatch(sc.Text()); m != nil {
			vars[m[1]] = ServiceVar{Name: m[1], Required: m[2] != ""}
		}
	}
	if len(vars) == 0 {
		t.Fatalf("%s %s --help lists no variables; its output was:\n%s", svc, strings.Join(args, " "), out)
	}
	varsMu.Lock()
	varsCache[key] = vars
	varsMu.Unlock()
	return vars
}

// loggingVars are read by pkg/logging directly (not in --help); checked
// against its source.
func loggingVars(t testing.TB) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "pkg", "logging", "logging.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`Getenv\("([A-Z_]+)"\)`).FindAllStringSubmatch(string(src), -1) {
		out[m[1]] = true
	}
	return out
}

// awsSDKVars are read by the AWS SDK's default configuration chain.
var awsSDKVars = map[string]bool{
	"AWS_SHARED_CREDENTIALS_FILE": true, "AWS_CONFIG_FILE": true, "AWS_PROFILE": true,
	"AWS_EC2_METADATA_DISABLED": true, "AWS_REGION": true, "AWS_DEFAULT_REGION": true,
	"AWS_CA_BUNDLE": true, "AWS_USE_DUALSTACK_ENDPOINT": true,
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func hostIsLinux() bool { return runtime.GOOS == "linux" }
