package deploytest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStackEndToEnd deploys deployments/portainer/hevc-encoder.yml, unchanged,
// with podman-compose and the images built from the Dockerfiles, plus a test
// override (testdata/stack-test.yml) that adds MinIO, the SQS server with
// the MinIO → SQS relay, a WebDAV server in Nextcloud's shape and a home
// dispatcher whose exec launcher runs hevc-processor inside its container.
// A small library converts end to end, and `make sync`, `make process`,
// `make trigger` and `make status` run through scripts/portainer-run against
// a fake Portainer whose Docker API is podman's. Nothing may be lost: every
// original ends as its -hevc.mp4, the bucket and the queues end empty.
func TestStackEndToEnd(t *testing.T) {
	needPodman(t)
	needTool(t, "podman-compose")
	needTool(t, "make")
	ffmpegBin := needTool(t, "ffmpeg")
	ffprobeBin := needTool(t, "ffprobe")
	nodeBin := needTool(t, "node")
	rcloneBin := needTool(t, "rclone")
	minioBin := filepath.Join(goEnvValue(t, "GOPATH"), "bin", "minio")
	sqsModules := filepath.Join(filepath.Dir(podmanCache()), "npm", "node_modules")
	for _, p := range []string{minioBin, filepath.Join(sqsModules, "local-aws-sqs", "package.json")} {
		if _, err := os.Stat(p); err != nil {
			if inCI() {
				t.Fatalf("%v (scripts/deps.sh test installs MinIO and local-aws-sqs)", err)
			}
			t.Skipf("%v (scripts/deps.sh test installs MinIO and local-aws-sqs)", err)
		}
	}
	for _, svc := range []string{"nextcloud-syncer", "result-downloader", "s3-uploader", "sqs-dispatcher"} {
		requireImage(t, svc)
	}
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()

	// The host side: library, WebDAV data, secrets (files, as on the Docker
	// host), all writable by the stack's PUID:PGID.
	const uid, gid = 1000, 1000
	dir, err := os.MkdirTemp("", "stacktest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	library := filepath.Join(dir, "library")
	webdav := filepath.Join(dir, "webdav")
	secrets := filepath.Join(dir, "secrets")
	camera := filepath.Join(webdav, "InstantUpload", "Camera")
	for _, d := range []string{library, camera, secrets} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const accessKey, secretKey, ncPass = "stacktest-key", "stacktest-secret-key", "app-password-alice"
	writeFile(t, filepath.Join(secrets, "aws_credentials"), fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", accessKey, secretKey))
	writeFile(t, filepath.Join(secrets, "nc_pass_alice"), ncPass)

	// The library: clips in folders (one name with a space), one already in
	// Nextcloud; more arrive in Nextcloud later for `make sync`.
	old := time.Now().Add(-2 * time.Hour) // older than UPLOAD_MIN_AGE
	clip := func(p string, seconds string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(ffmpegBin, "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=d="+seconds+":s=320x240:r=25",
			"-f", "lavfi", "-i", "sine=d="+seconds, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "-y", p).CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg %s: %v\n%s", p, err, out)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	alice := filepath.Join(library, "Smartphones", "alice")
	clip(filepath.Join(alice, "2024", "a.mp4"), "1")
	clip(filepath.Join(alice, "2024", "b c.mp4"), "1.5")
	clip(filepath.Join(camera, "d.mp4"), "1")
	chownTree(t, dir, uid, gid)

	// Ports on the host for MinIO (bucket set-up) and SQS (queue checks).
	minioPort, sqsPort := freePort(t), freePort(t)
	env := map[string]string{
		"IMAGE_REGISTRY": imageRegistry, "IMAGE_TAG": imageTag,
		"AWS_REGION": "us-east-1", "S3_BUCKET": "hevc-encoder",
		"WORK_QUEUE_URL":    "http://sqs:9324/123456789012/work",
		"RESULTS_QUEUE_URL": "http://sqs:9324/123456789012/results",
		"ECS_CLUSTER":       "unused", "ECS_TASK_DEFINITION": "unused", "ECS_SUBNETS": "subnet-unused", "ECS_SECURITY_GROUPS": "sg-unused",
		"NC_URL": "http://webdav:8080", "NC_USERS": "alice", "NC_SOURCE_DIR": "InstantUpload/Camera",
		"LIBRARY_PATH": library, "SECRETS_DIR": secrets,
		"PUID": fmt.Sprint(uid), "PGID": fmt.Sprint(gid),
		"LOG_LEVEL": "info", "SYNC_INTERVAL": "1h", "RECONCILE_INTERVAL": "1m", "UPLOAD_MIN_AGE": "1m",
		// The override's peers.
		"PEER_IMAGE": "docker.io/library/debian:bookworm-slim", "TESTDATA": filepath.Join(root, "deployments", "deploytest", "testdata"),
		"NODE_BIN": nodeBin, "SQS_MODULES": sqsModules, "MINIO_BIN": minioBin, "RCLONE_BIN": rcloneBin, "WEBDAV_DIR": webdav,
		"NC_PASS": ncPass, "TEST_ACCESS_KEY": accessKey, "TEST_SECRET_KEY": secretKey,
		"MINIO_PORT": fmt.Sprint(minioPort), "SQS_PORT": fmt.Sprint(sqsPort),
	}
	const project = "hevc-encoder" // portainer-run's default stack name
	compose := func(args ...string) (string, error) {
		t.Helper()
		ctx := ctx
		if ctx.Err() != nil { // cleanup, after the test's context ended
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
		}
		a := append([]string{"-p", project,
			"-f", filepath.Join(root, "deployments", "portainer", "hevc-encoder.yml"),
			"-f", filepath.Join(root, "deployments", "deploytest", "testdata", "stack-test.yml")}, args...)
		cmd := exec.CommandContext(ctx, "podman-compose", a...)
		cmd.Dir = dir
		cmd.Env = podmanEnviron()
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.WaitDelay = 30 * time.Second
		err := cmd.Run()
		return out.String(), err
	}
	logs := func() string {
		var b strings.Builder
		for _, c := range []string{"sqs", "minio", "webdav", "sqs-dispatcher", "result-downloader", "s3-uploader", "nextcloud-syncer"} {
			out, _ := podman(t, "logs", "--tail", "40", project+"_"+c+"_1")
			fmt.Fprintf(&b, "--- %s\n%s\n", c, out)
		}
		return b.String()
	}
	// A previous run's containers would hold the names: the stack's, and
	// the jobs portainer-run starts (hevc-encoder-<job>), which a killed
	// run can leave running.
	compose("down", "-t", "5")
	if out, _ := podman(t, "ps", "-a", "-q", "--filter", "name=^"+project+"-"); strings.TrimSpace(out) != "" {
		podman(t, append([]string{"rm", "-f", "-t", "5"}, strings.Fields(out)...)...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs())
		}
		if out, err := compose("down", "-t", "10"); err != nil {
			t.Logf("podman-compose down: %v\n%s", err, out)
		}
	})

	// Peers first: the stack's services check the bucket and queues at start.
	if out, err := compose("up", "-d", "sqs"); err != nil {
		t.Fatalf("podman-compose up sqs: %v\n%s", err, out)
	}
	sqsURL := fmt.Sprintf("http://127.0.0.1:%d", sqsPort)
	running := func(svc string) {
		t.Helper()
		if out, _ := podman(t, "inspect", "-f", "{{.State.Status}}", project+"_"+svc+"_1"); strings.TrimSpace(out) == "exited" {
			l, _ := podman(t, "logs", "--tail", "40", project+"_"+svc+"_1")
			t.Fatalf("the %s container exited:\n%s", svc, l)
		}
	}
	waitFor(ctx, t, "the SQS server and its queues", func() error {
		running("sqs")
		_, err := sqsCall(ctx, sqsURL, "GetQueueUrl", map[string]any{"QueueName": "results"})
		return err
	})
	if out, err := compose("up", "-d", "minio", "webdav"); err != nil {
		t.Fatalf("podman-compose up minio webdav: %v\n%s", err, out)
	}
	s3 := &s3Client{endpoint: fmt.Sprintf("http://127.0.0.1:%d", minioPort), region: env["AWS_REGION"], access: accessKey, secret: secretKey}
	waitFor(ctx, t, "MinIO", func() error {
		running("minio")
		_, err := s3.do(ctx, http.MethodGet, "/minio/health/ready", "", nil)
		return err
	})
	if _, err := s3.do(ctx, http.MethodPut, "/"+env["S3_BUCKET"], "", nil); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	// As terraform/ configures S3: TODO/*.mp4 (both spellings) → work,
	// DONE/ → results.
	notif := `<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
		queueRule("todo-to-work", "WORK", "TODO/", ".mp4") + queueRule("todo-upper-to-work", "WORK", "TODO/", ".MP4") +
		queueRule("done-to-results", "RESULTS", "DONE/", "") + `</NotificationConfiguration>`
	// MinIO answers before its notification targets are registered
	// ("destination ARN does not exist" for a few seconds).
	waitFor(ctx, t, "bucket notifications", func() error {
		_, err := s3.do(ctx, http.MethodPut, "/"+env["S3_BUCKET"], "notification=", []byte(notif))
		return err
	})

	// The stack, as Portainer deploys it: the syncer takes d.mp4 from
	// Nextcloud at start, the uploader uploads the library once, the
	// dispatcher encodes, the downloader brings the results home.
	if out, err := compose("up", "-d"); err != nil {
		t.Fatalf("podman-compose up: %v\n%s", err, out)
	}
	originals := []string{"2024/a.mp4", "2024/b c.mp4", "d.mp4"}
	waitFor(ctx, t, "the syncer's first pass (Nextcloud → library)", func() error {
		if _, err := os.Stat(filepath.Join(alice, "d.mp4")); err != nil {
			if _, err2 := os.Stat(filepath.Join(alice, "d-hevc.mp4")); err2 != nil {
				return err
			}
		}
		return nil
	})

	// Health: each long-running service answers its image's HEALTHCHECK
	// command (its own /healthz on METRICS_ADDR) as healthy. The
	// dispatcher (defined by the test's override, so with the image's
	// HEALTHCHECK) through podman's own health check; the stack file's
	// services by running the command (podman-compose 1.0.3 wraps a
	// healthcheck's CMD in /bin/sh, which the images do not have).
	for _, svc := range []string{"nextcloud-syncer", "result-downloader", "sqs-dispatcher"} {
		ctr := project + "_" + svc + "_1"
		waitFor(ctx, t, svc+" healthy", func() error {
			running(svc)
			if out, err := podman(t, "exec", ctr, "/usr/local/bin/"+svc, "healthcheck"); err != nil || strings.TrimSpace(lastLines(out, 1)) != "ok" {
				return fmt.Errorf("%s healthcheck: %v: %s", svc, err, out)
			}
			return nil
		})
	}
	if out, err := podman(t, "healthcheck", "run", project+"_sqs-dispatcher_1"); err != nil {
		t.Errorf("podman healthcheck run sqs-dispatcher: %v\n%s", err, out)
	}

	// The fake Portainer: API key, environments, and Docker's API answered
	// by podman's (podman system service).
	portainer := fakePortainerOverPodman(t, dir)
	makeJob := func(target string, args ...string) string {
		t.Helper()
		a := []string{"--no-print-directory", "-C", root, target}
		if len(args) > 0 {
			a = append(a, "ARGS="+strings.Join(args, " "))
		}
		cmd := exec.CommandContext(ctx, "make", a...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
			"PORTAINER_URL=" + portainer.URL, "PORTAINER_API_KEY=" + stackAPIKey, "PORTAINER_ENDPOINT=local",
			"IMAGE_REGISTRY=" + imageRegistry, "IMAGE_TAG=" + imageTag}
		for _, kv := range os.Environ() { // the Go toolchain's settings, for building portainer-run
			if strings.HasPrefix(kv, "GO") || strings.HasPrefix(kv, "XDG_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		out, err := cmd.CombinedOutput()
		if strings.Contains(string(out), stackAPIKey) {
			t.Errorf("make %s printed the API key", target)
		}
		if err != nil {
			t.Fatalf("make %s %v: %v\n%s", target, args, err, out)
		}
		t.Logf("make %s %v:\n%s", target, args, lastLines(string(out), 15))
		return string(out)
	}

	// make sync: a clip that arrives in Nextcloud now is moved by a job.
	clip(filepath.Join(camera, "e.mp4"), "1")
	chownTree(t, webdav, uid, gid)
	originals = append(originals, "e.mp4")
	makeJob("sync")
	if _, err := os.Stat(filepath.Join(camera, "e.mp4")); err == nil {
		t.Errorf("make sync left e.mp4 in Nextcloud")
	}
	if _, err := os.Stat(filepath.Join(alice, "e.mp4")); err != nil {
		t.Errorf("make sync: %v", err)
	}

	// make process: uploads what is new (e.mp4) and waits until TODO/ and
	// DONE/ are empty, with every result at home.
	// The stack's result-downloader is stopped meanwhile, so that this job
	// downloads the results itself. With both running, a result the service
	// installs first is reported by `process` as "gone from TODO/ with no
	// result in DONE/" and the job fails (a race in process, not here).
	if out, err := podman(t, "stop", "-t", "30", project+"_result-downloader_1"); err != nil {
		t.Fatalf("podman stop result-downloader: %v\n%s", err, out)
	}
	makeJob("process")
	if out, err := podman(t, "start", project+"_result-downloader_1"); err != nil {
		t.Fatalf("podman start result-downloader: %v\n%s", err, out)
	}
	waitFor(ctx, t, "every original replaced by its -hevc.mp4", func() error {
		for _, o := range originals {
			p := filepath.Join(alice, o)
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s is still there", o)
			}
			if _, err := os.Stat(strings.TrimSuffix(p, ".mp4") + "-hevc.mp4"); err != nil {
				return err
			}
		}
		return nil
	})
	// make trigger: nothing is left to re-queue.
	if out := makeJob("trigger"); !strings.Contains(out, "sent 0;") {
		t.Errorf("make trigger after the conversion should send nothing:\n%s", out)
	}
	// make status: the bucket and the queues are empty, once the stack's
	// own result-downloader (started again after `make process`) has
	// deleted the results messages of what `process` installed: until
	// then one may be in flight.
	sctx, scancel := context.WithTimeout(ctx, 3*time.Minute)
	defer scancel()
	var st string
	waitFor(sctx, t, "make status to show an empty pipeline", func() error {
		st = makeJob("status", "--json")
		i := strings.Index(st, "{")
		if i < 0 {
			return fmt.Errorf("no JSON in make status's output:\n%s", st)
		}
		return statusEmpty(st[i:])
	})

	// make status shows the library too (LIBRARY_ROOT and the mount come
	// from the result-downloader container): one conversion per original
	// in its history.
	var ls struct {
		Library *struct {
			History struct {
				AllTime struct {
					Converted int `json:"converted"`
				} `json:"all_time"`
			} `json:"history"`
		} `json:"library"`
	}
	if i := strings.Index(st, "{"); i < 0 || json.NewDecoder(strings.NewReader(st[i:])).Decode(&ls) != nil ||
		ls.Library == nil || ls.Library.History.AllTime.Converted != len(originals) {
		t.Errorf("make status --json: want the library's history with %d conversions:\n%s", len(originals), st)
	}

	// Nothing lost: the library holds exactly one HEVC file per original,
	// and nothing else (besides its state directory: history, trash);
	// Nextcloud is empty.
	var got []string
	filepath.WalkDir(library, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == ".hevc-encoder" {
			return filepath.SkipDir
		}
		if err == nil && !d.IsDir() {
			r, _ := filepath.Rel(alice, p)
			got = append(got, filepath.ToSlash(r))
		}
		return nil
	})
	var want []string
	for _, o := range originals {
		want = append(want, strings.TrimSuffix(o, ".mp4")+"-hevc.mp4")
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("library after the run: %q, want %q", got, want)
	}
	for _, w := range want {
		out, err := exec.Command(ffprobeBin, "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name,codec_tag_string", "-of", "csv=p=0", filepath.Join(alice, w)).Output()
		if err != nil || strings.TrimSpace(string(out)) != "hevc,hvc1" {
			t.Errorf("%s: %v %q, want hevc,hvc1", w, err, out)
		}
	}
	left := 0
	filepath.WalkDir(webdav, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left++
		}
		return nil
	})
	if left != 0 {
		t.Errorf("%d file(s) left in Nextcloud", left)
	}
	report(t, "Stack end to end (podman-compose)", fmt.Sprintf("%d clips (library and Nextcloud) synced, encoded in the dispatcher's container and brought home, none lost; make sync/process/trigger/status through the fake Portainer over podman", len(originals)))
}

const stackAPIKey = "ptr_stacktest-key-not-for-printing"

// fakePortainerOverPodman serves the parts of Portainer's API that
// portainer-run uses: it checks the API key, lists one environment
// ("local", id 1) and hands /api/endpoints/1/docker/* to podman's
// Docker-compatible API, so every container operation is real.
func fakePortainerOverPodman(t *testing.T, dir string) *httptest.Server {
	t.Helper()
	sock := filepath.Join(dir, "podman.sock")
	cmd := exec.Command("podman", "system", "service", "--time=0", "unix://"+sock)
	cmd.Env = podmanEnviron()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("podman system service: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitFor(ctx, t, "podman system service", func() error {
		resp, err := (&http.Client{Transport: tr}).Get("http://podman/_ping")
		if err != nil {
			return fmt.Errorf("%w\n%s", err, out.String())
		}
		resp.Body.Close()
		return nil
	})
	const prefix = "/api/endpoints/1/docker"
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "podman"
			r.Out.URL.Path = strings.TrimPrefix(r.In.URL.Path, prefix)
			r.Out.URL.RawPath = ""
			r.Out.Header.Del("X-API-Key")
		},
		Transport:      tr,
		FlushInterval:  -1, // logs stream
		ModifyResponse: dockerNetworkMode,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != stackAPIKey {
			http.Error(w, `{"message":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		switch {
		case r.URL.Path == "/api/endpoints":
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode([]map[string]any{{"Id": 1, "Name": "local"}})
		case strings.HasPrefix(r.URL.Path, prefix+"/"):
			proxy.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// dockerNetworkMode makes podman's container inspect answer as Docker's
// does for a compose service: podman reports HostConfig.NetworkMode
// "bridge" for a container on the project's network, Docker that network's
// name ("hevc-encoder_default"), which portainer-run copies to the job.
func dockerNetworkMode(resp *http.Response) error {
	r := resp.Request
	if r.Method != http.MethodGet || resp.StatusCode != http.StatusOK || !inspectPath.MatchString(r.URL.Path) {
		return nil
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	var c map[string]any
	if json.Unmarshal(b, &c) == nil {
		hc, _ := c["HostConfig"].(map[string]any)
		ns, _ := c["NetworkSettings"].(map[string]any)
		nets, _ := ns["Networks"].(map[string]any)
		if hc != nil && hc["NetworkMode"] == "bridge" && len(nets) == 1 {
			for name := range nets {
				if name != "podman" && name != "bridge" {
					hc["NetworkMode"] = name
				}
			}
			if nb, err := json.Marshal(c); err == nil {
				b = nb
			}
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	return nil
}

var inspectPath = regexp.MustCompile(`^(/v[0-9.]+)?/containers/[^/]+/json$`)

// statusEmpty reads `sqs-dispatcher status --json` and reports whether
// TODO/, DONE/, FAILED/, both queues and their dead-letter queues are empty.
// statusEmpty says what `status --json` s shows that is not empty (nil
// when the bucket and every queue are).
func statusEmpty(s string) error {
	type depth struct {
		Visible  int `json:"visible"`
		InFlight int `json:"in_flight"`
	}
	type queue struct {
		depth
		DLQ *depth `json:"dead_letter"`
	}
	var st struct {
		Objects map[string]struct {
			Count int `json:"count"`
		} `json:"objects"`
		Work    *queue `json:"work_queue"`
		Results *queue `json:"results_queue"`
	}
	if err := json.NewDecoder(strings.NewReader(s)).Decode(&st); err != nil {
		return fmt.Errorf("status --json: %w", err)
	}
	if len(st.Objects) != 3 || st.Work == nil || st.Results == nil {
		return fmt.Errorf("status --json lacks objects or queues:\n%s", s)
	}
	var problems []string
	for k, o := range st.Objects {
		if o.Count != 0 {
			problems = append(problems, fmt.Sprintf("%d object(s) in %s", o.Count, k))
		}
	}
	for name, q := range map[string]*queue{"work": st.Work, "results": st.Results} {
		if q.Visible+q.InFlight != 0 || q.DLQ == nil || q.DLQ.Visible+q.DLQ.InFlight != 0 {
			problems = append(problems, fmt.Sprintf("%s queue not empty: %+v dlq %+v", name, q.depth, q.DLQ))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func writeFile(t testing.TB, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o440); err != nil {
		t.Fatal(err)
	}
}

func chownTree(t testing.TB, dir string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatalf("chown %s: %v (the stack runs as PUID:PGID)", dir, err)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func goEnvValue(t testing.TB, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// waitFor polls check until it succeeds or ctx ends (generous deadlines:
// the machine is shared).
func waitFor(ctx context.Context, t testing.TB, what string, check func() error) {
	t.Helper()
	var last error
	for {
		if last = check(); last == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last: %v)", what, ctx.Err(), last)
		case <-time.After(time.Second):
		}
	}
}

func queueRule(id, target, prefix, suffix string) string {
	rules := `<FilterRule><Name>prefix</Name><Value>` + prefix + `</Value></FilterRule>`
	if suffix != "" {
		rules += `<FilterRule><Name>suffix</Name><Value>` + suffix + `</Value></FilterRule>`
	}
	return `<QueueConfiguration><Id>` + id + `</Id><Queue>arn:minio:sqs::` + target + `:webhook</Queue>` +
		`<Event>s3:ObjectCreated:*</Event><Filter><S3Key>` + rules + `</S3Key></Filter></QueueConfiguration>`
}

// sqsCall is one call of SQS's JSON protocol (local-aws-sqs checks no
// signature).
func sqsCall(ctx context.Context, endpoint, action string, body map[string]any) (map[string]any, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", "AmazonSQS."+action)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil && resp.StatusCode == http.StatusOK {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("SQS %s: %s %v", action, resp.Status, out)
	}
	return out, nil
}

// s3Client signs requests to MinIO with AWS Signature Version 4 (the
// bucket set-up is two calls; this module does not link the AWS SDK).
type s3Client struct {
	endpoint, region, access, secret string
}

func (c *s3Client) do(ctx context.Context, method, path, query string, body []byte) ([]byte, error) {
	u, err := url.Parse(c.endpoint + path)
	if err != nil {
		return nil, err
	}
	u.RawQuery = query
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	amzDate, day := now.Format("20060102T150405Z"), now.Format("20060102")
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Content-Sha256", payload)
	canonQuery := query
	if canonQuery != "" && !strings.Contains(canonQuery, "=") {
		canonQuery += "="
	}
	signed := "host;x-amz-content-sha256;x-amz-date"
	canon := strings.Join([]string{method, u.EscapedPath(), canonQuery,
		"host:" + u.Host + "\nx-amz-content-sha256:" + payload + "\nx-amz-date:" + amzDate + "\n", signed, payload}, "\n")
	scope := day + "/" + c.region + "/s3/aws4_request"
	ch := sha256.Sum256([]byte(canon))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(ch[:])
	mac := func(key []byte, s string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	k := mac(mac(mac(mac([]byte("AWS4"+c.secret), day), c.region), "s3"), "aws4_request")
	req.Header.Set("Authorization", fmt.Sprintf("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
		c.access, scope, signed, hex.EncodeToString(mac(k, toSign))))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s?%s: %s %s", method, path, query, resp.Status, b.String())
	}
	return b.Bytes(), nil
}
