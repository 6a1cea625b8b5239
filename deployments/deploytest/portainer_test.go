package deploytest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type portainerJob struct{ name, service, template string }

// portainerJobs reads the job table of scripts/portainer-run (Jobs in
// main.go), so that the stack and the tool cannot drift apart.
func portainerJobs(t testing.TB) []portainerJob {
	t.Helper()
	p := filepath.Join(repoRoot(t), "scripts", "portainer-run", "main.go")
	f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var jobs []portainerJob
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "Jobs" || len(vs.Values) != 1 {
			return true
		}
		for _, e := range vs.Values[0].(*ast.CompositeLit).Elts {
			kv := e.(*ast.KeyValueExpr)
			var j portainerJob
			j.name, _ = strconv.Unquote(kv.Key.(*ast.BasicLit).Value)
			for _, fe := range kv.Value.(*ast.CompositeLit).Elts {
				f := fe.(*ast.KeyValueExpr)
				lit, ok := f.Value.(*ast.BasicLit)
				if !ok {
					continue
				}
				v, _ := strconv.Unquote(lit.Value)
				switch f.Key.(*ast.Ident).Name {
				case "Service":
					j.service = v
				case "Template":
					j.template = v
				}
			}
			jobs = append(jobs, j)
		}
		return false
	})
	if len(jobs) == 0 {
		t.Fatalf("no Jobs table in %s", p)
	}
	return jobs
}

func TestPortainerJobsMatchStack(t *testing.T) {
	proj, err := loadStack(t, "hevc-encoder.yml", stackEnv())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, j := range portainerJobs(t) {
		names[j.name] = true
		if _, ok := proj.Services[j.template]; !ok {
			t.Errorf("job %s copies its configuration from %s, which is not a service of hevc-encoder.yml", j.name, j.template)
		}
		if !slices.Contains(Services, j.service) {
			t.Errorf("job %s runs unknown service %s", j.name, j.service)
		}
	}
	for _, want := range []string{"sync", "process", "trigger", "status"} {
		if !names[want] {
			t.Errorf("no %s job", want)
		}
	}
}

var (
	prunOnce sync.Once
	prunPath string
	prunErr  error
	prunOut  string
)

// portainerRun builds scripts/portainer-run (its own module, stdlib only).
func portainerRun(t testing.TB) string {
	t.Helper()
	prunOnce.Do(func() {
		prunPath = filepath.Join(tmpDir, "portainer-run")
		cmd := exec.Command("go", "build", "-o", prunPath, ".")
		cmd.Dir = filepath.Join(repoRoot(t), "scripts", "portainer-run")
		cmd.Env = append(goEnv(), "GOWORK=off")
		var out []byte
		out, prunErr = cmd.CombinedOutput()
		prunOut = string(out)
	})
	if prunErr != nil {
		t.Fatalf("build portainer-run: %v\n%s", prunErr, prunOut)
	}
	return prunPath
}

const testAPIKey = "ptr_S3cr3t-key-do-not-print"

// fakePortainer is a Portainer HTTP API (the parts portainer-run uses, with
// Docker's API behind /api/endpoints/{id}/docker) that records every
// request and checks its authentication.
type fakePortainer struct {
	t  *testing.T
	mu sync.Mutex

	calls   []string // "METHOD path" (path without query)
	queries []url.Values
	created []map[string]any // create bodies

	endpoints    []map[string]any
	containers   map[string]map[string]any // template inspect by id, by name
	createStatus []int                     // statuses to answer create with, in order (201 after)
	pullError    string
	exitCode     int
	stdout       string
	stderr       string
	logsStarted  chan struct{}
	blockLogs    bool
	echoKeyOn401 bool
}

func newFake(t *testing.T) *fakePortainer {
	return &fakePortainer{
		t:           t,
		endpoints:   []map[string]any{{"Id": 1, "Name": "local"}, {"Id": 3, "Name": "home"}},
		containers:  map[string]map[string]any{},
		logsStarted: make(chan struct{}, 1),
	}
}

// template registers the running stack container of service.
func (f *fakePortainer) template(id, service, image string, env []string) {
	f.containers[id] = map[string]any{
		"Id":   id,
		"Name": "/hevc-encoder-" + service + "-1",
		"Config": map[string]any{
			"Image":  image,
			"Env":    env,
			"User":   "1000:1000",
			"Labels": map[string]string{"com.docker.compose.project": "hevc-encoder", "com.docker.compose.service": service},
		},
		"HostConfig": map[string]any{
			"Binds":          []string{"/photos:/library:rw"},
			"Mounts":         []map[string]any{{"Type": "bind", "Source": "/opt/hevc-encoder/secrets/aws_credentials", "Target": "/run/secrets/aws_credentials", "ReadOnly": true}},
			"Tmpfs":          map[string]string{"/tmp": ""},
			"NetworkMode":    "hevc-encoder_default",
			"ReadonlyRootfs": true,
			"CapDrop":        []string{"ALL"},
			"SecurityOpt":    []string{"no-new-privileges:true"},
			"RestartPolicy":  map[string]any{"Name": "unless-stopped"},
			"Privileged":     false,
		},
		"State": map[string]any{"Running": true, "Status": "running"},
	}
}

func (f *fakePortainer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	f.queries = append(f.queries, r.URL.Query())
	f.mu.Unlock()
	if r.Header.Get("X-API-Key") != testAPIKey {
		w.WriteHeader(http.StatusUnauthorized)
		msg := "Invalid API key"
		if f.echoKeyOn401 {
			// A careless proxy that echoes the header: the tool must not
			// print it.
			msg += ": " + r.Header.Get("X-API-Key")
		}
		json.NewEncoder(w).Encode(map[string]string{"message": msg, "details": "Unauthorized"})
		return
	}
	if r.Method == http.MethodPost && r.Header.Get("Content-Length") != "0" && r.ContentLength > 0 && r.Header.Get("Content-Type") != "application/json" {
		f.t.Errorf("%s %s: Content-Type %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
	}
	p := r.URL.Path
	if p == "/api/endpoints" && r.Method == http.MethodGet {
		name := r.URL.Query().Get("name")
		var out []map[string]any
		for _, e := range f.endpoints {
			if name == "" || e["Name"] == name {
				out = append(out, e)
			}
		}
		json.NewEncoder(w).Encode(out)
		return
	}
	rest, ok := strings.CutPrefix(p, "/api/endpoints/3/docker")
	if !ok {
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
		return
	}
	switch {
	case r.Method == http.MethodGet && rest == "/containers/json":
		var filters map[string][]string
		if err := json.Unmarshal([]byte(r.URL.Query().Get("filters")), &filters); err != nil {
			f.t.Errorf("containers/json filters: %v", err)
		}
		if r.URL.Query().Get("all") != "1" {
			f.t.Errorf("containers/json must list stopped containers too (all=1)")
		}
		var out []map[string]any
		for id, c := range f.containers {
			labels := c["Config"].(map[string]any)["Labels"].(map[string]string)
			match := true
			for _, l := range filters["label"] {
				k, v, _ := strings.Cut(l, "=")
				if labels[k] != v {
					match = false
				}
			}
			if match {
				out = append(out, map[string]any{"Id": id, "State": "running", "Labels": labels})
			}
		}
		json.NewEncoder(w).Encode(out)
	case r.Method == http.MethodGet && strings.HasPrefix(rest, "/containers/") && strings.HasSuffix(rest, "/json"):
		id := strings.TrimSuffix(strings.TrimPrefix(rest, "/containers/"), "/json")
		c, ok := f.containers[id]
		if !ok {
			http.Error(w, `{"message":"No such container: `+id+`"}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(c)
	case r.Method == http.MethodPost && rest == "/containers/create":
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			f.t.Errorf("create body: %v", err)
		}
		f.mu.Lock()
		f.created = append(f.created, body)
		status := http.StatusCreated
		if len(f.createStatus) > 0 {
			status, f.createStatus = f.createStatus[0], f.createStatus[1:]
		}
		f.mu.Unlock()
		switch status {
		case http.StatusNotFound:
			w.WriteHeader(status)
			io.WriteString(w, `{"message":"No such image: `+body["Image"].(string)+`"}`)
		case http.StatusConflict:
			w.WriteHeader(status)
			io.WriteString(w, `{"message":"Conflict. The container name \"/`+r.URL.Query().Get("name")+`\" is already in use"}`)
		default:
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"Id":"job1","Warnings":[]}`)
		}
	case r.Method == http.MethodPost && rest == "/images/create":
		if f.pullError != "" {
			io.WriteString(w, `{"status":"Pulling"}`+"\n"+`{"error":"`+f.pullError+`"}`+"\n")
			return
		}
		io.WriteString(w, `{"status":"Pulling from hevc-encoder/sqs-dispatcher"}`+"\n"+`{"status":"Downloading","progress":"[=>  ]"}`+"\n"+`{"status":"Status: Downloaded newer image"}`+"\n")
	case r.Method == http.MethodPost && rest == "/containers/job1/start":
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && rest == "/containers/job1/logs":
		q := r.URL.Query()
		if q.Get("follow") != "1" || q.Get("stdout") != "1" || q.Get("stderr") != "1" {
			f.t.Errorf("logs query %v: want follow, stdout and stderr", q)
		}
		w.WriteHeader(http.StatusOK)
		frame(w, 1, f.stdout)
		frame(w, 2, f.stderr)
		w.(http.Flusher).Flush()
		f.logsStarted <- struct{}{}
		if f.blockLogs {
			<-r.Context().Done()
		}
	case r.Method == http.MethodPost && rest == "/containers/job1/wait":
		json.NewEncoder(w).Encode(map[string]any{"StatusCode": f.exitCode, "Error": nil})
	case r.Method == http.MethodPost && rest == "/containers/job1/stop":
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete && (rest == "/containers/job1" || strings.HasPrefix(rest, "/containers/old")):
		if r.URL.Query().Get("force") != "1" || r.URL.Query().Get("v") != "1" {
			f.t.Errorf("remove %s: want force=1&v=1, got %s", rest, r.URL.RawQuery)
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.Error(w, `{"message":"page not found"}`, http.StatusNotFound)
	}
}

// frame writes one frame of Docker's multiplexed log stream.
func frame(w io.Writer, stream byte, s string) {
	if s == "" {
		return
	}
	hdr := [8]byte{stream}
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(s)))
	w.Write(hdr[:])
	io.WriteString(w, s)
}

func (f *fakePortainer) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

type runResult struct {
	code           int
	stdout, stderr string
}

// runTool runs portainer-run with env (and nothing of this process's
// environment but PATH and HOME).
func runTool(t *testing.T, env map[string]string, args ...string) runResult {
	t.Helper()
	cmd := exec.Command(portainerRun(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	res := runResult{stdout: so.String(), stderr: se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.stdout+res.stderr, testAPIKey) {
		t.Errorf("portainer-run printed the API key:\nstdout: %s\nstderr: %s", res.stdout, res.stderr)
	}
	return res
}

var templateEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"STORAGE=s3", "QUEUE=sqs", "AWS_REGION=eu-central-1", "S3_BUCKET=my-hevc-bucket",
	"WORK_QUEUE_URL=https://sqs.eu-central-1.amazonaws.com/123456789012/hevc-encoder-work",
	"RESULTS_QUEUE_URL=https://sqs.eu-central-1.amazonaws.com/123456789012/hevc-encoder-results",
	"AWS_SHARED_CREDENTIALS_FILE=/run/secrets/aws_credentials", "LIBRARY_ROOT=/library", "LOG_FORMAT=json",
}

func portainerEnv(srv *httptest.Server) map[string]string {
	return map[string]string{
		"PORTAINER_URL":      srv.URL,
		"PORTAINER_API_KEY":  testAPIKey,
		"PORTAINER_ENDPOINT": "home",
	}
}

func TestPortainerRunProcess(t *testing.T) {
	f := newFake(t)
	f.template("tmpl-dl", "result-downloader", "registry.invalid/hevc-encoder/result-downloader:1.2.0", templateEnv)
	f.template("tmpl-sync", "nextcloud-syncer", "registry.invalid/hevc-encoder/nextcloud-syncer:1.2.0", []string{"NC_URL=https://cloud.example.com"})
	f.stdout, f.stderr, f.exitCode = "uploaded 3 files\nTODO 3 DONE 0\n", "warning: slow\n", 3
	srv := httptest.NewServer(f)
	defer srv.Close()

	res := runTool(t, portainerEnv(srv), "--timeout", "2h", "process", "--skip-upload")
	if res.code != 3 {
		t.Errorf("exit code %d, want the job's 3\nstderr: %s", res.code, res.stderr)
	}
	if res.stdout != f.stdout {
		t.Errorf("stdout %q, want the container's stdout %q", res.stdout, f.stdout)
	}
	if !strings.Contains(res.stderr, f.stderr) {
		t.Errorf("stderr %q lacks the container's stderr %q", res.stderr, f.stderr)
	}
	want := []string{
		"GET /api/endpoints",
		"GET /api/endpoints/3/docker/containers/json",
		"GET /api/endpoints/3/docker/containers/tmpl-dl/json",
		"POST /api/endpoints/3/docker/containers/create",
		"POST /api/endpoints/3/docker/containers/job1/start",
		"GET /api/endpoints/3/docker/containers/job1/logs",
		"POST /api/endpoints/3/docker/containers/job1/wait",
		"DELETE /api/endpoints/3/docker/containers/job1",
	}
	if got := f.callList(); !slices.Equal(got, want) {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if q := f.queries[0]; q.Get("name") != "home" {
		t.Errorf("endpoint looked up by %v, want name=home", q)
	}
	var filters map[string][]string
	json.Unmarshal([]byte(f.queries[1].Get("filters")), &filters)
	if !slices.Equal(filters["label"], []string{"com.docker.compose.project=hevc-encoder", "com.docker.compose.service=result-downloader"}) {
		t.Errorf("template filter %v", filters)
	}
	if got := f.queries[3].Get("name"); got != "hevc-encoder-process" {
		t.Errorf("container name %q, want hevc-encoder-process", got)
	}

	body := f.created[0]
	if body["Image"] != "registry.invalid/hevc-encoder/result-downloader:1.2.0" {
		t.Errorf("image %v, want the downloader at the stack's tag", body["Image"])
	}
	if got := toStrings(body["Cmd"]); !slices.Equal(got, []string{"process", "--skip-upload"}) {
		t.Errorf("cmd %v, want [process --skip-upload]", got)
	}
	env := toStrings(body["Env"])
	if !slices.Equal(env, templateEnv[1:]) {
		t.Errorf("env %v, want the stack's configuration without PATH: %v", env, templateEnv[1:])
	}
	if body["User"] != "1000:1000" || body["Tty"] != false {
		t.Errorf("user %v tty %v", body["User"], body["Tty"])
	}
	hc := body["HostConfig"].(map[string]any)
	if hc["NetworkMode"] != "hevc-encoder_default" {
		t.Errorf("network %v, want the stack's", hc["NetworkMode"])
	}
	if !slices.Equal(toStrings(hc["Binds"]), []string{"/photos:/library:rw"}) {
		t.Errorf("binds %v, want the library", hc["Binds"])
	}
	mounts, _ := json.Marshal(hc["Mounts"])
	if !strings.Contains(string(mounts), `"Target":"/run/secrets/aws_credentials"`) || !strings.Contains(string(mounts), `"ReadOnly":true`) {
		t.Errorf("mounts %s, want the secret read-only", mounts)
	}
	if hc["ReadonlyRootfs"] != true || !slices.Equal(toStrings(hc["CapDrop"]), []string{"ALL"}) || hc["AutoRemove"] != false || hc["Init"] != true {
		t.Errorf("host config %v: want the stack's hardening, no auto-remove (the exit code is read first), init", hc)
	}
	if _, ok := hc["RestartPolicy"]; ok {
		t.Errorf("a one-shot job must not inherit the restart policy")
	}
	labels := body["Labels"].(map[string]any)
	if labels["io.hevc-encoder.job"] != "process" || labels["com.docker.compose.project"] != nil {
		t.Errorf("labels %v: want the job label and no compose labels", labels)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestPortainerRunSync(t *testing.T) {
	f := newFake(t)
	f.template("tmpl-sync", "nextcloud-syncer", "registry.invalid/hevc-encoder/nextcloud-syncer@sha256:"+strings.Repeat("a", 64),
		[]string{"PATH=/x", "NC_URL=https://cloud.example.com", "NC_USERS=alice", "NC_PASS_alice_FILE=/run/secrets/nc_pass_alice", "ONCE=false", "LIBRARY_ROOT=/library"})
	f.stdout = "alice: 12 files moved\n"
	srv := httptest.NewServer(f)
	defer srv.Close()
	env := portainerEnv(srv)
	delete(env, "PORTAINER_ENDPOINT")
	env["PORTAINER_ENDPOINT_ID"] = "3"

	res := runTool(t, env, "sync")
	if res.code != 0 || res.stdout != f.stdout {
		t.Fatalf("code %d stdout %q stderr %s", res.code, res.stdout, res.stderr)
	}
	if calls := f.callList(); calls[0] != "GET /api/endpoints/3/docker/containers/json" {
		t.Errorf("with PORTAINER_ENDPOINT_ID no environment lookup is needed; first call %s", calls[0])
	}
	body := f.created[0]
	// Same service: the very image of the stack, digest and all.
	if body["Image"] != "registry.invalid/hevc-encoder/nextcloud-syncer@sha256:"+strings.Repeat("a", 64) {
		t.Errorf("image %v", body["Image"])
	}
	if cmd := body["Cmd"].([]any); len(cmd) != 0 {
		t.Errorf("cmd %v, want none", cmd)
	}
	want := []string{"NC_URL=https://cloud.example.com", "NC_USERS=alice", "NC_PASS_alice_FILE=/run/secrets/nc_pass_alice", "ONCE=true", "LIBRARY_ROOT=/library"}
	if got := toStrings(body["Env"]); !slices.Equal(got, want) {
		t.Errorf("env %v, want %v (ONCE=true, the password only as a file)", got, want)
	}
}

func TestPortainerRunPullsMissingImageAndClearsLeftover(t *testing.T) {
	f := newFake(t)
	f.template("tmpl-dl", "result-downloader", "registry.invalid/hevc-encoder/result-downloader:1.2.0", templateEnv)
	f.containers["hevc-encoder-trigger"] = map[string]any{"Id": "old1", "State": map[string]any{"Running": false, "Status": "exited"},
		"Config": map[string]any{"Labels": map[string]string{}}}
	f.createStatus = []int{http.StatusConflict, http.StatusNotFound}
	srv := httptest.NewServer(f)
	defer srv.Close()
	env := portainerEnv(srv)
	env["IMAGE_REGISTRY"] = "registry.invalid/me/hevc"
	env["IMAGE_TAG"] = "2.0.0"

	res := runTool(t, env, "trigger", "--redrive")
	if res.code != 0 {
		t.Fatalf("code %d stderr %s", res.code, res.stderr)
	}
	want := []string{
		"GET /api/endpoints",
		"GET /api/endpoints/3/docker/containers/json",
		"GET /api/endpoints/3/docker/containers/tmpl-dl/json",
		"POST /api/endpoints/3/docker/containers/create", // 409: a stopped leftover
		"GET /api/endpoints/3/docker/containers/hevc-encoder-trigger/json",
		"DELETE /api/endpoints/3/docker/containers/old1",
		"POST /api/endpoints/3/docker/containers/create", // 404: no image
		"POST /api/endpoints/3/docker/images/create",
		"POST /api/endpoints/3/docker/containers/create",
		"POST /api/endpoints/3/docker/containers/job1/start",
		"GET /api/endpoints/3/docker/containers/job1/logs",
		"POST /api/endpoints/3/docker/containers/job1/wait",
		"DELETE /api/endpoints/3/docker/containers/job1",
	}
	if got := f.callList(); !slices.Equal(got, want) {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := f.queries[7].Get("fromImage"); got != "registry.invalid/me/hevc/sqs-dispatcher:2.0.0" {
		t.Errorf("pulled %q, want IMAGE_REGISTRY/sqs-dispatcher:IMAGE_TAG", got)
	}
	if got := toStrings(f.created[2]["Cmd"]); !slices.Equal(got, []string{"trigger", "--redrive"}) {
		t.Errorf("cmd %v", got)
	}
}

func TestPortainerRunRefusesWhileRunning(t *testing.T) {
	f := newFake(t)
	f.template("tmpl-dl", "result-downloader", "registry.invalid/hevc-encoder/result-downloader:1.2.0", templateEnv)
	f.containers["hevc-encoder-status"] = map[string]any{"Id": "old2", "State": map[string]any{"Running": true, "Status": "running"},
		"Config": map[string]any{"Labels": map[string]string{}}}
	f.createStatus = []int{http.StatusConflict}
	srv := httptest.NewServer(f)
	defer srv.Close()

	res := runTool(t, portainerEnv(srv), "status")
	if res.code == 0 || !strings.Contains(res.stderr, "already running") {
		t.Errorf("code %d stderr %q: want a refusal naming the running job", res.code, res.stderr)
	}
	for _, c := range f.callList() {
		if strings.HasSuffix(c, "/start") || strings.HasPrefix(c, "DELETE") {
			t.Errorf("nothing may be started or removed while the job runs: %s", c)
		}
	}
}

func TestPortainerRunErrorsDoNotLeakTheKey(t *testing.T) {
	f := newFake(t)
	f.echoKeyOn401 = true
	srv := httptest.NewServer(f)
	defer srv.Close()

	// The server rejects the key and echoes it back; the answer is
	// reported, the key is not (runTool checks every byte of output).
	env := portainerEnv(srv)
	env["PORTAINER_API_KEY"] = testAPIKey + "-wrong"
	res := runTool(t, env, "status")
	if res.code == 0 || !strings.Contains(res.stderr, "401") {
		t.Errorf("code %d stderr %q: want the 401", res.code, res.stderr)
	}
	if strings.Contains(res.stderr, testAPIKey+"-wrong") {
		t.Errorf("stderr contains the key: %s", res.stderr)
	}

	// The key from a file (a Docker secret, a file in ~/.config).
	kf := filepath.Join(t.TempDir(), "key")
	os.WriteFile(kf, []byte(testAPIKey+"\n"), 0o600)
	env = portainerEnv(srv)
	delete(env, "PORTAINER_API_KEY")
	env["PORTAINER_API_KEY_FILE"] = kf
	env["PORTAINER_ENDPOINT"] = "nowhere"
	res = runTool(t, env, "status")
	if res.code == 0 || !strings.Contains(res.stderr, `no environment named "nowhere"`) || !strings.Contains(res.stderr, "home (id 3)") {
		t.Errorf("code %d stderr %q: want the known environments listed", res.code, res.stderr)
	}

	// Configuration errors are reported before any request.
	res = runTool(t, map[string]string{"PORTAINER_API_KEY": testAPIKey}, "sync")
	if res.code != 2 || !strings.Contains(res.stderr, "PORTAINER_URL is required") {
		t.Errorf("code %d stderr %q", res.code, res.stderr)
	}
	res = runTool(t, map[string]string{"PORTAINER_URL": srv.URL}, "sync")
	if res.code != 2 || !strings.Contains(res.stderr, "PORTAINER_API_KEY") {
		t.Errorf("code %d stderr %q", res.code, res.stderr)
	}
	res = runTool(t, portainerEnv(srv), "encode")
	if res.code != 2 || !strings.Contains(res.stderr, `unknown job "encode"`) {
		t.Errorf("code %d stderr %q", res.code, res.stderr)
	}
}

// Ctrl-C while the job runs stops and removes its container.
func TestPortainerRunInterruptStopsTheJob(t *testing.T) {
	f := newFake(t)
	f.template("tmpl-dl", "result-downloader", "registry.invalid/hevc-encoder/result-downloader:1.2.0", templateEnv)
	f.stdout, f.blockLogs = "waiting for results\n", true
	srv := httptest.NewServer(f)
	defer srv.Close()

	cmd := exec.Command(portainerRun(t), "process")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range portainerEnv(srv) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var se bytes.Buffer
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.logsStarted:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("portainer-run never followed the logs")
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 {
		t.Errorf("exit %v, want 130 after an interrupt\nstderr: %s", err, se.String())
	}
	calls := f.callList()
	n := len(calls)
	if n < 2 || calls[n-2] != "POST /api/endpoints/3/docker/containers/job1/stop" || calls[n-1] != "DELETE /api/endpoints/3/docker/containers/job1" {
		t.Errorf("after an interrupt the container must be stopped, then removed; requests:\n%s", strings.Join(calls, "\n"))
	}
}

// --local runs the same service on this machine, with the job's command and
// environment, and returns its exit code.
func TestPortainerRunLocal(t *testing.T) {
	repo := t.TempDir()
	os.MkdirAll(filepath.Join(repo, "services", "sqs-dispatcher"), 0o755)
	os.MkdirAll(filepath.Join(repo, "services", "nextcloud-syncer"), 0o755)
	os.WriteFile(filepath.Join(repo, "go.mod"), []byte("module example.com/fake\n\ngo 1.22\n"), 0o644)
	prog := `package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Println("args", os.Args[1:], "once", os.Getenv("ONCE"))
	os.Exit(4)
}
`
	os.WriteFile(filepath.Join(repo, "services", "sqs-dispatcher", "main.go"), []byte(prog), 0o644)
	os.WriteFile(filepath.Join(repo, "services", "nextcloud-syncer", "main.go"), []byte(prog), 0o644)
	env := map[string]string{"GOFLAGS": "-buildvcs=false"}

	res := runTool(t, env, "--local", "--repo", repo, "trigger", "--dry-run")
	if res.code != 4 || strings.TrimSpace(res.stdout) != "args [trigger --dry-run] once" {
		t.Errorf("code %d stdout %q stderr %s", res.code, res.stdout, res.stderr)
	}
	res = runTool(t, env, "--local", "--repo", repo, "sync")
	if res.code != 4 || strings.TrimSpace(res.stdout) != "args [] once true" {
		t.Errorf("code %d stdout %q stderr %s", res.code, res.stdout, res.stderr)
	}
}
