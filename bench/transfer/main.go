// Command transfer benchmarks the s3-uploader and result-downloader
// binaries end to end against the AWS CLI (`aws s3 cp`, the OS package) on
// the same MinIO (started by pkg/awstest), side by side: upload of one
// large H.264 original and of many small ones, download of their HEVC
// results. Throughput, ratio ours / theirs and the peak RSS of our process.
//
//	cd bench/transfer && go run . [-size 1GiB] [-files 300] [-runs 3]
//	QUICK=1 go run .          # 128 MiB and 50 files, one run
//
// Results are printed and appended as JSON lines to $BENCH_OUT when set.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
)

const mib = 1 << 20

type opts struct {
	size     int64
	files    int
	runs     int
	awsCLI   string
	up, down string // binaries; built from the repository when empty
	upArgs   []string
	downArgs []string
	cache    string
	dir      string
	keep     bool
	only     string
}

// osAWS is the AWS CLI the comparison runs: the OS package's, which
// scripts/deps.sh bench installs when it is missing, whatever other aws
// comes first on PATH (main_test.go keeps the two in step).
const osAWS = "/usr/bin/aws"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "transfer:", err)
		os.Exit(1)
	}
}

func run() error {
	quick := os.Getenv("QUICK") == "1"
	var o opts
	var size, upArgs, downArgs string
	defSize, defFiles, defRuns := "1GiB", 300, 3
	if quick {
		defSize, defFiles, defRuns = "128MiB", 50, 1
	}
	flag.StringVar(&size, "size", defSize, "size of the large file (its HEVC result; the H.264 original is about as large)")
	flag.IntVar(&o.files, "files", defFiles, "number of small files (about 1 MiB each)")
	flag.IntVar(&o.runs, "runs", defRuns, "runs per case and side (the median is reported)")
	flag.StringVar(&o.awsCLI, "aws", osAWS, "AWS CLI (the OS package, which scripts/deps.sh bench installs)")
	flag.StringVar(&o.up, "uploader", "", "s3-uploader binary (default: go build ../../services/s3-uploader)")
	flag.StringVar(&o.down, "downloader", "", "result-downloader binary (default: go build ../../services/result-downloader)")
	flag.StringVar(&upArgs, "uploader-args", "", "extra flags for s3-uploader, space-separated (e.g. --concurrency 8)")
	flag.StringVar(&downArgs, "downloader-args", "", "extra flags for result-downloader, space-separated")
	flag.StringVar(&o.cache, "cache", defaultCacheDir(), "where generated videos are kept between runs")
	flag.StringVar(&o.dir, "dir", "", "work directory (default: a new one beside the cache, so that originals can be hard links)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.StringVar(&o.only, "only", "", "run only the cases whose name contains this (e.g. downloader, 300 files)")
	flag.Parse()
	var err error
	if o.size, err = parseSize(size); err != nil {
		return err
	}
	o.upArgs, o.downArgs = strings.Fields(upArgs), strings.Fields(downArgs)
	o.runs = max(1, o.runs)
	if _, err := os.Stat(o.awsCLI); err != nil {
		return fmt.Errorf("AWS CLI %s: %w (scripts/deps.sh bench installs the OS package awscli)", o.awsCLI, err)
	}
	if o.dir == "" {
		if err := os.MkdirAll(filepath.Dir(o.cache), 0o755); err != nil {
			return err
		}
		if o.dir, err = os.MkdirTemp(filepath.Dir(o.cache), "transfer-run-*"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(o.dir)
		}
	}
	ctx := context.Background()
	if err := o.build(ctx); err != nil {
		return err
	}
	logf("generating videos (cached in %s)", o.cache)
	c, err := makeCorpus(ctx, o.cache, o.size)
	if err != nil {
		return err
	}
	env, err := awstest.New(ctx, awstest.Options{Logf: logf})
	if err != nil {
		return err
	}
	defer env.Close()
	b := &bench{o: o, env: env, c: c, bucket: "transfer"}
	// A bucket without event notifications: both sides write the same keys,
	// and neither should pay for the relay running in this process.
	if _, err := env.S3.CreateBucket(ctx, createBucket(b.bucket)); err != nil {
		return fmt.Errorf("create bucket %s: %w", b.bucket, err)
	}
	return b.all(ctx)
}

func logf(f string, a ...any) { fmt.Fprintf(os.Stderr, "transfer: "+f+"\n", a...) }

// build compiles the two services unless given.
func (o *opts) build(ctx context.Context) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	for _, s := range []struct {
		bin  *string
		name string
	}{{&o.up, "s3-uploader"}, {&o.down, "result-downloader"}} {
		if *s.bin != "" {
			continue
		}
		out := filepath.Join(o.dir, "bin", s.name)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
		cmd.Dir = filepath.Join(root, "services", s.name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w: %s", s.name, err, b)
		}
		*s.bin = out
	}
	return nil
}

// repoRoot is the directory holding go.work, above the working directory.
func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no go.work above the working directory: run from the repository (or pass -uploader and -downloader)")
		}
		d = filepath.Dir(d)
	}
}

func median(s []sample) sample {
	c := append([]sample(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i].secs < c[j].secs })
	return c[len(c)/2]
}

func secsOf(s []sample) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = round(v.secs)
	}
	return out
}

func round(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', -1, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', -1, 64) + " MiB"
	}
	return fmt.Sprintf("%d B", n)
}

func since(t time.Time) string { return time.Since(t).Truncate(100 * time.Millisecond).String() }
