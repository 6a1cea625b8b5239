// Command transfer benchmarks the s3 storage adapter against the AWS CLI on
// the same MinIO (started by pkg/awstest): upload and download of one large
// file and of many small files, side by side, with the peak RSS of our side
// (which runs in a child process so that its rusage is its own).
//
//	cd bench/transfer && go run . [-size 1GiB] [-files 300] [-runs 3]
//	QUICK=1 go run .          # 128 MiB and 50 files
//
// Results are printed and appended as JSON lines to $BENCH_OUT when set.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
)

const mib = 1 << 20

type opts struct {
	size        int64
	files       int
	fileSize    int64
	runs        int
	partSize    int64
	concurrency int
	workers     int
	awsCLI      string
	dir         string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		if err := child(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "transfer child:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "transfer:", err)
		os.Exit(1)
	}
}

func run() error {
	quick := os.Getenv("QUICK") == "1"
	var o opts
	var size, fileSize, partSize string
	defSize, defFiles := "1GiB", 300
	if quick {
		defSize, defFiles = "128MiB", 50
	}
	flag.StringVar(&size, "size", defSize, "size of the large file")
	flag.IntVar(&o.files, "files", defFiles, "number of small files")
	flag.StringVar(&fileSize, "file-size", "1MiB", "size of each small file")
	flag.IntVar(&o.runs, "runs", 3, "runs per case and side (the median is reported)")
	flag.StringVar(&partSize, "part-size", "16MiB", "our part size (S3_PART_SIZE)")
	flag.IntVar(&o.concurrency, "concurrency", 4, "our parts in flight per transfer (S3_CONCURRENCY)")
	flag.IntVar(&o.workers, "workers", 10, "our files in flight for the many-files cases (the CLI's default is 10 requests)")
	flag.StringVar(&o.awsCLI, "aws", "/usr/bin/aws", "AWS CLI (the OS package)")
	flag.StringVar(&o.dir, "dir", "", "work directory (default: a temporary one)")
	flag.Parse()
	var err error
	if o.size, err = parseSize(size); err != nil {
		return err
	}
	if o.fileSize, err = parseSize(fileSize); err != nil {
		return err
	}
	if o.partSize, err = parseSize(partSize); err != nil {
		return err
	}
	if o.runs < 1 {
		o.runs = 1
	}
	if _, err := os.Stat(o.awsCLI); err != nil {
		return fmt.Errorf("AWS CLI %s: %w (apt-get install awscli)", o.awsCLI, err)
	}
	if o.dir == "" {
		if o.dir, err = os.MkdirTemp("", "transferbench-*"); err != nil {
			return err
		}
		defer os.RemoveAll(o.dir)
	}

	ctx := context.Background()
	env, err := awstest.New(ctx, awstest.Options{Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
	if err != nil {
		return err
	}
	defer env.Close()
	b := &bench{o: o, env: env}
	return b.all(ctx)
}

type bench struct {
	o   opts
	env *awstest.Env
}

type sample struct {
	secs   float64
	rssMiB float64
	cpu    float64 // user + system seconds
}

func (b *bench) all(ctx context.Context) error {
	o := b.o
	big := filepath.Join(o.dir, "src", "big.bin")
	many := filepath.Join(o.dir, "src", "many")
	fmt.Fprintf(os.Stderr, "transfer: writing %s and %d × %s of random data\n", human(o.size), o.files, human(o.fileSize))
	if err := writeRandom(big, o.size); err != nil {
		return err
	}
	for i := range o.files {
		if err := writeRandom(filepath.Join(many, fmt.Sprintf("clip-%04d.mp4", i)), o.fileSize); err != nil {
			return err
		}
	}
	bigName := human(o.size)
	manyName := fmt.Sprintf("%d files of %s", o.files, human(o.fileSize))
	manyBytes := int64(o.files) * o.fileSize
	s3url := func(p string) string { return "s3://" + b.env.Bucket + "/" + p }
	dl := filepath.Join(o.dir, "dl")

	cases := []struct {
		name, what string
		bytes      int64
		ours       []string
		theirs     []string
		clean      func()
	}{
		{"upload " + bigName, "upload", o.size,
			[]string{"put", "ours/big.bin", big},
			[]string{"s3", "cp", big, s3url("cli/big.bin")}, nil},
		{"download " + bigName, "download", o.size,
			[]string{"get", "ours/big.bin", filepath.Join(dl, "big.bin")},
			[]string{"s3", "cp", s3url("ours/big.bin"), filepath.Join(dl, "big.bin")},
			func() { os.RemoveAll(dl) }},
		{"upload " + manyName, "upload", manyBytes,
			[]string{"put-dir", "ours/many/", many},
			[]string{"s3", "cp", "--recursive", many, s3url("cli/many/")}, nil},
		{"download " + manyName, "download", manyBytes,
			[]string{"get-prefix", "ours/many/", filepath.Join(dl, "many")},
			[]string{"s3", "cp", "--recursive", s3url("ours/many/"), filepath.Join(dl, "many")},
			func() { os.RemoveAll(dl) }},
	}
	var failed []string
	for _, c := range cases {
		var ours, theirs []sample
		for r := range o.runs {
			// Alternate who goes first so that neither always gets a warm server.
			order := []bool{r%2 == 0, r%2 != 0}
			for _, isOurs := range order {
				if c.clean != nil {
					c.clean()
				}
				var s sample
				var err error
				if isOurs {
					s, err = b.runOurs(ctx, c.ours)
					ours = append(ours, s)
				} else {
					s, err = b.runCLI(ctx, c.theirs)
					theirs = append(theirs, s)
				}
				if err != nil {
					return fmt.Errorf("%s: %w", c.name, err)
				}
			}
		}
		if c.clean != nil {
			c.clean()
		}
		om, tm := median(ours), median(theirs)
		mbps := func(s sample) float64 { return float64(c.bytes) / 1e6 / s.secs }
		ratio := mbps(om) / mbps(tm)
		notes := fmt.Sprintf("median of %d runs; ours: part %s × %d in flight", o.runs, human(o.partSize), o.concurrency)
		if c.bytes == manyBytes {
			notes += fmt.Sprintf(", %d files in flight", o.workers)
		}
		notes += fmt.Sprintf("; %.2f s vs %.2f s; CPU %.2f s vs %.2f s", om.secs, tm.secs, om.cpu, tm.cpu)
		pass := ratio >= 1.0
		if !pass {
			failed = append(failed, c.name)
		}
		if err := emit(result{Issue: 3, Case: c.name + ": throughput", Ours: round(mbps(om)), Anchor: round(mbps(tm)),
			Unit: "MB/s", AnchorName: "aws cli", Ratio: round(ratio), Target: ">=1.0", Pass: pass, Notes: notes}); err != nil {
			return err
		}
		if c.bytes == o.size {
			rpass := om.rssMiB < 100
			if !rpass {
				failed = append(failed, c.name+" RSS")
			}
			if err := emit(result{Issue: 3, Case: c.name + ": peak RSS", Ours: round(om.rssMiB), Anchor: round(tm.rssMiB),
				Unit: "MiB", AnchorName: "aws cli", Ratio: round(om.rssMiB / tm.rssMiB), Target: "<100 MiB (ours)", Pass: rpass,
				Notes: "max RSS of the whole process (rusage), median run"}); err != nil {
				return err
			}
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(os.Stderr, "transfer: below target: %s\n", strings.Join(failed, ", "))
	}
	return nil
}

func median(s []sample) sample {
	sort.Slice(s, func(i, j int) bool { return s[i].secs < s[j].secs })
	return s[len(s)/2]
}

func round(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// runOurs runs this program as a child doing one transfer with the store.
func (b *bench) runOurs(ctx context.Context, args []string) (sample, error) {
	self, err := os.Executable()
	if err != nil {
		return sample{}, err
	}
	o := b.o
	cmd := exec.CommandContext(ctx, self, append([]string{"child",
		"-endpoint", b.env.S3Endpoint, "-bucket", b.env.Bucket,
		"-part-size", strconv.FormatInt(o.partSize, 10), "-concurrency", strconv.Itoa(o.concurrency),
		"-workers", strconv.Itoa(o.workers)}, args...)...)
	cmd.Env = append(os.Environ(), b.env.Environ()...)
	return measure(cmd)
}

func (b *bench) runCLI(ctx context.Context, args []string) (sample, error) {
	cmd := exec.CommandContext(ctx, b.o.awsCLI, append([]string{"--endpoint-url", b.env.S3Endpoint, "--only-show-errors", "--no-progress"}, args...)...)
	cmd.Env = append(os.Environ(), b.env.Environ()...)
	cmd.Env = append(cmd.Env, "AWS_DEFAULT_REGION="+b.env.Region, "AWS_PAGER=")
	return measure(cmd)
}

func measure(cmd *exec.Cmd) (sample, error) {
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = os.Stderr, &stderr
	start := time.Now()
	err := cmd.Run()
	secs := time.Since(start).Seconds()
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	s := sample{secs: secs}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.rssMiB = float64(ru.Maxrss) / 1024 // KiB on Linux
		s.cpu = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)).Seconds()
	}
	return s, nil
}

type result struct {
	Issue      int     `json:"issue"`
	Case       string  `json:"case"`
	Ours       float64 `json:"ours"`
	Anchor     float64 `json:"anchor"`
	Unit       string  `json:"unit"`
	AnchorName string  `json:"anchor_name"`
	Ratio      float64 `json:"ratio"`
	Target     string  `json:"target"`
	Pass       bool    `json:"pass"`
	Notes      string  `json:"notes"`
}

func emit(r result) error {
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep ">=" readable
	if err := enc.Encode(r); err != nil {
		return err
	}
	b := []byte(strings.TrimSuffix(buf.String(), "\n"))
	fmt.Println(string(b))
	if path := os.Getenv("BENCH_OUT"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("BENCH_OUT: %w", err)
		}
		defer f.Close()
		if _, err := f.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("BENCH_OUT: %w", err)
		}
	}
	return nil
}

func writeRandom(path string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

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
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}

// child does one transfer with the s3 store: put KEY FILE, get KEY FILE,
// put-dir PREFIX DIR, get-prefix PREFIX DIR.
func child(args []string) error {
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	endpoint := fs.String("endpoint", "", "")
	bucket := fs.String("bucket", "", "")
	partSize := fs.Int64("part-size", 16*mib, "")
	conc := fs.Int("concurrency", 4, "")
	workers := fs.Int("workers", 10, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 3 {
		return errors.New("usage: child [flags] put|get|put-dir|get-prefix KEY PATH")
	}
	op, key, path := fs.Arg(0), fs.Arg(1), fs.Arg(2)
	ctx := context.Background()
	st, err := s3store.New(ctx, s3store.Config{Bucket: *bucket, Endpoint: *endpoint, PathStyle: true, PartSize: *partSize, Concurrency: *conc})
	if err != nil {
		return err
	}
	switch op {
	case "put":
		return putFile(ctx, st, key, path)
	case "get":
		return getFile(ctx, st, key, path)
	case "put-dir":
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		return parallel(*workers, len(entries), func(i int) error {
			return putFile(ctx, st, key+entries[i].Name(), filepath.Join(path, entries[i].Name()))
		})
	case "get-prefix":
		var keys []string
		if err := storage.Walk(ctx, st, key, func(o storage.Object) error { keys = append(keys, o.Key); return nil }); err != nil {
			return err
		}
		return parallel(*workers, len(keys), func(i int) error {
			return getFile(ctx, st, keys[i], filepath.Join(path, strings.TrimPrefix(keys[i], key)))
		})
	}
	return fmt.Errorf("unknown op %q", op)
}

func putFile(ctx context.Context, st *s3store.Store, key, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	_, err = st.Put(ctx, key, f, storage.PutOptions{Size: fi.Size(), Metadata: map[string]string{
		storage.MetaSourceSize:  strconv.FormatInt(fi.Size(), 10),
		storage.MetaSourceMtime: fi.ModTime().UTC().Format(time.RFC3339),
	}})
	return err
}

func getFile(ctx context.Context, st *s3store.Store, key, path string) error {
	r, _, err := st.Get(ctx, key)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func parallel(workers, n int, fn func(int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}
