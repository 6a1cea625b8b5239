package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// External is another issue's benchmark command: a main package that
// appends its results to $BENCH_OUT (HELPERS.md). They are found, not
// listed, so that a benchmark added later plugs in by following the
// convention.
type External struct {
	Name string `json:"name"` // e.g. services/nextcloud-syncer/cmd/syncbench
	// Dir (the main package) and ModuleDir are absolute: machine paths,
	// kept out of results.json.
	Dir         string `json:"-"`
	ModuleDir   string `json:"-"`
	InWorkspace bool   `json:"in_workspace"` // its module is listed in go.work
}

// DiscoverExternal finds main packages under root (the repository) that
// mention BENCH_OUT, except this harness's own module.
func DiscoverExternal(ctx context.Context, root string) ([]External, error) {
	self, err := filepath.Abs(filepath.Join(root, "bench"))
	if err != nil {
		return nil, err
	}
	dirs := map[string]bool{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable corners are not benchmarks
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "vendor", "testdata", ".cache", "demo-library":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "BENCH_OUT") || !isMain(b) {
			return nil
		}
		dirs[filepath.Dir(p)] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	ws := workspaceModules(ctx, root)
	var out []External
	for dir := range dirs {
		abs, _ := filepath.Abs(dir)
		mod := moduleDir(abs)
		if mod == "" || mod == self { // our own module (the harness itself)
			continue
		}
		rel, _ := filepath.Rel(root, abs)
		out = append(out, External{Name: filepath.ToSlash(rel), Dir: abs, ModuleDir: mod, InWorkspace: ws[mod]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func isMain(src []byte) bool {
	sc := bufio.NewScanner(strings.NewReader(string(src)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "package ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "package ")) == "main"
		}
	}
	return false
}

// moduleDir is the directory of the go.mod governing dir.
func moduleDir(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// workspaceModules lists the module directories of go.work.
func workspaceModules(ctx context.Context, root string) map[string]bool {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}")
	cmd.Dir = root
	out, err := cmd.Output()
	m := map[string]bool{}
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			m[l] = true
		}
	}
	return m
}

// runExternal builds and runs one benchmark with QUICK (when set) and its
// own $BENCH_OUT, and collects its lines. Each benchmark starts the servers
// it needs (MinIO, the SQS server, WebDAV) itself, through pkg/awstest or
// its own harness.
func (h *harness) runExternal(ctx context.Context, e External) error {
	dir := filepath.Join(h.work, "external")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	base := strings.ReplaceAll(e.Name, "/", "_")
	bin := filepath.Join(dir, base)
	outFile := filepath.Join(dir, base+".jsonl")
	logPath := filepath.Join(dir, base+".log")
	os.Remove(outFile)

	goEnv := os.Environ()
	if !e.InWorkspace {
		goEnv = append(goEnv, "GOWORK=off") // a module not (yet) listed in go.work builds on its own go.mod
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir, build.Env = e.Dir, goEnv
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w: %s", e.Name, err, clip(string(b), 2000))
	}

	timeout := 90 * time.Minute
	if h.mode != full {
		timeout = 5 * time.Minute
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(rctx, bin)
	cmd.Dir = e.Dir
	cmd.Env = append(os.Environ(), "BENCH_OUT="+outFile)
	if h.mode != full {
		cmd.Env = append(cmd.Env, "QUICK=1")
	} else {
		cmd.Env = append(cmd.Env, "QUICK=")
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { killGroup(cmd); return nil }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	runErr := cmd.Run()
	killGroup(cmd) // servers a failed benchmark left behind
	h.logf("external: %s finished in %s", e.Name, time.Since(start).Truncate(time.Second))

	b, err := os.ReadFile(outFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	raws, rows, bad := parseLines(b, e.Name)
	for i := range rows {
		h.sink.add(raws[i], rows[i])
		if h.sink.out != nil {
			fmt.Fprintln(h.sink.out, string(raws[i]))
		}
	}
	h.problems = append(h.problems, bad...)
	if runErr != nil {
		lg, _ := os.ReadFile(logPath)
		msg := fmt.Sprintf("%s failed after %s: %v; log tail: %s", e.Name, time.Since(start).Truncate(time.Second), runErr, tailString(string(lg), 1500))
		if rctx.Err() == context.DeadlineExceeded {
			msg = fmt.Sprintf("%s did not finish within %s; log tail: %s", e.Name, timeout, tailString(string(lg), 1500))
		}
		return errors.New(msg)
	}
	if len(rows) == 0 {
		return fmt.Errorf("%s ran but wrote no result lines to $BENCH_OUT", e.Name)
	}
	return nil
}

func tailString(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
