package media

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCPUsFromCgroups(t *testing.T) {
	cases := []struct {
		name   string
		files  map[string]string
		numCPU int
		want   int
	}{
		{name: "no cgroup files", numCPU: 8, want: 8},
		{name: "v2 unlimited", numCPU: 8, want: 8, files: map[string]string{
			"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "max 100000\n"}},
		{name: "v2 container root, 2 CPUs", numCPU: 48, want: 2, files: map[string]string{
			"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "200000 100000\n"}},
		{name: "v2 fractional quota rounds up", numCPU: 48, want: 2, files: map[string]string{
			"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "150000 100000\n"}},
		{name: "v2 quota above the CPUs", numCPU: 4, want: 4, files: map[string]string{
			"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "1600000 100000\n"}},
		{name: "v2 nested, tightest ancestor wins", numCPU: 16, want: 3, files: map[string]string{
			"proc/self/cgroup":                         "0::/ecs/task/container\n",
			"sys/fs/cgroup/ecs/task/container/cpu.max": "max 100000\n",
			"sys/fs/cgroup/ecs/task/cpu.max":           "300000 100000\n",
			"sys/fs/cgroup/ecs/cpu.max":                "800000 100000\n"}},
		{name: "v2 tiny quota is still one CPU", numCPU: 8, want: 1, files: map[string]string{
			"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "25000 100000\n"}},
		{name: "v1 cfs quota", numCPU: 32, want: 4, files: map[string]string{
			"proc/self/cgroup": "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n",
			"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us":  "400000\n",
			"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"}},
		{name: "v1 unlimited", numCPU: 6, want: 6, files: map[string]string{
			"proc/self/cgroup":                            "4:cpu,cpuacct:/\n",
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":  "-1\n",
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n"}},
		{name: "garbage ignored", numCPU: 2, want: 2, files: map[string]string{
			"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "lots\n"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, c.files)
			if got := cpusFrom(root, c.numCPU); got != c.want {
				t.Errorf("cpusFrom = %d, want %d", got, c.want)
			}
		})
	}
}

func TestCPUsOnThisMachine(t *testing.T) {
	if n := CPUs(); n < 1 {
		t.Fatalf("CPUs() = %d", n)
	}
}

func TestWithCPUsSizesX265(t *testing.T) {
	s := DefaultSettings().WithCPUs()
	if s.Threads != CPUs() {
		t.Fatalf("Threads = %d, want %d", s.Threads, CPUs())
	}
	if got := (Settings{Threads: 3}).WithCPUs().Threads; got != 3 {
		t.Fatalf("explicit Threads changed to %d", got)
	}
	p, err := NewPlan(Info{Path: "in.mp4", Duration: 1, Streams: []Stream{{Kind: "video", Codec: "h264", PixFmt: "yuv420p", Width: 64, Height: 64}}},
		Settings{CRF: 26, Preset: "fast", Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(p.Args, " ")
	if !strings.Contains(joined, "pools=2:frame-threads=2") {
		t.Fatalf("2 CPUs: want pools=2:frame-threads=2 in %q", joined)
	}
}

func TestFrameThreads(t *testing.T) {
	for workers, want := range map[int]int{0: 0, 1: 0, 2: 2, 3: 2, 4: 0, 16: 0} {
		if got := FrameThreads(workers); got != want {
			t.Errorf("FrameThreads(%d) = %d, want %d", workers, got, want)
		}
	}
}

// SeedParams is the documented way back to the seed's bitstream: with it,
// our plan's video on 2 CPUs is the seed command's, NAL for NAL (x265's
// SEI that spells out its options aside: it names the pool).
func TestSeedParamsGiveTheSeedsBitstream(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	ctx := context.Background()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.mp4")
	mediatest.Clip(t, in, mediatest.ClipOpts{Seconds: 1, Width: 256, Height: 144, NoAudio: true})
	info, err := Probe(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	// Without SEI NAL units (39 and 40: prefix and suffix SEI).
	videoOf := func(mp4 string) []byte {
		t.Helper()
		out, err := exec.CommandContext(ctx, "ffmpeg", "-v", "error", "-i", mp4, "-map", "0:v:0", "-c", "copy",
			"-bsf:v", "hevc_mp4toannexb,filter_units=remove_types=39|40", "-f", "hevc", "-").Output()
		if err != nil || len(out) == 0 {
			t.Fatalf("extract the video of %s: %v", mp4, err)
		}
		return out
	}
	seed := filepath.Join(dir, "seed.mp4")
	if out, err := exec.CommandContext(ctx, "ffmpeg", append([]string{"-v", "error"}, seedArgs(in, seed)...)...).CombinedOutput(); err != nil {
		t.Fatalf("seed command: %v: %s", err, out)
	}
	encode := func(name, params string) []byte {
		s := DefaultSettings()
		s.Threads, s.X265Params = 2, params
		p, err := NewPlan(info, s)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, name)
		if err := Encode(ctx, in, out, p, nil); err != nil {
			t.Fatal(err)
		}
		return videoOf(out)
	}
	if !bytes.Equal(encode("seedparams.mp4", SeedParams), videoOf(seed)) {
		t.Fatalf("X265_PARAMS=%s does not give the seed's video bitstream", SeedParams)
	}
	if bytes.Equal(encode("default.mp4", ""), videoOf(seed)) {
		t.Fatal("the default encode is the seed's: the frame threads and the balanced tune did not reach x265")
	}
}

// seedArgs is the seed's command: ffmpeg -i in.mp4 -c:v libx265 -crf 26 -preset fast -c:a copy out.mp4.
func seedArgs(in, out string) []string {
	return []string{"-y", "-i", in, "-c:v", "libx265", "-crf", "26", "-preset", "fast", "-c:a", "copy", out}
}
