// Command portainer-run runs one hevc-encoder job (sync, process, trigger,
// status) as a one-shot container on a Portainer environment, the way the
// seed's `make sync` did: it creates the container from the right image with
// the configuration of the running stack, attaches it to the stack's
// network, streams its logs, removes it, and exits with its exit code.
// With --local it runs the same service on this machine instead.
//
//	portainer-run [flags] sync|process|trigger|status [job arguments...]
//
// Environment: PORTAINER_URL, PORTAINER_API_KEY (or PORTAINER_API_KEY_FILE),
// PORTAINER_ENDPOINT (environment name) or PORTAINER_ENDPOINT_ID,
// PORTAINER_STACK (default hevc-encoder), PORTAINER_CA_FILE,
// PORTAINER_INSECURE_TLS, IMAGE_REGISTRY and IMAGE_TAG.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Job is one kind of one-shot run.
type Job struct {
	Name string
	// Service is the service (image, and directory under services/) that
	// runs the job.
	Service string
	// Template is the stack service whose container lends its environment,
	// volumes, secrets, user and network.
	Template string
	// Args come before the user's arguments.
	Args []string
	// Env is added to (and overrides) the template's environment.
	Env  map[string]string
	Help string
}

// Jobs are the make targets.
var Jobs = map[string]Job{
	"sync": {
		Name: "sync", Service: "nextcloud-syncer", Template: "nextcloud-syncer",
		Env:  map[string]string{"ONCE": "true"},
		Help: "one nextcloud-syncer pass now (Nextcloud → library)",
	},
	"process": {
		Name: "process", Service: "result-downloader", Template: "result-downloader", Args: []string{"process"},
		Help: "upload new videos to TODO/, then wait while the results come home (--skip-upload: only wait)",
	},
	"trigger": {
		Name: "trigger", Service: "sqs-dispatcher", Template: "result-downloader", Args: []string{"trigger"},
		Help: "re-queue every TODO/ object without a running task (--redrive: move the DLQ back)",
	},
	"status": {
		Name: "status", Service: "sqs-dispatcher", Template: "result-downloader", Args: []string{"status"},
		Help: "objects in TODO/ DONE/ FAILED/, queue and DLQ depths, running tasks; the library's history (savings, failures) and trash",
	},
}

// envDropped are template variables that belong to the template's image,
// not to the configuration.
var envDropped = map[string]bool{"PATH": true, "HOSTNAME": true, "HOME": true}

type options struct {
	local    bool
	repo     string
	stack    string
	image    string
	keep     bool
	pull     bool
	timeout  time.Duration
	endpoint string
	job      Job
	args     []string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "portainer-run:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: portainer-run [flags] JOB [job arguments...]\n\nJobs:\n")
	names := make([]string, 0, len(Jobs))
	for n := range Jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		j := Jobs[n]
		fmt.Fprintf(w, "  %-8s %s: %s\n", n, strings.TrimSpace(j.Service+" "+strings.Join(j.Args, " ")), j.Help)
	}
	fmt.Fprintf(w, "\nEnvironment: PORTAINER_URL, PORTAINER_API_KEY or PORTAINER_API_KEY_FILE,\n"+
		"PORTAINER_ENDPOINT (name) or PORTAINER_ENDPOINT_ID, PORTAINER_STACK,\n"+
		"PORTAINER_CA_FILE, PORTAINER_INSECURE_TLS, IMAGE_REGISTRY, IMAGE_TAG.\n\nFlags:\n")
	fs.PrintDefaults()
}

// run returns the exit code of the job (or of portainer-run itself).
func run(ctx context.Context, argv []string, getenv func(string) string, stdout, stderr io.Writer) (int, error) {
	var o options
	fs := flag.NewFlagSet("portainer-run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr, fs) }
	fs.BoolVar(&o.local, "local", false, "run the service on this machine (go build ./services/<service>) instead of through Portainer")
	fs.StringVar(&o.repo, "repo", ".", "repository root, for --local")
	fs.StringVar(&o.stack, "stack", envOr(getenv, "PORTAINER_STACK", "hevc-encoder"), "Portainer stack (compose project) whose containers lend their configuration (env PORTAINER_STACK)")
	fs.StringVar(&o.image, "image", "", "image to run (default: IMAGE_REGISTRY/<service>:IMAGE_TAG, else the stack's image with the service name swapped)")
	fs.BoolVar(&o.keep, "keep", false, "keep the container after it exits")
	fs.BoolVar(&o.pull, "pull", false, "pull the image even if the Docker host has it")
	fs.DurationVar(&o.timeout, "timeout", 0, "stop the job after this long (0: no limit)")
	fs.StringVar(&o.endpoint, "endpoint", getenv("PORTAINER_ENDPOINT"), "Portainer environment name (env PORTAINER_ENDPOINT; PORTAINER_ENDPOINT_ID wins)")
	if err := fs.Parse(argv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return 2, err
	}
	if fs.NArg() < 1 {
		usage(stderr, fs)
		return 2, errors.New("which job? sync, process, trigger or status")
	}
	job, ok := Jobs[fs.Arg(0)]
	if !ok {
		return 2, fmt.Errorf("unknown job %q: sync, process, trigger or status", fs.Arg(0))
	}
	o.job, o.args = job, fs.Args()[1:]
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	if o.local {
		return runLocal(ctx, o, stdout, stderr)
	}
	return runPortainer(ctx, o, getenv, stdout, stderr)
}

func envOr(getenv func(string) string, k, def string) string {
	if v := getenv(k); v != "" {
		return v
	}
	return def
}

// apiKey reads PORTAINER_API_KEY or the file PORTAINER_API_KEY_FILE names.
func apiKey(getenv func(string) string) (string, error) {
	if k := strings.TrimSpace(getenv("PORTAINER_API_KEY")); k != "" {
		return k, nil
	}
	if f := getenv("PORTAINER_API_KEY_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("PORTAINER_API_KEY_FILE: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", nil
}

func runPortainer(ctx context.Context, o options, getenv func(string) string, stdout, stderr io.Writer) (int, error) {
	key, err := apiKey(getenv)
	if err != nil {
		return 2, err
	}
	insecure, _ := strconv.ParseBool(getenv("PORTAINER_INSECURE_TLS"))
	if insecure {
		fmt.Fprintln(stderr, "portainer-run: warning: PORTAINER_INSECURE_TLS is set, the server's certificate is not checked")
	}
	if getenv("PORTAINER_URL") == "" {
		return 2, errors.New("PORTAINER_URL is required, e.g. https://portainer.lan:9443 (or use --local)")
	}
	c, err := NewClient(getenv("PORTAINER_URL"), key, getenv("PORTAINER_CA_FILE"), insecure)
	if err != nil {
		return 2, err
	}

	var endpoint int
	if s := getenv("PORTAINER_ENDPOINT_ID"); s != "" {
		if endpoint, err = strconv.Atoi(s); err != nil || endpoint <= 0 {
			return 2, fmt.Errorf("PORTAINER_ENDPOINT_ID: %q is not a positive number", s)
		}
	} else if endpoint, err = c.EndpointID(ctx, o.endpoint); err != nil {
		return 1, err
	}
	d := c.Docker(endpoint)

	tmpl, err := findTemplate(ctx, d, o.stack, o.job.Template)
	if err != nil {
		return 1, err
	}
	image := o.image
	if image == "" {
		if image, err = jobImage(getenv, tmpl.Config.Image, o.job); err != nil {
			return 2, err
		}
	}
	cfg := containerConfig(o, tmpl, image)
	name := o.stack + "-" + o.job.Name

	if o.pull {
		if err := d.Pull(ctx, image, stderr); err != nil {
			return 1, err
		}
	}
	id, err := createJob(ctx, d, name, cfg, stderr)
	if err != nil {
		return 1, err
	}
	fmt.Fprintf(stderr, "portainer-run: %s: container %s (%s) on environment %d, network %s\n",
		o.job.Name, name, image, endpoint, cfg.HostConfig.NetworkMode)

	// From here on the container exists: always clean up, even when
	// interrupted (with a context of its own).
	cleanup := func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if ctx.Err() != nil {
			if err := d.Stop(cctx, id, 30*time.Second); err != nil {
				fmt.Fprintln(stderr, "portainer-run: stop:", err)
			}
		}
		if o.keep {
			fmt.Fprintf(stderr, "portainer-run: kept container %s\n", name)
			return
		}
		if err := d.Remove(cctx, id); err != nil {
			fmt.Fprintln(stderr, "portainer-run: remove:", err)
		}
	}
	defer cleanup()

	if err := d.Start(ctx, id); err != nil {
		return 1, err
	}
	if err := d.Logs(ctx, id, stdout, stderr); err != nil {
		if ctx.Err() != nil {
			return 130, fmt.Errorf("%s interrupted: %w", o.job.Name, ctx.Err())
		}
		fmt.Fprintln(stderr, "portainer-run: logs:", err)
	}
	code, err := d.Wait(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return 130, fmt.Errorf("%s interrupted: %w", o.job.Name, ctx.Err())
		}
		return 1, err
	}
	if code != 0 {
		return code, fmt.Errorf("%s exited with status %d", o.job.Name, code)
	}
	return 0, nil
}

// findTemplate returns the stack's container of service, preferring a
// running one.
func findTemplate(ctx context.Context, d *Docker, stack, service string) (*ContainerInspect, error) {
	list, err := d.ListByLabels(ctx, "com.docker.compose.project="+stack, "com.docker.compose.service="+service)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("no container of service %s in stack %s: deploy deployments/portainer/hevc-encoder.yml as stack %q first (or set PORTAINER_STACK)", service, stack, stack)
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].State == "running" && list[j].State != "running" })
	return d.Inspect(ctx, list[0].ID)
}

// jobImage picks the job's image: IMAGE_REGISTRY/<service>:IMAGE_TAG, or the
// template's image with the template's service name replaced.
func jobImage(getenv func(string) string, tmplImage string, job Job) (string, error) {
	if reg := strings.TrimRight(getenv("IMAGE_REGISTRY"), "/"); reg != "" {
		return reg + "/" + job.Service + ":" + envOr(getenv, "IMAGE_TAG", "latest"), nil
	}
	if job.Service == job.Template {
		return tmplImage, nil
	}
	ref := tmplImage
	if i := strings.Index(ref, "@"); i >= 0 {
		return "", fmt.Errorf("the stack's %s image %s is pinned by digest: set IMAGE_REGISTRY and IMAGE_TAG, or --image, for %s", job.Template, tmplImage, job.Service)
	}
	name, tag := ref, ""
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name, tag = ref[:i], ref[i:]
	}
	dir, base := "", name
	if i := strings.LastIndex(name, "/"); i >= 0 {
		dir, base = name[:i+1], name[i+1:]
	}
	if base != job.Template {
		return "", fmt.Errorf("cannot derive the %s image from the stack's image %s: set IMAGE_REGISTRY and IMAGE_TAG, or --image", job.Service, tmplImage)
	}
	return dir + job.Service + tag, nil
}

// containerConfig is the one-shot container: the template's environment,
// mounts, secrets, user, hardening and network; the job's image, command
// and extra environment.
func containerConfig(o options, tmpl *ContainerInspect, image string) ContainerConfig {
	env := map[string]string{}
	var order []string
	for _, kv := range tmpl.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		if envDropped[k] {
			continue
		}
		if _, seen := env[k]; !seen {
			order = append(order, k)
		}
		env[k] = v
	}
	extra := make([]string, 0, len(o.job.Env))
	for k := range o.job.Env {
		extra = append(extra, k)
	}
	sort.Strings(extra)
	for _, k := range extra {
		if _, seen := env[k]; !seen {
			order = append(order, k)
		}
		env[k] = o.job.Env[k]
	}
	envList := make([]string, 0, len(order))
	for _, k := range order {
		envList = append(envList, k+"="+env[k])
	}
	th := tmpl.HostConfig
	init := true
	hc := HostConfig{
		Binds:          th.Binds,
		Mounts:         th.Mounts,
		Tmpfs:          th.Tmpfs,
		NetworkMode:    th.NetworkMode,
		ReadonlyRootfs: th.ReadonlyRootfs,
		CapDrop:        th.CapDrop,
		SecurityOpt:    th.SecurityOpt,
		Init:           &init,
		AutoRemove:     false, // removed after its exit code is read
	}
	if hc.NetworkMode == "" {
		hc.NetworkMode = o.stack + "_default"
	}
	return ContainerConfig{
		Image:        image,
		Cmd:          append(append([]string{}, o.job.Args...), o.args...),
		Env:          envList,
		User:         tmpl.Config.User,
		Labels:       map[string]string{"io.hevc-encoder.job": o.job.Name, "io.hevc-encoder.stack": o.stack},
		AttachStdout: true,
		AttachStderr: true,
		HostConfig:   hc,
		// A job serves no /healthz (its exit status says how it went):
		// the image's HEALTHCHECK, meant for the long-running service,
		// would call it unhealthy.
		Healthcheck: &HealthConfig{Test: []string{"NONE"}},
	}
}

// createJob creates the container. A leftover container of the same job
// that has stopped is removed first; a running one means the job is already
// running, which is an error. A missing image is pulled once.
func createJob(ctx context.Context, d *Docker, name string, cfg ContainerConfig, progress io.Writer) (string, error) {
	pulled, cleared := false, false
	for {
		id, err := d.Create(ctx, name, cfg)
		switch {
		case err == nil:
			return id, nil
		case errors.Is(err, ErrConflict) && !cleared:
			old, ierr := d.Inspect(ctx, name)
			if ierr != nil {
				return "", fmt.Errorf("%w (and inspecting it: %v)", err, ierr)
			}
			if old.State.Running {
				return "", fmt.Errorf("container %s is already running: wait for it, or stop it in Portainer", name)
			}
			fmt.Fprintf(progress, "portainer-run: removing the leftover container %s (%s)\n", name, old.State.Status)
			if rerr := d.Remove(ctx, old.ID); rerr != nil {
				return "", rerr
			}
			cleared = true
		case errors.Is(err, ErrNotFound) && !pulled:
			fmt.Fprintf(progress, "portainer-run: pulling %s\n", cfg.Image)
			if perr := d.Pull(ctx, cfg.Image, progress); perr != nil {
				return "", perr
			}
			pulled = true
		default:
			return "", err
		}
	}
}

// runLocal builds the service and runs it here with this environment.
func runLocal(ctx context.Context, o options, stdout, stderr io.Writer) (int, error) {
	dir, err := os.MkdirTemp("", "portainer-run-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, o.job.Service)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./services/"+o.job.Service)
	build.Dir = o.repo
	build.Stdout, build.Stderr = stderr, stderr
	// The services build in the repository's workspace (go.work), whatever
	// GOWORK this tool itself was started with.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOWORK=") {
			build.Env = append(build.Env, kv)
		}
	}
	if err := build.Run(); err != nil {
		return 1, fmt.Errorf("build %s: %w", o.job.Service, err)
	}
	cmd := exec.CommandContext(ctx, bin, append(append([]string{}, o.job.Args...), o.args...)...)
	cmd.Dir = o.repo
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = os.Environ()
	for k, v := range o.job.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// Let the service shut down cleanly on Ctrl-C.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), fmt.Errorf("%s exited with status %d", o.job.Name, ee.ExitCode())
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}
