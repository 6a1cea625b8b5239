package deploytest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The image tests build every service's image from its Dockerfile with
// podman (deployments/docker/podman.sh; scripts/deps.sh installs podman and
// builds the base images) and run the images the way the Portainer stack
// does: read-only root, tmpfs /tmp, no capabilities, no-new-privileges.

// imageRegistry and imageTag name the test images, as IMAGE_REGISTRY and
// IMAGE_TAG would in the stack.
const (
	imageRegistry = "localhost/hevc-encoder"
	imageTag      = "test"
	// Images without ffmpeg must stay below this (static binary, CA
	// certificates, time zones).
	maxStaticImage = 30 << 20
)

func imageName(svc string) string { return imageRegistry + "/" + svc + ":" + imageTag }

// podmanCache is where podman.sh keeps podman's storage and configuration.
func podmanCache() string {
	c := os.Getenv("XDG_CACHE_HOME")
	if c == "" {
		h, _ := os.UserHomeDir()
		c = filepath.Join(h, ".cache")
	}
	return filepath.Join(c, "hevc-encoder", "podman")
}

// podmanEnviron is the environment for podman and podman-compose.
func podmanEnviron(extra ...string) []string {
	c := podmanCache()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "CONTAINERS_CONF" || k == "CONTAINERS_STORAGE_CONF" || k == "TMPDIR" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "CONTAINERS_CONF="+filepath.Join(c, "containers.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(c, "storage.conf"), "TMPDIR="+filepath.Join(c, "tmp"))
	return append(env, extra...)
}

// needPodman skips (fails under CI=true) without podman set up by
// `deployments/docker/podman.sh setup`.
func needPodman(t testing.TB) {
	t.Helper()
	if !hostIsLinux() {
		if inCI() {
			t.Fatal("podman images are tested on Linux (CI=true: required)")
		}
		t.Skip("podman images are tested on Linux")
	}
	needTool(t, "podman")
	if _, err := os.Stat(filepath.Join(podmanCache(), "containers.conf")); err != nil {
		msg := "podman is not set up for the tests: run deployments/docker/podman.sh setup (scripts/deps.sh test does)"
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// podman runs podman with the test configuration and returns its combined
// output.
func podman(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return podmanCtx(context.Background(), t, args...)
}

func podmanCtx(ctx context.Context, t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "podman", args...)
	cmd.Env = podmanEnviron()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	return out.String(), err
}

// imageBuild is one image built by buildImages.
type imageBuild struct {
	Image    string
	Duration time.Duration
	Err      error
	Output   string
}

var (
	imagesOnce  sync.Once
	imagesBuilt map[string]*imageBuild
	buildOrder  []string
)

// platformArch is the architecture of the test images: linux/amd64, or
// IMAGE_PLATFORMS (make images-test PLATFORMS=linux/arm64).
func platformArch() string {
	if p := os.Getenv("IMAGE_PLATFORMS"); p != "" {
		_, arch, _ := strings.Cut(p, "/")
		return arch
	}
	return "amd64"
}

// buildImage builds one Dockerfile (target "" is the final stage) with
// podman.sh build.
func buildImage(t testing.TB, dockerfile, image, target string) *imageBuild {
	t.Helper()
	root := repoRoot(t)
	arch := platformArch()
	args := []string{"build", dockerfile, image, "--platform", "linux/" + arch,
		// buildah does not set BUILDPLATFORM; the compiler runs here.
		"--build-arg", "BUILDPLATFORM=linux/amd64"}
	if target != "" {
		args = append(args, "--target", target)
	}
	start := time.Now()
	cmd := exec.Command(filepath.Join(root, "deployments", "docker", "podman.sh"), args...)
	cmd.Dir = root
	cmd.Env = podmanEnviron()
	out, err := cmd.CombinedOutput()
	b := &imageBuild{Image: image, Duration: time.Since(start), Output: string(out)}
	if err != nil {
		b.Err = fmt.Errorf("podman build -f %s: %w", dockerfile, err)
	}
	return b
}

// buildImages builds every service's image once per test run, one after
// the other (two cores; the ffmpeg stage they share is built once).
func buildImages(t testing.TB) map[string]*imageBuild {
	t.Helper()
	needPodman(t)
	imagesOnce.Do(func() {
		imagesBuilt = map[string]*imageBuild{}
		// The processor first: the others reuse its ffmpeg stage's layers.
		order := []string{"hevc-processor", "nextcloud-syncer", "s3-uploader", "result-downloader", "sqs-dispatcher"}
		for _, svc := range order {
			if !serviceHasMain(t, svc) {
				continue
			}
			// The builds read the module cache of this machine (GOPROXY=off
			// in the build): make sure it has every module.
			hostBinary(t, svc)
			df := filepath.Join("deployments", "docker", svc+".Dockerfile")
			b := buildImage(t, df, imageName(svc), "")
			if b.Err == nil && platformArch() == runtime.GOARCH {
				b.Err = sameBinary(t, imageName(svc), svc)
			}
			imagesBuilt[svc] = b
			buildOrder = append(buildOrder, svc)
		}
	})
	return imagesBuilt
}

// requireImage returns the service's image, built.
func requireImage(t testing.TB, svc string) string {
	t.Helper()
	requireService(t, svc)
	b := buildImages(t)[svc]
	if b == nil {
		t.Fatalf("no image for %s", svc)
	}
	if b.Err != nil {
		t.Fatalf("%v\n%s", b.Err, lastLines(b.Output, 60))
	}
	return b.Image
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stackHardening is the `podman run` form of the hevc-encoder stack's
// hardening (x-hardening in deployments/portainer/hevc-encoder.yml), as
// the stack's result-downloader has it: user, read-only root, tmpfs,
// dropped capabilities, security options, init.
func stackHardening(t testing.TB) []string {
	t.Helper()
	p, err := loadStack(t, "hevc-encoder.yml", stackEnv())
	if err != nil {
		t.Fatal(err)
	}
	s, ok := p.Services["result-downloader"]
	if !ok {
		t.Fatal("hevc-encoder.yml has no result-downloader")
	}
	var out []string
	if s.User != "" {
		out = append(out, "--user", s.User)
	}
	if s.ReadOnly {
		out = append(out, "--read-only")
	}
	for _, tm := range s.Tmpfs {
		out = append(out, "--tmpfs", tm)
	}
	for _, c := range s.CapDrop {
		out = append(out, "--cap-drop", c)
	}
	for _, c := range s.CapAdd {
		out = append(out, "--cap-add", c)
	}
	for _, o := range s.SecurityOpt {
		out = append(out, "--security-opt", o)
	}
	if s.Init != nil && *s.Init {
		out = append(out, "--init")
	}
	if !slices.Contains(out, "--read-only") || !slices.Contains(out, "--cap-drop") {
		t.Fatalf("the stack's hardening lost read_only or cap_drop: %v", out)
	}
	return out
}

// imageInfo is what podman image inspect says about an image.
type imageInfo struct {
	Size         int64
	Architecture string
	Config       struct {
		User       string
		Entrypoint []string
		Env        []string
	}
	// Healthcheck is the image's HEALTHCHECK (podman reports it here,
	// beside Config; only Docker's image format has one).
	Healthcheck *struct{ Test []string }
}

func inspectImage(t testing.TB, image string) imageInfo {
	t.Helper()
	out, err := podman(t, "image", "inspect", image)
	if err != nil {
		t.Fatalf("podman image inspect %s: %v\n%s", image, err, out)
	}
	var infos []imageInfo
	if err := json.Unmarshal([]byte(out), &infos); err != nil || len(infos) != 1 {
		t.Fatalf("podman image inspect %s: %v\n%s", image, err, out)
	}
	return infos[0]
}

// imageFile is one regular file of an image's filesystem.
type imageFile struct {
	Path string
	Size int64
	Mode int64
}

// imageFiles lists an image's files (podman create + export).
func imageFiles(t testing.TB, image string) []imageFile {
	t.Helper()
	id, err := podman(t, "create", image)
	if err != nil {
		t.Fatalf("podman create %s: %v\n%s", image, err, id)
	}
	id = strings.TrimSpace(lastLines(id, 1))
	defer podman(t, "rm", "-f", id)
	cmd := exec.Command("podman", "export", id)
	cmd.Env = podmanEnviron()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var files []imageFile
	tr := tar.NewReader(bufio.NewReader(stdout))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("podman export %s: %v", image, err)
		}
		if h.Typeflag == tar.TypeReg {
			files = append(files, imageFile{Path: "/" + strings.TrimPrefix(h.Name, "./"), Size: h.Size, Mode: h.Mode})
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("podman export %s: %v\n%s", image, err, stderr.String())
	}
	return files
}

var (
	reportMu    sync.Mutex
	reportLines = map[string][]string{}
)

// report adds lines to a section of the image report, written to
// $IMAGES_REPORT (make deploy-test prints it) and logged.
func report(t testing.TB, section string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		t.Log(l)
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	reportLines[section] = append(reportLines[section], lines...)
	p := os.Getenv("IMAGES_REPORT")
	if p == "" {
		return
	}
	var b strings.Builder
	for _, sec := range sortedKeys(reportLines) {
		fmt.Fprintf(&b, "%s\n", sec)
		for _, l := range reportLines[sec] {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
		_ = os.WriteFile(p, []byte(b.String()), 0o644)
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// hasFFmpegImage says which images must carry ffmpeg: the services that
// link pkg/media, and the dispatcher (its exec launcher runs the processor).
func hasFFmpegImage(t testing.TB, svc string) bool {
	return svc == "sqs-dispatcher" || importsMedia(t, svc)
}

// TestImages builds every service's image from its Dockerfile and runs it
// with the stack's hardening: non-root user, --help, ffmpeg where the image
// has it (a one-second libx265 encode), nothing writable but /tmp; sizes
// are reported and bounded.
func TestImages(t *testing.T) {
	needPodman(t)
	hardening := stackHardening(t)
	for _, svc := range Services {
		t.Run(svc, func(t *testing.T) {
			image := requireImage(t, svc)
			b := imagesBuilt[svc]
			info := inspectImage(t, image)

			// Non-root, numeric user (the stack overrides it with PUID:PGID).
			uid, _, _ := strings.Cut(info.Config.User, ":")
			if n, err := strconv.Atoi(uid); err != nil || n == 0 {
				t.Errorf("image user %q: want a numeric non-root uid", info.Config.User)
			}
			if info.Architecture != platformArch() {
				t.Errorf("image architecture %s, want %s", info.Architecture, platformArch())
			}
			// The HEALTHCHECK made it into the image (Docker's format):
			// the long-running services ask their /healthz, the others
			// declare none.
			wantHC := []string{"NONE"}
			if longRunning[svc] {
				wantHC = []string{"CMD", "/usr/local/bin/" + svc, "healthcheck"}
			}
			if hc := info.Healthcheck; hc == nil || !slices.Equal(hc.Test, wantHC) {
				t.Errorf("image healthcheck %+v, want test %q", hc, wantHC)
			}

			// --help, with the image's own user and with the stack's flags.
			for _, flags := range [][]string{nil, hardening} {
				args := append(append([]string{"run", "--rm"}, flags...), image, "--help")
				out, err := podman(t, args...)
				if err != nil || !strings.Contains(out, "Usage: "+svc) {
					t.Errorf("podman %s: %v\n%s", strings.Join(args, " "), err, lastLines(out, 20))
				}
			}

			files := imageFiles(t, image)
			sort.Slice(files, func(i, j int) bool { return files[i].Size > files[j].Size })
			var total int64
			paths := map[string]bool{}
			for _, f := range files {
				total += f.Size
				paths[f.Path] = true
				if f.Mode&0o6000 != 0 {
					t.Errorf("%s is setuid/setgid in the image", f.Path)
				}
			}
			withFFmpeg := paths["/usr/bin/ffmpeg"] && paths["/usr/bin/ffprobe"]
			wantFFmpeg := hasFFmpegImage(t, svc)
			switch {
			case wantFFmpeg && !withFFmpeg:
				t.Errorf("%s runs ffmpeg/ffprobe, but its image has no /usr/bin/ffmpeg and /usr/bin/ffprobe", svc)
			case !wantFFmpeg && paths["/usr/bin/ffmpeg"]:
				t.Errorf("%s does not run ffmpeg, but its image carries it", svc)
			case !wantFFmpeg && info.Size > maxStaticImage:
				t.Errorf("image size %s, want under %s for an image without ffmpeg", mib(info.Size), mib(maxStaticImage))
			}
			if svc == "sqs-dispatcher" && !paths["/usr/local/bin/hevc-processor"] {
				t.Errorf("the dispatcher's image lacks /usr/local/bin/hevc-processor (LAUNCHER=exec)")
			}
			var top []string
			for _, f := range files[:min(5, len(files))] {
				top = append(top, fmt.Sprintf("%s %s", filepath.Base(f.Path), mib(f.Size)))
			}
			report(t, "Images (linux/"+platformArch()+"): size, build time, biggest files",
				fmt.Sprintf("%-18s %9s  built in %-7s ffmpeg=%-5v %s", svc, mib(info.Size), b.Duration.Round(time.Second), withFFmpeg, strings.Join(top, ", ")))

			if !withFFmpeg {
				return
			}
			// ffmpeg encodes (1 s of lavfi, libx265) and ffprobe reads the
			// result, with the stack's flags: the output goes to a mounted
			// directory, ffmpeg's scratch to the tmpfs.
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			run := func(entry string, args ...string) (string, error) {
				a := append([]string{"run", "--rm"}, hardening...)
				a = append(a, "-v", dir+":/out", "--entrypoint", entry, image)
				return podman(t, append(a, args...)...)
			}
			if out, err := run("/usr/bin/ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=d=1:s=320x240:r=25",
				"-map", "0", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-tag:v", "hvc1",
				"-f", "tee", "[f=mp4]/tmp/clip.mp4|[f=mp4]/out/clip.mp4"); err != nil {
				t.Fatalf("ffmpeg encode in %s: %v\n%s", image, err, lastLines(out, 20))
			}
			out, err := run("/usr/bin/ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name,nb_frames", "-of", "csv=p=0", "/out/clip.mp4")
			// The last line: podman warns first when the image is for
			// another platform (make images-test PLATFORMS=linux/arm64).
			if err != nil || strings.TrimSpace(lastLines(out, 1)) != "hevc,25" {
				t.Errorf("ffprobe of the encode in %s: %v, got %q, want hevc,25", image, err, out)
			}
			// The root filesystem is read-only.
			if out, err := run("/usr/bin/ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=d=0.1", "-y", "/usr/local/bin/x.mp4"); err == nil {
				t.Errorf("ffmpeg could write into /usr/local/bin with --read-only:\n%s", out)
			}
		})
	}
}

// TestFFmpegImageBound reports what bounds the size of the images with
// ffmpeg: which Debian packages the files of the runtime come from, and the
// biggest packages ffmpeg pulls in (most of which stay out of the runtime).
func TestFFmpegImageBound(t *testing.T) {
	needPodman(t)
	requireImage(t, "hevc-processor") // its layers make the stage build quick
	stage := imageRegistry + "/ffmpeg-stage:" + imageTag
	b := buildImage(t, filepath.Join("deployments", "docker", "hevc-processor.Dockerfile"), stage, "ffmpeg")
	if b.Err != nil {
		t.Fatalf("%v\n%s", b.Err, lastLines(b.Output, 40))
	}
	// Every file of the runtime's /rootfs, with its size and package.
	script := `cd /rootfs && find . -type f ! -path './usr/share/zoneinfo/*' -printf '%s %P\n' | while read -r s p; do
  pkg=$(dpkg -S "/$p" 2>/dev/null || dpkg -S "/${p#usr/}" 2>/dev/null || echo "(no-package): "); echo "$s ${pkg%%:*}"; done
echo ---
dpkg-query -W -f '${Installed-Size} ${Package}\n' | sort -rn | head -n 12`
	out, err := podman(t, "run", "--rm", "--entrypoint", "/bin/sh", stage, "-c", script)
	if err != nil {
		t.Fatalf("listing the ffmpeg stage: %v\n%s", err, out)
	}
	runtimePart, pkgPart, _ := strings.Cut(out, "---\n")
	byPkg := map[string]int64{}
	var total int64
	for _, l := range strings.Split(strings.TrimSpace(runtimePart), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		byPkg[f[1]] += n
		total += n
	}
	pkgs := sortedKeys(byPkg)
	sort.SliceStable(pkgs, func(i, j int) bool { return byPkg[pkgs[i]] > byPkg[pkgs[j]] })
	var lines []string
	lines = append(lines, fmt.Sprintf("ffmpeg, ffprobe and their libraries in the runtime: %s from %d packages; the biggest:", mib(total), len(pkgs)))
	for _, p := range pkgs[:min(12, len(pkgs))] {
		lines = append(lines, fmt.Sprintf("  %-28s %s", p, mib(byPkg[p])))
	}
	lines = append(lines, "the biggest packages `apt-get install --no-install-recommends ffmpeg` installs (dpkg-query, KiB), most not in the runtime:")
	re := regexp.MustCompile(`^(\d+) (\S+)$`)
	for _, l := range strings.Split(strings.TrimSpace(pkgPart), "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			k, _ := strconv.ParseInt(m[1], 10, 64)
			lines = append(lines, fmt.Sprintf("  %-28s %s", m[2], mib(k<<10)))
		}
	}
	report(t, "What bounds the images with ffmpeg (linux/"+platformArch()+")", lines...)
}

// sameBinary checks that the image's /usr/local/bin/<svc> is, byte for
// byte, what the sources build here with the Dockerfiles' flags (Go builds
// are reproducible): a build that reused a stale layer (buildah does not
// hash the bind-mounted sources; podman.sh passes SOURCE_ID for that)
// would test yesterday's code.
func sameBinary(t testing.TB, image, svc string) error {
	t.Helper()
	want, err := os.ReadFile(hostBinary(t, svc))
	if err != nil {
		return err
	}
	ctr, err := podman(t, "create", image)
	if err != nil {
		return fmt.Errorf("podman create %s: %v: %s", image, err, ctr)
	}
	// The ID is the last line (podman may warn before it).
	lines := strings.Fields(strings.TrimSpace(ctr))
	ctr = lines[len(lines)-1]
	defer podman(t, "rm", "-f", ctr)
	got := filepath.Join(t.TempDir(), svc)
	if out, err := podman(t, "cp", ctr+":/usr/local/bin/"+svc, got); err != nil {
		return fmt.Errorf("podman cp %s from %s: %v: %s", svc, image, err, out)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		return err
	}
	if !bytes.Equal(b, want) {
		return fmt.Errorf("%s: /usr/local/bin/%s (%d bytes) is not what these sources build (%d bytes): a stale build layer", image, svc, len(b), len(want))
	}
	return nil
}
