package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/benchline"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
)

type bench struct {
	o      opts
	env    *awstest.Env
	c      corpus
	bucket string
}

func createBucket(name string) *s3.CreateBucketInput { return &s3.CreateBucketInput{Bucket: &name} }

// set is the files of one case: library-relative names of the originals,
// all copies of one original and one result.
type set struct {
	rels               []string
	orig, result       string
	origSize, resSize  int64
	upRoot, downRoot   string // libraries for the upload and the download
	cliDir             string // where the CLI downloads to
	seedPrefix, prefix string // seed/DONE/<x>/ and DONE/<x>/
}

// tcase is one row: our binary and the CLI doing the same transfer.
type tcase struct {
	name, what string
	bytes      int64
	files      int
	prepOurs   func(context.Context) error
	prepCLI    func(context.Context) error
	ours, cli  func(context.Context) *exec.Cmd
	checkOurs  func(context.Context) error
	checkCLI   func(context.Context) error
	judgeRSS   bool
	notes      string
}

func (b *bench) all(ctx context.Context) error {
	o := b.o
	big := b.newSet("big", 1, b.c.bigOrig, b.c.bigResult)
	small := b.newSet("small", o.files, b.c.smallOrig, b.c.smallResult)
	for _, s := range []*set{big, small} {
		for _, rel := range s.rels {
			if err := place(s.orig, filepath.Join(s.upRoot, filepath.FromSlash(rel))); err != nil {
				return err
			}
		}
	}
	start := time.Now()
	if err := b.seed(ctx, big, small); err != nil {
		return err
	}
	logf("seeded the results in %s", since(start))
	bigName := human(big.resSize)
	if d := float64(big.resSize-o.size) / float64(o.size); d > -0.05 && d < 0.05 {
		bigName = human(o.size) // the loops make it about that
	}
	smallName := fmt.Sprintf("%d files of %s", o.files, human(1*mib))

	upNotes := "s3-uploader end to end: walk, per file HEAD DONE/ and TODO/, read the MP4 boxes (HEVC skip rule), SHA-256, multipart PUT with CRC32C; vs `aws s3 cp` of the same files to the same keys"
	downNotes := "result-downloader --once end to end: list DONE/, per result one GET (its metadata and first range, then parallel ranges written in place with O_DIRECT while the SHA-256 is checked), find and hash the original, compare streams and duration with the original, fsync, link, delete original and DONE/ object; vs `aws s3 cp` of the same objects"
	cases := []*tcase{
		b.uploadCase("s3-uploader: upload "+bigName, big, true, upNotes),
		b.uploadCase("s3-uploader: upload "+smallName, small, false, upNotes),
		b.downloadCase("result-downloader: download "+bigName, big, true, downNotes),
		b.downloadCase("result-downloader: download "+smallName, small, false, downNotes),
	}
	var failed []string
	for _, c := range cases {
		if !strings.Contains(c.name, o.only) {
			continue
		}
		rows, err := b.measure(ctx, c)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		for _, r := range rows {
			if !r.Pass && r.Target != "info" {
				failed = append(failed, r.Case)
			}
			if err := benchline.Write(r); err != nil {
				return err
			}
		}
	}
	if len(failed) > 0 {
		logf("below target: %s", strings.Join(failed, ", "))
	}
	return nil
}

func (b *bench) newSet(name string, n int, orig, result string) *set {
	s := &set{orig: orig, result: result,
		upRoot: filepath.Join(b.o.dir, "up-"+name), downRoot: filepath.Join(b.o.dir, "down-"+name),
		cliDir: filepath.Join(b.o.dir, "cli-"+name), seedPrefix: "seed/DONE/" + name + "/", prefix: "DONE/" + name + "/"}
	for i := range n {
		s.rels = append(s.rels, fmt.Sprintf("%s/phone/VID_%04d.mp4", name, i+1))
	}
	if st, err := os.Stat(orig); err == nil {
		s.origSize = st.Size()
	}
	if st, err := os.Stat(result); err == nil {
		s.resSize = st.Size()
	}
	return s
}

// seed stores each set's result once under seed/DONE/ as hevc-processor
// stores a result (SHA-256, source size, SHA-256 and mtime, duration);
// each run of ours copies it to DONE/ on the server.
func (b *bench) seed(ctx context.Context, sets ...*set) error {
	st, err := s3store.New(ctx, b.env.StoreConfig(b.bucket))
	if err != nil {
		return err
	}
	for _, s := range sets {
		info, err := media.Probe(ctx, s.orig)
		if err != nil {
			return err
		}
		srcSHA, _, err := library.FileSHA256(s.orig)
		if err != nil {
			return err
		}
		fi, err := os.Stat(s.orig)
		if err != nil {
			return err
		}
		md := map[string]string{
			storage.MetaSourceSize:  strconv.FormatInt(s.origSize, 10),
			storage.MetaSourceSHA:   srcSHA,
			storage.MetaSourceMtime: fi.ModTime().UTC().Format(time.RFC3339Nano),
			storage.MetaDuration:    strconv.FormatFloat(info.Duration, 'f', 3, 64),
		}
		err = parallel(8, len(s.rels), func(i int) error {
			key, err := library.DoneKey(s.rels[i])
			if err != nil {
				return err
			}
			f, err := os.Open(s.result)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = st.Put(ctx, "seed/"+key, f, storage.PutOptions{Size: s.resSize, Metadata: md})
			return err
		})
		if err != nil {
			return fmt.Errorf("seed results: %w", err)
		}
	}
	return nil
}

func (b *bench) environ(extra ...string) []string {
	env := append(os.Environ(), b.env.Environ()...)
	return append(env, extra...)
}

func (b *bench) cliCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, b.o.awsCLI, append([]string{"--endpoint-url", b.env.S3Endpoint, "--only-show-errors", "--no-progress"}, args...)...)
	cmd.Env = b.environ("AWS_DEFAULT_REGION="+b.env.Region, "AWS_PAGER=")
	return cmd
}

func (b *bench) s3url(key string) string { return "s3://" + b.bucket + "/" + key }

func (b *bench) uploadCase(name string, s *set, judgeRSS bool, notes string) *tcase {
	n := len(s.rels)
	clean := func(ctx context.Context) error { return b.deleteAll(ctx, "TODO/") }
	check := func(ctx context.Context) error { return b.expectObjects(ctx, "TODO/", n, int64(n)*s.origSize) }
	return &tcase{
		name: name, what: "upload", bytes: int64(n) * s.origSize, files: n, judgeRSS: judgeRSS, notes: notes,
		prepOurs: clean, prepCLI: clean, checkOurs: check, checkCLI: check,
		ours: func(ctx context.Context) *exec.Cmd {
			cmd := exec.CommandContext(ctx, b.o.up, append([]string{"--library-root", s.upRoot, "--min-age", "0s"}, b.o.upArgs...)...)
			cmd.Env = b.environ("S3_BUCKET="+b.bucket, "LOG_FORMAT=json")
			return cmd
		},
		cli: func(ctx context.Context) *exec.Cmd {
			if n == 1 {
				return b.cliCmd(ctx, "s3", "cp", filepath.Join(s.upRoot, filepath.FromSlash(s.rels[0])), b.s3url("TODO/"+s.rels[0]))
			}
			return b.cliCmd(ctx, "s3", "cp", "--recursive", s.upRoot, b.s3url("TODO/"))
		},
	}
}

func (b *bench) downloadCase(name string, s *set, judgeRSS bool, notes string) *tcase {
	n := len(s.rels)
	return &tcase{
		name: name, what: "download", bytes: int64(n) * s.resSize, files: n, judgeRSS: judgeRSS, notes: notes,
		prepOurs: func(ctx context.Context) error {
			// The previous run's originals went to the trash (ORIGINALS'
			// default): a trash holding the same names keeps the next
			// run's originals in place (the downloader never overwrites
			// a trashed file).
			if err := os.RemoveAll(library.TrashDir(s.downRoot)); err != nil {
				return err
			}
			for _, rel := range s.rels {
				dst := filepath.Join(s.downRoot, filepath.FromSlash(rel))
				// Several originals as links of one file would be one
				// inode: moving one to the trash changes the others'
				// ctime, and the downloader keeps an original whose
				// identity changed since it was found. Copies, as in a
				// real library.
				put := place
				if n > 1 {
					put = func(src, dst string) error {
						if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
							return err
						}
						os.Remove(dst)
						return copyFile(src, dst)
					}
				}
				if err := put(s.orig, dst); err != nil {
					return err
				}
				os.Remove(filepath.Join(s.downRoot, filepath.FromSlash(library.HevcRel(rel))))
			}
			if err := b.deleteAll(ctx, "DONE/"); err != nil {
				return err
			}
			return b.copyPrefix(ctx, s.seedPrefix, s.prefix)
		},
		prepCLI: func(context.Context) error { return os.RemoveAll(s.cliDir) },
		ours: func(ctx context.Context) *exec.Cmd {
			cmd := exec.CommandContext(ctx, b.o.down, append([]string{"--once", "--library-root", s.downRoot}, b.o.downArgs...)...)
			cmd.Env = b.environ("S3_BUCKET="+b.bucket, "LOG_FORMAT=json")
			return cmd
		},
		cli: func(ctx context.Context) *exec.Cmd {
			if n == 1 {
				key, _ := library.DoneKey(s.rels[0])
				return b.cliCmd(ctx, "s3", "cp", b.s3url("seed/"+key), filepath.Join(s.cliDir, filepath.Base(key)))
			}
			return b.cliCmd(ctx, "s3", "cp", "--recursive", b.s3url(s.seedPrefix), s.cliDir)
		},
		checkOurs: func(ctx context.Context) error {
			for _, rel := range s.rels {
				p := filepath.Join(s.downRoot, filepath.FromSlash(library.HevcRel(rel)))
				if st, err := os.Stat(p); err != nil || st.Size() != s.resSize {
					return fmt.Errorf("%s not installed (%v)", p, err)
				}
				if _, err := os.Stat(filepath.Join(s.downRoot, filepath.FromSlash(rel))); err == nil {
					return fmt.Errorf("original %s still there", rel)
				}
			}
			return b.expectObjects(ctx, "DONE/", 0, 0)
		},
		checkCLI: func(context.Context) error {
			var count int
			var total int64
			err := filepath.WalkDir(s.cliDir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					st, _ := d.Info()
					count++
					total += st.Size()
				}
				return err
			})
			if err != nil || count != n || total != int64(n)*s.resSize {
				return fmt.Errorf("the CLI wrote %d files, %d bytes, want %d, %d (%v)", count, total, n, int64(n)*s.resSize, err)
			}
			return nil
		},
	}
}

// measure runs both sides o.runs times, alternating who goes first (so
// that neither always meets a warm server), and returns the rows.
func (b *bench) measure(ctx context.Context, c *tcase) ([]benchline.Line, error) {
	var ours, theirs []sample
	for r := range b.o.runs {
		for _, isOurs := range []bool{r%2 == 0, r%2 != 0} {
			prep, mk, check, side := c.prepCLI, c.cli, c.checkCLI, "aws cli"
			if isOurs {
				prep, mk, check, side = c.prepOurs, c.ours, c.checkOurs, "ours"
			}
			if err := prep(ctx); err != nil {
				return nil, fmt.Errorf("prepare %s: %w", side, err)
			}
			s, _, err := measure(mk(ctx))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", side, err)
			}
			if err := check(ctx); err != nil {
				return nil, fmt.Errorf("%s did not do the whole job: %w", side, err)
			}
			logf("%s, %s, run %d: %.2f s, peak RSS %.1f MiB, CPU %.2f s", c.name, side, r+1, s.secs, s.rssMiB, s.cpu)
			if isOurs {
				ours = append(ours, s)
			} else {
				theirs = append(theirs, s)
			}
		}
	}
	if err := c.prepCLI(ctx); err != nil { // leave nothing behind
		return nil, err
	}
	om, tm := median(ours), median(theirs)
	mbps := func(s sample) float64 { return float64(c.bytes) / 1e6 / s.secs }
	ratio := mbps(om) / mbps(tm)
	notes := fmt.Sprintf("%s. Median of %d runs: %.2f s vs %.2f s (%d file(s), %d bytes); CPU %.2f s vs %.2f s (with children); load %.1f",
		c.notes, b.o.runs, om.secs, tm.secs, c.files, c.bytes, om.cpu, tm.cpu, om.load)
	if args := b.o.upArgs; c.what == "upload" && len(args) > 0 {
		notes += "; s3-uploader " + strings.Join(args, " ")
	}
	if args := b.o.downArgs; c.what == "download" && len(args) > 0 {
		notes += "; result-downloader " + strings.Join(args, " ")
	}
	rows := []benchline.Line{{Issue: 3, Case: c.name + ": throughput", Ours: round(mbps(om)), Anchor: round(mbps(tm)),
		Unit: "MB/s", AnchorName: "aws cli", Ratio: round(ratio), Target: ">=1.0", Pass: ratio >= 1.0, Notes: notes,
		Detail: map[string]any{"bytes": c.bytes, "ours_secs": secsOf(ours), "cli_secs": secsOf(theirs)}}}
	peak := 0.0
	for _, s := range ours {
		peak = max(peak, s.rssMiB)
	}
	rss := benchline.Line{Issue: 3, Case: c.name + ": peak RSS", Ours: round(peak), Anchor: round(median(theirs).rssMiB),
		Unit: "MiB", AnchorName: "aws cli", Target: "info", Pass: true,
		Notes: "VmHWM of our process itself (ffprobe/ffmpeg children excluded), highest of the runs; the CLI's median"}
	if rss.Anchor > 0 {
		rss.Ratio = round(rss.Ours / rss.Anchor)
	}
	if c.judgeRSS {
		rss.Target, rss.Pass = "<100 MiB (ours)", peak < 100
	}
	return append(rows, rss), nil
}

// deleteAll removes every object under prefix.
func (b *bench) deleteAll(ctx context.Context, prefix string) error {
	p := s3.NewListObjectsV2Paginator(b.env.S3, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if len(page.Contents) == 0 {
			continue
		}
		var ids []s3types.ObjectIdentifier
		for _, o := range page.Contents {
			ids = append(ids, s3types.ObjectIdentifier{Key: o.Key})
		}
		if _, err := b.env.S3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &b.bucket, Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
			return fmt.Errorf("delete %s: %w", prefix, err)
		}
	}
	return nil
}

// copyPrefix copies every object under from to the same name under to, on
// the server (metadata included).
func (b *bench) copyPrefix(ctx context.Context, from, to string) error {
	var keys []string
	p := s3.NewListObjectsV2Paginator(b.env.S3, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &from})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", from, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return parallel(8, len(keys), func(i int) error {
		dst := to + strings.TrimPrefix(keys[i], from)
		_, err := b.env.S3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &b.bucket, Key: &dst, CopySource: aws.String(b.bucket + "/" + keys[i])})
		if err != nil {
			return fmt.Errorf("copy %s to %s: %w", keys[i], dst, err)
		}
		return nil
	})
}

func (b *bench) expectObjects(ctx context.Context, prefix string, n int, bytes int64) error {
	var count int
	var total int64
	p := s3.NewListObjectsV2Paginator(b.env.S3, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			count++
			total += aws.ToInt64(o.Size)
		}
	}
	if count != n || total != bytes {
		return fmt.Errorf("%s holds %d objects, %d bytes; want %d, %d", prefix, count, total, n, bytes)
	}
	return nil
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
