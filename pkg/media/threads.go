package media

import (
	"bufio"
	"math"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
)

// CPUs returns how many CPUs this process can keep busy: the CPUs it may
// run on (runtime.NumCPU, which honours the affinity mask) capped by the
// cgroup CPU quota when there is one (cgroup v2 cpu.max, else v1
// cpu.cfs_quota_us / cpu.cfs_period_us, on the process's own cgroup and
// its ancestors), rounded up; at least 1.
//
// Inside a container x265 sizes its thread pool from the CPUs the kernel
// reports online, not from the container's quota: on an ECS task with
// 2 vCPUs of quota on a larger host it would start one worker per host
// CPU and fight the quota's throttling.
func CPUs() int {
	return cpusFrom("/", runtime.NumCPU())
}

// cpusFrom is CPUs with the filesystem root and the CPU count injected (tests).
func cpusFrom(root string, numCPU int) int {
	n := max(numCPU, 1)
	if q := cgroupQuota(root); q > 0 {
		n = min(n, int(math.Ceil(q-1e-9)))
	}
	return max(n, 1)
}

// cgroupQuota returns the tightest CPU quota (in CPUs) found for this
// process's cgroups, or 0 when there is none.
func cgroupQuota(root string) float64 {
	best := 0.0
	take := func(q float64) {
		if q > 0 && (best == 0 || q < best) {
			best = q
		}
	}
	v2, v1 := selfCgroups(root)
	// v2: cpu.max in the process's cgroup and every ancestor. Inside a
	// container with its own cgroup namespace the path is "/" and the
	// container's limit is at the mount root.
	for dir := path.Clean("/" + v2); ; dir = path.Dir(dir) {
		take(readCPUMax(path.Join(root, "sys/fs/cgroup", dir, "cpu.max")))
		if dir == "/" {
			break
		}
	}
	// v1: the cpu controller's hierarchy.
	for _, mount := range []string{"sys/fs/cgroup/cpu,cpuacct", "sys/fs/cgroup/cpu"} {
		for _, dir := range []string{v1, "/"} {
			if dir == "" {
				continue
			}
			base := path.Join(root, mount, dir)
			quota := readInt(path.Join(base, "cpu.cfs_quota_us"))
			period := readInt(path.Join(base, "cpu.cfs_period_us"))
			if quota > 0 && period > 0 {
				take(float64(quota) / float64(period))
			}
		}
	}
	return best
}

// selfCgroups reads /proc/self/cgroup: the v2 path ("0::/path") and the
// v1 path of the cpu controller ("N:cpu,cpuacct:/path").
func selfCgroups(root string) (v2, v1 string) {
	f, err := os.Open(path.Join(root, "proc/self/cgroup"))
	if err != nil {
		return "/", ""
	}
	defer f.Close()
	v2 = "/"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "cpu" {
				v1 = parts[2]
			}
		}
	}
	return v2, v1
}

// readCPUMax parses a cgroup v2 cpu.max ("<quota> <period>" or "max <period>").
func readCPUMax(file string) float64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 || f[0] == "max" {
		return 0
	}
	quota, err1 := strconv.ParseFloat(f[0], 64)
	period := 100000.0
	if len(f) > 1 {
		if p, err := strconv.ParseFloat(f[1], 64); err == nil {
			period = p
		}
	}
	if err1 != nil || quota <= 0 || period <= 0 {
		return 0
	}
	return quota / period
}

func readInt(file string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// WithCPUs returns s with Threads sized to the CPUs of this process (see
// CPUs) when it is 0, so that x265 gets pools=N (and FrameThreads(N))
// instead of counting the host's CPUs: under a quota it would otherwise
// run a host-sized pool and frame count that the quota throttles.
func (s Settings) WithCPUs() Settings {
	if s.Threads == 0 {
		s.Threads = CPUs()
	}
	return s
}

// FrameThreads is the number of frames x265 encodes at once for a pool of
// workers, or 0 to leave it to x265 (which picks 1 below 4 workers, 2
// below 8, 3 below 16, …). With one frame in flight x265 leaves about a
// tenth of 2-3 CPUs idle (row dependencies inside the frame, frame ends);
// a second frame fills it. Its motion search may then only reach the
// reference rows already encoded, which BalancedTune pays for.
func FrameThreads(workers int) int {
	if workers == 2 || workers == 3 {
		return 2
	}
	return 0
}
