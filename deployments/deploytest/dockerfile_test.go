package deploytest

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Instruction is one Dockerfile instruction, continuation lines joined.
type Instruction struct {
	Line  int
	Cmd   string   // upper case: FROM, RUN, COPY, ...
	Flags []string // --name=value flags before the arguments
	Args  string   // the rest, as written
}

// Stage is a FROM and its instructions.
type Stage struct {
	Index    int
	Name     string // AS name, or ""
	Base     string // image or earlier stage
	Platform string // --platform value
	Ins      []Instruction
}

// Dockerfile is a parsed Dockerfile: global ARGs (before the first FROM)
// and stages.
type Dockerfile struct {
	Path       string
	GlobalArgs map[string]string
	Stages     []*Stage
}

var flagRE = regexp.MustCompile(`^--([a-z-]+)(=(\S*))?\s*`)

// parseDockerfile reads the subset of Dockerfile syntax our files use:
// comments, parser directives, backslash continuations, flags. Heredocs are
// rejected.
func parseDockerfile(t testing.TB, p string) *Dockerfile {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	df := &Dockerfile{Path: p, GlobalArgs: map[string]string{}}
	var (
		cur    *Stage
		buf    strings.Builder
		start  int
		lineNo int
	)
	flush := func() {
		s := strings.TrimSpace(buf.String())
		buf.Reset()
		if s == "" {
			return
		}
		cmd, rest, _ := strings.Cut(s, " ")
		in := Instruction{Line: start, Cmd: strings.ToUpper(cmd)}
		rest = strings.TrimSpace(rest)
		for {
			m := flagRE.FindStringSubmatch(rest)
			if m == nil {
				break
			}
			in.Flags = append(in.Flags, m[1]+"="+m[3])
			rest = rest[len(m[0]):]
		}
		in.Args = rest
		if strings.Contains(in.Args, "<<") && in.Cmd != "RUN" {
			t.Errorf("%s:%d: heredocs are not supported by this check", p, start)
		}
		switch in.Cmd {
		case "FROM":
			fields := strings.Fields(in.Args)
			st := &Stage{Index: len(df.Stages), Base: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.Name = fields[2]
			} else if len(fields) != 1 {
				t.Errorf("%s:%d: FROM %s: want IMAGE [AS NAME]", p, start, in.Args)
			}
			for _, fl := range in.Flags {
				if v, ok := strings.CutPrefix(fl, "platform="); ok {
					st.Platform = v
				}
			}
			df.Stages = append(df.Stages, st)
			cur = st
		case "ARG":
			if cur == nil {
				k, v, _ := strings.Cut(in.Args, "=")
				df.GlobalArgs[k] = v
			}
		}
		if cur != nil {
			cur.Ins = append(cur.Ins, in)
		} else if in.Cmd != "ARG" {
			t.Errorf("%s:%d: %s before the first FROM", p, start, in.Cmd)
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		trim := strings.TrimSpace(line)
		if buf.Len() == 0 && (trim == "" || strings.HasPrefix(trim, "#")) {
			continue // blank, comment or parser directive (# syntax=)
		}
		if buf.Len() > 0 && strings.HasPrefix(trim, "#") {
			continue // comment inside a continuation
		}
		if buf.Len() == 0 {
			start = lineNo
		}
		if strings.HasSuffix(line, "\\") {
			buf.WriteString(strings.TrimSuffix(line, "\\"))
			buf.WriteString(" ")
			continue
		}
		buf.WriteString(line)
		flush()
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(df.Stages) == 0 {
		t.Fatalf("%s: no FROM", p)
	}
	return df
}

// stage returns the stage called name (or with that index).
func (d *Dockerfile) stage(name string) *Stage {
	for _, s := range d.Stages {
		if s.Name == name || fmt.Sprint(s.Index) == name {
			return s
		}
	}
	return nil
}

func (s *Stage) all(cmd string) []Instruction {
	var out []Instruction
	for _, in := range s.Ins {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func (s *Stage) args() map[string]bool {
	out := map[string]bool{}
	for _, in := range s.all("ARG") {
		k, _, _ := strings.Cut(in.Args, "=")
		out[k] = true
	}
	return out
}

func flagValue(flags []string, name string) (string, bool) {
	for _, f := range flags {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// mountOpts parses --mount=type=bind,source=x,target=y.
func mountOpts(v string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(kv, "=")
		out[k] = val
	}
	return out
}

// shellWords splits a command line the way sh would for our simple lines:
// whitespace, single and double quotes, backslash escapes.
func shellWords(s string) []string {
	var (
		out   []string
		cur   strings.Builder
		in    rune
		any   bool
		escap bool
	)
	for _, r := range s {
		switch {
		case escap:
			cur.WriteRune(r)
			escap = false
		case r == '\\' && in != '\'':
			escap = true
		case in != 0:
			if r == in {
				in = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			in, any = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if cur.Len() > 0 || any {
				out = append(out, cur.String())
				cur.Reset()
				any = false
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 || any {
		out = append(out, cur.String())
	}
	return out
}

// goBuild is the `go build` of a Dockerfile's build stage.
type goBuild struct {
	Env     map[string]string // assignments before `go build`
	Args    []string          // after `go build`
	Output  string            // -o value
	Package string            // last argument
}

// findGoBuild returns the `go build` of the Dockerfile's own service (the
// dispatcher's image also builds hevc-processor, for LAUNCHER=exec), or the
// first one.
func findGoBuild(t testing.TB, df *Dockerfile, st *Stage) goBuild {
	t.Helper()
	all := findGoBuilds(st)
	if len(all) == 0 {
		t.Fatalf("%s: no `go build` in stage %q", df.Path, st.Name)
	}
	svc := strings.TrimSuffix(filepath.Base(df.Path), ".Dockerfile")
	for _, gb := range all {
		if gb.Package == "./services/"+svc {
			return gb
		}
	}
	return all[0]
}

// findGoBuilds returns every `go build` of a stage, in order.
func findGoBuilds(st *Stage) []goBuild {
	var out []goBuild
	for _, in := range st.all("RUN") {
		words := shellWords(in.Args)
		for i := 0; i+1 < len(words); i++ {
			if words[i] != "go" || words[i+1] != "build" {
				continue
			}
			gb := goBuild{Env: map[string]string{}}
			for j := i - 1; j >= 0; j-- {
				k, v, ok := strings.Cut(words[j], "=")
				if !ok || k == "" || strings.ToUpper(k) != k || strings.ContainsAny(k, "-/ ") {
					break
				}
				gb.Env[k] = v
			}
			rest := words[i+2:]
			for j := 0; j < len(rest); j++ {
				if w := rest[j]; w == "&&" || w == ";" {
					rest = rest[:j]
					break
				}
			}
			gb.Args = rest
			for j, w := range rest {
				if w == "-o" && j+1 < len(rest) {
					gb.Output = rest[j+1]
				}
			}
			if len(rest) > 0 {
				gb.Package = rest[len(rest)-1]
			}
			out = append(out, gb)
		}
	}
	return out
}

var varRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

func dockerfiles(t testing.TB) map[string]*Dockerfile {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "deployments", "docker")
	out := map[string]*Dockerfile{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.Dockerfile"))
	for _, p := range files {
		out[strings.TrimSuffix(filepath.Base(p), ".Dockerfile")] = parseDockerfile(t, p)
	}
	return out
}

// goWorkUses lists the module directories in go.work.
func goWorkUses(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	var uses []string
	inBlock := false
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "use ("):
			inBlock = true
		case inBlock && line == ")":
			inBlock = false
		case inBlock && line != "" && !strings.HasPrefix(line, "//"):
			uses = append(uses, path.Clean(line))
		case strings.HasPrefix(line, "use "):
			uses = append(uses, path.Clean(strings.TrimSpace(strings.TrimPrefix(line, "use "))))
		}
	}
	return uses
}

func goWorkVersion(t testing.TB) string {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.work has no go line")
	}
	return string(m[1])
}

// versionAtLeast compares dotted versions numerically.
func versionAtLeast(have, want string) bool {
	hp, wp := strings.Split(have, "."), strings.Split(want, ".")
	for i := 0; i < len(wp); i++ {
		var h, w int
		if i < len(hp) {
			fmt.Sscan(hp[i], &h)
		}
		fmt.Sscan(wp[i], &w)
		if h != w {
			return h > w
		}
	}
	return true
}

// dockerignore is a .dockerignore: patterns with filepath.Match syntax, "**"
// for any number of directories, "!" exceptions, last match wins.
type dockerignore []string

func loadDockerignore(t testing.TB, p string) dockerignore {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (each Dockerfile needs its <name>.Dockerfile.dockerignore)", err)
	}
	var out dockerignore
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

func matchGlob(pattern, name string) bool {
	ps, ns := strings.Split(pattern, "/"), strings.Split(name, "/")
	var rec func(i, j int) bool
	rec = func(i, j int) bool {
		if i == len(ps) {
			return j == len(ns)
		}
		if ps[i] == "**" {
			for k := j; k <= len(ns); k++ {
				if rec(i+1, k) {
					return true
				}
			}
			return false
		}
		if j == len(ns) {
			return false
		}
		ok, _ := path.Match(ps[i], ns[j])
		return ok && rec(i+1, j+1)
	}
	return rec(0, 0)
}

// excluded reports whether rel (slash-separated, relative to the context)
// is left out of the build context: it or one of its parents matches.
func (d dockerignore) excluded(rel string) bool {
	parts := strings.Split(rel, "/")
	out := false
	for _, p := range d {
		neg := strings.HasPrefix(p, "!")
		pat := path.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/"))
		for i := 1; i <= len(parts); i++ {
			if matchGlob(pat, strings.Join(parts[:i], "/")) {
				out = !neg
				break
			}
		}
	}
	return out
}

// packageFiles lists the Go files (relative to the repository) that building
// services/<svc> reads from this repository.
func packageFiles(t testing.TB, svc string) []string {
	t.Helper()
	root := repoRoot(t)
	out, err := run(t, root, goEnv("CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"), "go", "list", "-deps", "-json=Dir,GoFiles,EmbedFiles,Standard", "./services/"+svc)
	if err != nil {
		t.Fatalf("go list -deps ./services/%s: %v\n%s", svc, err, out)
	}
	var files []string
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var p struct {
			Dir                 string
			GoFiles, EmbedFiles []string
			Standard            bool
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel, err := filepath.Rel(root, p.Dir)
		if p.Standard || err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			files = append(files, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	return files
}

// importsMedia reports whether services/<svc> links pkg/media (ffprobe and
// ffmpeg at run time).
func importsMedia(t testing.TB, svc string) bool {
	t.Helper()
	for _, f := range packageFiles(t, svc) {
		if strings.HasPrefix(f, "pkg/media/") {
			return true
		}
	}
	return false
}

func TestDockerfiles(t *testing.T) {
	root := repoRoot(t)
	dfs := dockerfiles(t)
	for _, svc := range Services {
		if _, ok := dfs[svc]; !ok {
			t.Errorf("deployments/docker/%s.Dockerfile is missing", svc)
		}
	}
	for name := range dfs {
		if !slices.Contains(Services, name) {
			t.Errorf("deployments/docker/%s.Dockerfile builds no known service", name)
		}
	}
	goVersion := goWorkVersion(t)
	uses := goWorkUses(t)
	for _, svc := range Services {
		df, ok := dfs[svc]
		if !ok {
			continue
		}
		t.Run(svc, func(t *testing.T) {
			rel := func(p string) string { r, _ := filepath.Rel(root, p); return r }
			ign := loadDockerignore(t, df.Path+".dockerignore")

			// Global ARGs: everything FROM lines use is declared; the Go
			// image is at least go.work's version.
			if v := df.GlobalArgs["GO_VERSION"]; !versionAtLeast(v, goVersion) {
				t.Errorf("GO_VERSION %q is older than go.work's go %s", v, goVersion)
			}
			names := map[string]int{}
			for _, st := range df.Stages {
				for _, m := range varRef.FindAllStringSubmatch(st.Base+" "+st.Platform, -1) {
					if _, ok := df.GlobalArgs[m[1]]; !ok && m[1] != "BUILDPLATFORM" && m[1] != "TARGETPLATFORM" {
						t.Errorf("FROM uses $%s, which is not a global ARG", m[1])
					}
				}
				if earlier, ok := names[st.Base]; ok && earlier >= st.Index {
					t.Errorf("stage %d is based on a later stage %s", st.Index, st.Base)
				}
				if _, isStage := names[st.Base]; !isStage && st.Base != "scratch" { // scratch is empty, nothing to pin
					img := varRef.ReplaceAllString(st.Base, "x")
					if !strings.Contains(path.Base(img), ":") && !strings.Contains(img, "@") || strings.HasSuffix(img, ":latest") {
						t.Errorf("base image %s must have a pinned tag or digest", st.Base)
					}
				}
				if st.Name != "" {
					if _, dup := names[st.Name]; dup {
						t.Errorf("two stages are called %s", st.Name)
					}
					names[st.Name] = st.Index
				}
			}

			// The build stage: cross-compiles on the build platform.
			build := df.stage("build")
			if build == nil {
				t.Fatal("no stage called build")
			}
			if build.Platform != "$BUILDPLATFORM" {
				t.Errorf("build stage: FROM --platform=%q, want $BUILDPLATFORM (cross-compile, no emulation)", build.Platform)
			}
			for _, a := range []string{"TARGETOS", "TARGETARCH"} {
				if !build.args()[a] {
					t.Errorf("build stage does not declare ARG %s", a)
				}
			}
			gb := findGoBuild(t, df, build)
			for k, want := range map[string]string{"CGO_ENABLED": "0", "GOOS": "$TARGETOS", "GOARCH": "$TARGETARCH"} {
				if gb.Env[k] != want {
					t.Errorf("go build: %s=%q, want %q", k, gb.Env[k], want)
				}
			}
			if !slices.Contains(gb.Args, "-trimpath") {
				t.Errorf("go build without -trimpath")
			}
			if gb.Package != "./services/"+svc {
				t.Errorf("go build builds %s, want ./services/%s", gb.Package, svc)
			}
			if _, err := os.Stat(filepath.Join(root, gb.Package)); err != nil {
				t.Errorf("go build package %s: %v", gb.Package, err)
			}

			// Sources: bind mounts and COPYs from the context exist and are
			// not ignored; COPY --from names an earlier stage.
			for _, st := range df.Stages {
				for _, in := range st.Ins {
					for _, fl := range in.Flags {
						mv, ok := strings.CutPrefix(fl, "mount=")
						if !ok {
							continue
						}
						m := mountOpts(mv)
						if m["type"] != "bind" || m["from"] != "" {
							continue
						}
						src := m["source"]
						if src == "" {
							src = "."
						}
						if _, err := os.Stat(filepath.Join(root, src)); err != nil {
							t.Errorf("line %d: bind mount source %s: %v", in.Line, src, err)
						}
					}
					if in.Cmd != "COPY" && in.Cmd != "ADD" {
						continue
					}
					var parts []string
					if strings.HasPrefix(in.Args, "[") {
						if err := json.Unmarshal([]byte(in.Args), &parts); err != nil {
							t.Errorf("line %d: %v", in.Line, err)
						}
					} else {
						parts = strings.Fields(in.Args)
					}
					if len(parts) < 2 {
						t.Errorf("line %d: %s needs a source and a destination", in.Line, in.Cmd)
						continue
					}
					if from, ok := flagValue(in.Flags, "from"); ok {
						if i, isStage := names[from]; !isStage || i >= st.Index {
							t.Errorf("line %d: COPY --from=%s is not an earlier stage", in.Line, from)
						}
						continue
					}
					for _, src := range parts[:len(parts)-1] {
						matches, _ := filepath.Glob(filepath.Join(root, src))
						if len(matches) == 0 {
							t.Errorf("line %d: COPY source %s does not exist in the context", in.Line, src)
						}
						for _, m := range matches {
							if ign.excluded(filepath.ToSlash(rel(m))) {
								t.Errorf("line %d: COPY source %s is excluded by the .dockerignore", in.Line, src)
							}
						}
					}
				}
			}

			// The build context keeps what the workspace build reads.
			for _, f := range []string{"go.work", "go.work.sum"} {
				if _, err := os.Stat(filepath.Join(root, f)); err == nil && ign.excluded(f) {
					t.Errorf(".dockerignore excludes %s", f)
				}
			}
			for _, u := range uses {
				if ign.excluded(path.Join(u, "go.mod")) {
					t.Errorf(".dockerignore excludes %s/go.mod, a module of go.work", u)
				}
			}
			if serviceHasMain(t, svc) {
				for _, f := range packageFiles(t, svc) {
					if ign.excluded(f) {
						t.Errorf(".dockerignore excludes %s, which the build reads", f)
					}
				}
			}
			if !ign.excluded(".git") {
				t.Errorf(".dockerignore should leave .git out of the context")
			}

			// The runtime stage: non-root, exec-form entrypoint that was
			// copied in, ffmpeg when the service links pkg/media.
			final := df.Stages[len(df.Stages)-1]
			users := final.all("USER")
			if len(users) == 0 {
				t.Errorf("final stage has no USER (it would run as root)")
			} else {
				u := strings.Fields(users[len(users)-1].Args)[0]
				uid, _, _ := strings.Cut(u, ":")
				if uid == "root" || uid == "0" || !regexp.MustCompile(`^[0-9]+$`).MatchString(uid) {
					t.Errorf("final USER %s: want a numeric non-root uid (Kubernetes/ECS can check it)", u)
				}
			}
			eps := final.all("ENTRYPOINT")
			var ep []string
			if len(eps) != 1 || json.Unmarshal([]byte(eps[0].Args), &ep) != nil || len(ep) == 0 {
				t.Fatalf("final stage needs one exec-form ENTRYPOINT")
			}
			copied := false
			for _, in := range final.all("COPY") {
				f := strings.Fields(in.Args)
				if from, _ := flagValue(in.Flags, "from"); from == "build" && f[0] == gb.Output && f[len(f)-1] == ep[0] {
					copied = true
				}
			}
			if !copied {
				t.Errorf("ENTRYPOINT %s is not the binary copied from the build stage (%s)", ep[0], gb.Output)
			}
			checkHealthcheck(t, svc, final, ep[0])
			// ffmpeg is installed in a stage of its own (or the final one);
			// the image has it when the final stage is, or copies from, that
			// stage.
			hasFFmpeg := false
			for _, st := range df.Stages {
				installs := false
				for _, in := range st.all("RUN") {
					w := shellWords(in.Args)
					i := slices.Index(w, "install")
					if i < 0 {
						continue
					}
					pkgs := w[i+1:]
					if j := slices.IndexFunc(pkgs, func(s string) bool { return s == "&&" || s == ";" || s == "||" || s == "|" }); j >= 0 {
						pkgs = pkgs[:j]
					}
					if slices.Contains(pkgs, "ffmpeg") {
						installs = true
						if !strings.Contains(in.Args, "--no-install-recommends") || !strings.Contains(in.Args, "rm -rf /var/lib/apt/lists") {
							t.Errorf("apt-get install without --no-install-recommends or without cleaning the lists")
						}
						if !strings.Contains(in.Args, "libx265") {
							t.Errorf("the image should check that ffmpeg has libx265")
						}
					}
				}
				if !installs {
					continue
				}
				if st == final {
					hasFFmpeg = true
				}
				for _, in := range final.all("COPY") {
					if from, _ := flagValue(in.Flags, "from"); from != "" && from == st.Name {
						hasFFmpeg = true
					}
				}
			}
			if !importsMedia(t, svc) && svc != "sqs-dispatcher" && hasFFmpeg {
				t.Errorf("%s does not run ffmpeg, but its image carries it", svc)
			}
			// The dispatcher's exec launcher (LAUNCHER=exec) runs
			// hevc-processor in the dispatcher's container.
			if svc == "sqs-dispatcher" {
				procCopied := false
				for _, gb2 := range findGoBuilds(build) {
					if gb2.Package != "./services/hevc-processor" {
						continue
					}
					for _, in := range final.all("COPY") {
						f := strings.Fields(in.Args)
						if from, _ := flagValue(in.Flags, "from"); from == "build" && f[0] == gb2.Output && path.Base(f[len(f)-1]) == "hevc-processor" {
							procCopied = true
						}
					}
				}
				if !procCopied || !hasFFmpeg {
					t.Errorf("the sqs-dispatcher image needs hevc-processor (its PROCESSOR_BIN) and ffmpeg for LAUNCHER=exec")
				}
			}
			if svc == "hevc-processor" && !hasFFmpeg {
				t.Errorf("hevc-processor needs ffmpeg with libx265 in its image")
			}
			if serviceHasMain(t, svc) && importsMedia(t, svc) && !hasFFmpeg {
				t.Errorf("%s links pkg/media (runs ffprobe/ffmpeg) but its image has no ffmpeg", svc)
			}
		})
	}
}

// TestBakeFile checks that `make images` (docker buildx bake) builds every
// service for both platforms with its own Dockerfile.
func TestBakeFile(t *testing.T) {
	body, _ := parseHCLFile(t, filepath.Join(repoRoot(t), "deployments", "docker", "docker-bake.hcl"))
	targets := map[string]map[string]string{}
	var common map[string]string
	var group []string
	c := &tfConfig{t: t, src: map[string][]byte{}}
	p := filepath.Join(repoRoot(t), "deployments", "docker", "docker-bake.hcl")
	c.src[p], _ = os.ReadFile(p)
	for _, b := range body.Blocks {
		switch b.Type {
		case "target":
			m := map[string]string{}
			for n, a := range b.Body.Attributes {
				m[n] = c.text(a.Expr)
			}
			if b.Labels[0] == "_common" {
				common = m
			} else {
				targets[b.Labels[0]] = m
			}
		case "group":
			if b.Labels[0] == "default" {
				lits, _ := c.stringsOf(b.Body.Attributes["targets"].Expr)
				group = lits
			}
		}
	}
	if common == nil || common["platforms"] != `["linux/amd64", "linux/arm64"]` || common["context"] != `"."` {
		t.Errorf(`target "_common" must build context "." for linux/amd64 and linux/arm64, got %v`, common)
	}
	slices.Sort(group)
	want := slices.Clone(Services)
	slices.Sort(want)
	if !slices.Equal(group, want) {
		t.Errorf("default group = %v, want every service %v", group, want)
	}
	for _, svc := range Services {
		tg, ok := targets[svc]
		if !ok {
			t.Errorf("no bake target %s", svc)
			continue
		}
		if tg["dockerfile"] != `"deployments/docker/`+svc+`.Dockerfile"` || tg["inherits"] != `["_common"]` {
			t.Errorf("bake target %s: dockerfile %s inherits %s", svc, tg["dockerfile"], tg["inherits"])
		}
		if !strings.Contains(tg["tags"], "/"+svc+":") {
			t.Errorf("bake target %s: tags %s", svc, tg["tags"])
		}
	}
}

var (
	contextMu     sync.Mutex
	contextCopies = map[string]string{}
)

// buildContext copies the repository as `docker build` would send it: every
// file the Dockerfile's .dockerignore keeps. Builds run in this copy, so a
// file the build needs but the context lacks fails the test.
func buildContext(t testing.TB, df *Dockerfile) string {
	t.Helper()
	ign := loadDockerignore(t, df.Path+".dockerignore")
	key := strings.Join(ign, "\n")
	contextMu.Lock()
	defer contextMu.Unlock()
	if d, ok := contextCopies[key]; ok {
		return d
	}
	root := repoRoot(t)
	dst := filepath.Join(tmpDir, fmt.Sprintf("context%d", len(contextCopies)))
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel != "." && ign.excluded(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, filepath.FromSlash(rel))
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copy the build context: %v", err)
	}
	contextCopies[key] = dst
	return dst
}

// sums reads every go.sum and go.work.sum under dir.
func sums(t testing.TB, dir string) map[string]string {
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (d.Name() == "go.sum" || d.Name() == "go.work.sum" || d.Name() == "go.mod" || d.Name() == "go.work") {
			b, _ := os.ReadFile(p)
			out[p] = string(b)
		}
		return nil
	})
	return out
}

// TestCrossCompile builds every service for linux/arm64 and linux/amd64 with
// the exact `go build` line of its Dockerfile, in a copy of the build
// context, and checks that the result is a static executable for that
// architecture and that the build wrote nothing into the context (it is a
// read-only bind mount in the image build).
func TestCrossCompile(t *testing.T) {
	needTool(t, "go")
	dfs := dockerfiles(t)
	for _, svc := range Services {
		df, ok := dfs[svc]
		if !ok {
			t.Errorf("no Dockerfile for %s", svc)
			continue
		}
		gb := findGoBuild(t, df, df.stage("build"))
		for _, arch := range []string{"arm64", "amd64"} {
			t.Run(svc+"/linux-"+arch, func(t *testing.T) {
				requireService(t, svc)
				out := filepath.Join(tmpDir, "cross", arch, svc)
				args := []string{"build"}
				for i := 0; i < len(gb.Args); i++ {
					if gb.Args[i] == "-o" {
						args = append(args, "-o", out)
						i++
						continue
					}
					args = append(args, gb.Args[i])
				}
				env := []string{}
				for k, v := range gb.Env {
					v = strings.NewReplacer("$TARGETOS", "linux", "$TARGETARCH", arch, "${TARGETOS}", "linux", "${TARGETARCH}", arch).Replace(v)
					env = append(env, k+"="+v)
				}
				ctxDir := buildContext(t, df)
				before := sums(t, ctxDir)
				cmd := exec.Command("go", args...)
				cmd.Dir = ctxDir // the Dockerfile's WORKDIR is the context root
				cmd.Env = goEnv(env...)
				if o, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("in the build context: GOOS=linux GOARCH=%s go %s: %v\n%s", arch, strings.Join(args, " "), err, o)
				}
				for p, b := range sums(t, ctxDir) {
					if before[p] != b {
						t.Errorf("the build changed %s; the image build mounts the context read-only", p)
					}
				}
				f, err := elf.Open(out)
				if err != nil {
					t.Fatalf("%s: %v", out, err)
				}
				defer f.Close()
				wantMachine := map[string]elf.Machine{"arm64": elf.EM_AARCH64, "amd64": elf.EM_X86_64}[arch]
				if f.Machine != wantMachine {
					t.Errorf("%s is for %v, want %v", out, f.Machine, wantMachine)
				}
				for _, p := range f.Progs {
					if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
						t.Errorf("%s is dynamically linked", out)
					}
				}
			})
		}
	}
}

// longRunning are the services that serve /healthz on METRICS_ADDR.
var longRunning = map[string]bool{"sqs-dispatcher": true, "result-downloader": true, "nextcloud-syncer": true}

// checkHealthcheck: every image declares a HEALTHCHECK (scanners flag the
// missing ones). The long-running services' ask their own /healthz with
// the binary (exec form: no shell, no curl) on the METRICS_ADDR the image
// sets; the one-shot ones say NONE.
func checkHealthcheck(t *testing.T, svc string, final *Stage, entrypoint string) {
	t.Helper()
	hcs := final.all("HEALTHCHECK")
	if len(hcs) != 1 {
		t.Errorf("final stage has %d HEALTHCHECK instructions, want 1", len(hcs))
		return
	}
	hc := hcs[0]
	if !longRunning[svc] {
		if strings.TrimSpace(hc.Args) != "NONE" {
			t.Errorf("HEALTHCHECK %s: a one-shot job's image should say NONE", hc.Args)
		}
		return
	}
	cmd, ok := strings.CutPrefix(strings.TrimSpace(hc.Args), "CMD ")
	var argv []string
	if !ok || json.Unmarshal([]byte(cmd), &argv) != nil || len(argv) != 2 || argv[0] != entrypoint || argv[1] != "healthcheck" {
		t.Errorf("HEALTHCHECK %s: want CMD [%q, \"healthcheck\"] (exec form)", hc.Args, entrypoint)
	}
	for _, f := range []string{"interval", "timeout", "start-period", "retries"} {
		if _, ok := flagValue(hc.Flags, f); !ok {
			t.Errorf("HEALTHCHECK without --%s", f)
		}
	}
	set := false
	for _, in := range final.all("ENV") {
		set = set || strings.HasPrefix(in.Args, "METRICS_ADDR=")
	}
	if !set {
		t.Errorf("the image does not set METRICS_ADDR: its HEALTHCHECK would find nothing to ask")
	}
}
