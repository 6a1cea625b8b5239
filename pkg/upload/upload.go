// Package upload walks the library and puts every H.264 .mp4 that has no
// result yet into the bucket's TODO/: s3-uploader's logic, shared with
// `result-downloader process` (which uploads before it waits).
//
// A file is uploaded only when none of the skip rules holds (see the Skip*
// reasons); the upload carries the file's SHA-256 (the store refuses to
// commit a stream that does not match it, so a file changed while being
// read is never queued half-old, half-new) and metadata source-size,
// source-mtime and source-sha256, which the processor copies onto the
// result and the downloader checks against the original before replacing
// it.
package upload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/progress"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// Config tunes the uploader.
type Config struct {
	Root        string
	Include     string // comma-separated globs matched against the base name, case-insensitive
	Exclude     string
	MinAge      time.Duration
	Concurrency int
	DryRun      bool
	// MinBitrate skips files whose video bit rate is below it (bitrate.go).
	MinBitrate MinBitrate
}

// Bind registers the uploader's variables.
func (c *Config) Bind(s *config.Set) {
	s.String(&c.Root, "LIBRARY_ROOT", "", "library root directory", config.Required())
	s.Int(&c.Concurrency, "CONCURRENCY", 4, "parallel uploads")
	s.Check(func() error {
		if c.Concurrency < 1 {
			return fmt.Errorf("CONCURRENCY must be at least 1, got %d", c.Concurrency)
		}
		return nil
	})
	c.BindSelection(s)
}

// BindSelection registers INCLUDE, EXCLUDE, MIN_AGE and DRY_RUN, for
// commands that bind LIBRARY_ROOT and CONCURRENCY themselves.
func (c *Config) BindSelection(s *config.Set) {
	s.String(&c.Include, "INCLUDE", "*.mp4", "comma-separated globs of file names to upload (case-insensitive; a glob with '/' matches the library-relative path)")
	s.String(&c.Exclude, "EXCLUDE", "", "comma-separated globs of file names or relative paths to leave alone (case-insensitive)")
	s.Duration(&c.MinAge, "MIN_AGE", 5*time.Minute, "skip files modified more recently (still being written)")
	s.Bool(&c.DryRun, "DRY_RUN", false, "print what would be uploaded, upload nothing")
	var minBitrate string
	s.String(&minBitrate, "MIN_BITRATE", "auto", "skip files whose video bit rate is below this, where HEVC saves little or nothing: a rate (3Mbit, 2500k, 3000000), 0 (off), or auto ("+AutoBitrateDoc+")")
	s.Check(func() error {
		mb, err := ParseMinBitrate(minBitrate)
		if err != nil {
			return fmt.Errorf("MIN_BITRATE: %w", err)
		}
		c.MinBitrate = mb
		for _, g := range splitGlobs(c.Include + "," + c.Exclude) {
			if _, err := path.Match(g, ""); err != nil {
				return fmt.Errorf("INCLUDE/EXCLUDE: bad glob %q: %w", g, err)
			}
		}
		if c.MinAge < 0 {
			return fmt.Errorf("MIN_AGE must not be negative, got %s", c.MinAge)
		}
		return nil
	})
}

// Uploader walks a library into a store.
type Uploader struct {
	Store storage.Store
	Cfg   Config
	Log   zerolog.Logger
	// Probe defaults to media.ProbeFast (the file's MP4 boxes, ffprobe only
	// when they do not tell): the uploader needs the video codec (skip HEVC)
	// and durations, and an ffprobe spawn per file costs more than uploading
	// a small one. Tests may replace it.
	Probe func(ctx context.Context, path string) (media.Info, error)
	// Progress, if set, shows each upload.
	Progress *progress.Progress
	// OnUpload, if set, sees the key of every object uploaded.
	OnUpload func(key string)
}

// Summary counts what a run did.
type Summary struct {
	Uploaded int
	Bytes    int64
	Failed   int
	Skipped  map[string]int // reason → count
	// WouldUpload and WouldBytes count what a dry run would have uploaded.
	WouldUpload int
	WouldBytes  int64
	// Attention lists files a person should look at ("<rel>: what"):
	// originals beside a result, names taken by other files, failures.
	Attention []string
}

// Skipped reasons.
const (
	SkipTooNew    = "modified within MIN_AGE"
	SkipHevc      = "already HEVC"
	SkipSibling   = "-hevc.mp4 name already taken"
	SkipConverted = "HEVC copy beside it"
	SkipQueued    = "already in TODO/"
	SkipDone      = "result waiting in DONE/"
	SkipFailed    = "failed before (see FAILED/)"
	SkipUnsafe    = "name outside the library rules"
	SkipExcluded  = "excluded"
	SkipDryRunned = "dry run"
	SkipBitrate   = "video bitrate below MIN_BITRATE"
)

// Run walks the library once. It returns an error when some file failed
// (the summary says which) or the walk could not finish.
func (u *Uploader) Run(ctx context.Context) (Summary, error) {
	if u.Probe == nil {
		u.Probe = media.ProbeFast
	}
	sum := Summary{Skipped: map[string]int{}}
	if _, err := os.Stat(u.Cfg.Root); err != nil {
		return sum, fmt.Errorf("library root: %w", err)
	}
	failed, err := u.listFailed(ctx)
	if err != nil {
		return sum, err
	}
	var mu sync.Mutex
	paths := make(chan string)
	var wg sync.WaitGroup
	for i := 0; i < max(1, u.Cfg.Concurrency); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range paths {
				o := u.one(ctx, p, failed)
				mu.Lock()
				switch {
				case o.err != nil:
					if ctx.Err() == nil {
						sum.Failed++
						sum.Attention = append(sum.Attention, fmt.Sprintf("%s: upload failed: %v", o.rel, o.err))
						u.Log.Error().Err(o.err).Str("file", o.rel).Msg("upload failed")
					}
				case o.skip == SkipDryRunned:
					sum.Skipped[o.skip]++
					sum.WouldUpload++
					sum.WouldBytes += o.bytes
				case o.skip != "":
					sum.Skipped[o.skip]++
				default:
					sum.Uploaded++
					sum.Bytes += o.bytes
				}
				if o.note != "" {
					sum.Attention = append(sum.Attention, o.rel+": "+o.note)
				}
				mu.Unlock()
			}
		}()
	}
	walkErr := filepath.WalkDir(u.Cfg.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == u.Cfg.Root {
				return err
			}
			u.Log.Warn().Err(err).Str("file", p).Msg("cannot read; skipped")
			return nil
		}
		name := d.Name()
		if d.IsDir() {
			if p != u.Cfg.Root && strings.HasPrefix(name, ".") {
				return filepath.SkipDir // hidden, e.g. .Trash, .hevc-encoder state
			}
			return nil
		}
		if !d.Type().IsRegular() || library.IsTemp(name) || library.IsHevcName(name) || !matchAny(u.Cfg.Include, name, name) {
			return nil
		}
		select {
		case paths <- p:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(paths)
	wg.Wait()
	sort.Strings(sum.Attention)
	if ctx.Err() != nil {
		return sum, fmt.Errorf("upload interrupted: %w", ctx.Err())
	}
	if walkErr != nil {
		return sum, fmt.Errorf("walk library %s: %w", u.Cfg.Root, walkErr)
	}
	if sum.Failed > 0 {
		return sum, fmt.Errorf("%d file(s) failed to upload", sum.Failed)
	}
	return sum, nil
}

// listFailed lists FAILED/ once, so that most files need no request to
// learn that they have no failure record. A record written after the
// listing is found on the next run; until then the file may be queued once
// more, which is harmless (the processor fails it again).
func (u *Uploader) listFailed(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	err := storage.Walk(ctx, u.Store, library.FailedPrefix, func(o storage.Object) error {
		out[o.Key] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", library.FailedPrefix, err)
	}
	return out, nil
}

type outcome struct {
	rel   string
	bytes int64
	skip  string
	note  string // for Summary.Attention
	err   error
}

// candidate is one library file on its way to TODO/: what the checks
// before its upload need, its SHA-256 computed once, when first needed.
type candidate struct {
	p, rel, key string
	st          os.FileInfo
	log         zerolog.Logger
	sums        *storage.Sums
}

func (c *candidate) hash() (storage.Sums, error) {
	if c.sums == nil {
		s, err := storage.SumFile(c.p)
		if err != nil {
			return storage.Sums{}, err
		}
		c.sums = &s
	}
	return *c.sums, nil
}

// same says whether an object of size and SHA-256 shaHex holds this very
// file (by size alone when no SHA-256 was recorded).
func (c *candidate) same(size int64, shaHex string) (bool, error) {
	if size != c.st.Size() {
		return false, nil
	}
	if shaHex == "" {
		return true, nil // nothing to compare: trust the size
	}
	h, err := c.hash()
	return strings.EqualFold(h.SHA256, shaHex), err
}

// madeFrom says whether the result obj was made from this very file.
func (c *candidate) madeFrom(obj storage.Object) (bool, error) {
	srcSize, err := strconv.ParseInt(obj.Metadata[storage.MetaSourceSize], 10, 64)
	if err != nil {
		srcSize = c.st.Size() // no record of its source: assume it is ours
	}
	return c.same(srcSize, obj.Metadata[storage.MetaSourceSHA])
}

// settle ends the checks: with the error of a check, or with skip when
// the check found this very file (ok).
func (o *outcome) settle(ok bool, err error, skip string) bool {
	if err != nil {
		o.err = err
		return true
	}
	if ok {
		o.skip = skip
		return true
	}
	return false
}

// one decides about and uploads one file: each check below may end it
// (skipped, or an error) before the upload.
func (u *Uploader) one(ctx context.Context, p string, failed map[string]bool) (o outcome) {
	o.rel = p
	c := u.examine(p, &o)
	if c == nil || u.besideItsResult(ctx, c, &o) || u.accountedFor(ctx, c, failed, &o) || u.notWorthIt(ctx, c, &o) {
		return o
	}
	if u.Cfg.DryRun {
		c.log.Info().Int64("bytes", c.st.Size()).Msg("would upload")
		o.skip, o.bytes = SkipDryRunned, c.st.Size()
		return o
	}
	o.bytes, o.err = u.upload(ctx, p, c.key, c.st, c.hash, c.log)
	return o
}

// examine names the file in the library and in TODO/ and skips what is
// excluded, unsafe to name or modified within MIN_AGE (nil then).
func (u *Uploader) examine(p string, o *outcome) *candidate {
	rel, err := library.Rel(u.Cfg.Root, p)
	log := u.Log.With().Str("file", rel).Logger()
	if err != nil {
		log.Warn().Err(err).Msg("skipped")
		o.skip = SkipUnsafe
		return nil
	}
	o.rel = rel
	key, err := library.TodoKey(rel)
	if err != nil {
		log.Warn().Err(err).Msg("skipped")
		o.skip = SkipUnsafe
		return nil
	}
	log = log.With().Str("key", key).Logger()
	if matchAny(u.Cfg.Exclude, path.Base(rel), rel) {
		o.skip = SkipExcluded
		return nil
	}
	st, err := os.Stat(p)
	if err != nil {
		o.err = fmt.Errorf("stat %s: %w", p, err)
		return nil
	}
	if age := time.Since(st.ModTime()); age < u.Cfg.MinAge {
		log.Debug().Dur("age", age).Msg("skipped: modified within MIN_AGE")
		o.skip = SkipTooNew
		return nil
	}
	return &candidate{p: p, rel: rel, key: key, st: st, log: log}
}

// besideItsResult: a file beside its -hevc.mp4 was converted before (the
// original kept then), or a stranger has the name. Either way nothing is
// uploaded; both are reported. The check (HEVC, same duration) is not the
// downloader's picture comparison, so nothing here suggests removing the
// original. An original spelled .MP4 had <stem>-hevc.mp4 before spellings
// were told apart: that counts as its own when no <stem>.mp4 exists (whose
// name it is now) and it is an HEVC copy of this file.
func (u *Uploader) besideItsResult(ctx context.Context, c *candidate, o *outcome) bool {
	sibRel := library.HevcRel(c.rel)
	sib, _ := library.Path(u.Cfg.Root, sibRel)
	legacy := false
	if !exists(sib) {
		if lk, ok := library.LegacyDoneKey(c.rel); ok && !exists(strings.TrimSuffix(c.p, filepath.Ext(c.p))+".mp4") {
			lrel := strings.TrimPrefix(lk, library.DonePrefix)
			if lp, _ := library.Path(u.Cfg.Root, lrel); exists(lp) {
				sibRel, sib, legacy = lrel, lp, true
			}
		}
	}
	if !exists(sib) {
		return false
	}
	if ok, why := u.verifiedSibling(ctx, c.p, sib); ok {
		c.log.Warn().Str("sibling", sibRel).Msg("not uploaded: an HEVC copy of the same duration is beside it; both kept (not compared picture by picture)")
		o.skip, o.note = SkipConverted, "kept beside "+path.Base(sibRel)+", an HEVC copy of the same duration (not compared picture by picture, so both are kept)"
		return true
	} else if !legacy {
		c.log.Warn().Str("sibling", sibRel).Str("why", why).Msg("not uploaded: its result name is taken by a file that is not its HEVC copy; rename one of them")
		o.skip, o.note = SkipSibling, fmt.Sprintf("%s exists but is not its HEVC copy (%s); rename one of them", path.Base(sibRel), why)
		return true
	}
	return false
}

// accountedFor: the bucket already holds this very file's result (DONE/),
// failure record (FAILED/) or upload (TODO/).
func (u *Uploader) accountedFor(ctx context.Context, c *candidate, failed map[string]bool, o *outcome) bool {
	// A result in DONE/ made from this very file: the downloader brings it.
	doneKey, _ := library.DoneKey(c.rel)
	if obj, err := u.Store.Head(ctx, doneKey); err == nil {
		if ok, err := c.madeFrom(obj); o.settle(ok, err, SkipDone) {
			return true
		}
		c.log.Warn().Str("done", doneKey).Msg("DONE/ holds a result of an earlier version of this file; queueing the current one (the old result will not be installed)")
	} else if !errors.Is(err, storage.ErrNotFound) {
		return o.settle(false, fmt.Errorf("check %s: %w", doneKey, err), "")
	} else if lk, ok := library.LegacyDoneKey(c.rel); ok && !exists(strings.TrimSuffix(c.p, filepath.Ext(c.p))+".mp4") {
		// A result made before spellings were told apart (DONE/a-hevc.mp4
		// for a.MP4): the downloader still installs it when no a.mp4
		// exists, so it counts only if it was made from this very file.
		if obj, err := u.Store.Head(ctx, lk); err == nil {
			if obj.Metadata[storage.MetaSourceSHA] != "" {
				if ok, err := c.madeFrom(obj); o.settle(ok, err, SkipDone) {
					return true
				}
			}
		} else if !errors.Is(err, storage.ErrNotFound) {
			return o.settle(false, fmt.Errorf("check %s: %w", lk, err), "")
		}
	}

	failedKey, _ := library.FailedKey(c.rel)
	if failed[failedKey] {
		rec, err := u.failedRecord(ctx, failedKey)
		if err != nil {
			return o.settle(false, err, "")
		}
		if rec != nil {
			if ok, err := c.same(rec.SourceSize, rec.SourceSHA256); o.settle(ok, err, SkipFailed) {
				return true
			}
			c.log.Info().Str("failed", failedKey).Msg("file changed since it failed; trying again")
		}
	}

	if obj, err := u.Store.Head(ctx, c.key); err == nil {
		if ok, err := c.same(obj.Size, obj.SHA256); o.settle(ok && obj.SHA256 != "", err, SkipQueued) {
			return true
		}
		c.log.Info().Msg("TODO/ holds a different version of this file; replacing it")
	} else if !errors.Is(err, storage.ErrNotFound) {
		return o.settle(false, fmt.Errorf("check %s: %w", c.key, err), "")
	}
	return false
}

// notWorthIt: already HEVC, or below MIN_BITRATE. A file that does not
// probe is uploaded anyway: the processor records why it is bad in
// FAILED/, so the user sees it and it is not retried.
func (u *Uploader) notWorthIt(ctx context.Context, c *candidate, o *outcome) bool {
	info, err := u.Probe(ctx, c.p)
	if err == nil && info.IsHEVC() {
		o.skip = SkipHevc
		return true
	} else if err != nil && ctx.Err() != nil {
		return o.settle(false, err, "")
	}
	// Below MIN_BITRATE an encode saves little or nothing (bitrate.go); a
	// file whose bit rate is unknown is uploaded (the processor's no-gain
	// rule is the safety net).
	if err == nil {
		if rate, min := VideoBitrate(info), u.Cfg.MinBitrate.For(info); rate > 0 && rate < min {
			c.log.Info().Str("reason", SkipBitrate).Str("video_bitrate", FormatBitrate(rate)).Str("min_bitrate", FormatBitrate(min)).
				Msg("skipped: its video bitrate is already below MIN_BITRATE; HEVC would save little or nothing")
			o.skip = SkipBitrate
			return true
		}
	}
	return false
}

func (u *Uploader) upload(ctx context.Context, p, key string, st os.FileInfo, hash func() (storage.Sums, error), log zerolog.Logger) (int64, error) {
	sums, err := hash()
	if err != nil {
		return 0, err
	}
	if sums.Size != st.Size() {
		return 0, fmt.Errorf("upload %s: it changed while it was read (%d bytes, then %d; not queued; the next run tries again)", p, st.Size(), sums.Size)
	}
	sha := sums.SHA256
	f, err := os.Open(p)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	start := time.Now()
	md := map[string]string{
		storage.MetaSourceSize:  strconv.FormatInt(st.Size(), 10),
		storage.MetaSourceMtime: st.ModTime().UTC().Format(time.RFC3339Nano),
		storage.MetaSourceSHA:   sha,
	}
	tr := u.Progress.Start(key, st.Size())
	// The CRC32C from the hashing pass lets the store check the stream it
	// sends without hashing SHA-256 again (a file that changes meanwhile
	// is still refused).
	obj, err := u.Store.Put(ctx, key, tr.Reader(f), storage.PutOptions{Size: sums.Size, SHA256: sha, CRC32C: &sums.CRC32C, Metadata: md})
	tr.Done(err != nil)
	if errors.Is(err, storage.ErrChecksum) {
		return 0, fmt.Errorf("upload %s to %s: the file changed while it was read (not queued; the next run tries again): %w", p, key, err)
	}
	if err != nil {
		return 0, fmt.Errorf("upload %s to %s: %w", p, key, err)
	}
	if obj.Size != st.Size() {
		return 0, fmt.Errorf("upload %s: stored %d bytes, file has %d (changed while uploading?)", p, obj.Size, st.Size())
	}
	secs := time.Since(start).Seconds()
	log.Info().Int64("bytes", obj.Size).Str("sha256", sha).Float64("MBps", float64(obj.Size)/1e6/max(secs, 1e-6)).Msg("uploaded")
	if u.OnUpload != nil {
		u.OnUpload(key)
	}
	return obj.Size, nil
}

// verifiedSibling reports whether sib is an HEVC copy of orig: it probes as
// HEVC and its duration is within max(0.5 s, 1 %) of the original's. The
// string says why not.
func (u *Uploader) verifiedSibling(ctx context.Context, orig, sib string) (bool, string) {
	si, err := u.Probe(ctx, sib)
	if err != nil {
		return false, "it does not probe as a video"
	}
	if !si.IsHEVC() {
		return false, "it is not HEVC"
	}
	oi, err := u.Probe(ctx, orig)
	if err != nil {
		return false, "the original does not probe, so they cannot be compared"
	}
	if d, tol := math.Abs(si.Duration-oi.Duration), math.Max(0.5, 0.01*oi.Duration); d > tol {
		return false, fmt.Sprintf("durations differ: %.2fs vs %.2fs", si.Duration, oi.Duration)
	}
	return true, ""
}

type failedRec struct {
	SourceSize   int64  `json:"source_size"`
	SourceSHA256 string `json:"source_sha256"`
}

// failedRecord reads FAILED/<rel>.mp4.json; nil when absent.
func (u *Uploader) failedRecord(ctx context.Context, key string) (*failedRec, error) {
	r, _, err := u.Store.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer r.Close()
	var rec failedRec
	if err := json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(&rec); err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return &rec, nil
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func splitGlobs(s string) []string {
	var out []string
	for _, g := range strings.Split(s, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, strings.ToLower(g))
		}
	}
	return out
}

// matchAny matches name (and rel, for globs with a '/') against the globs,
// case-insensitively.
func matchAny(globs, name, rel string) bool {
	for _, g := range splitGlobs(globs) {
		target := strings.ToLower(name)
		if strings.Contains(g, "/") {
			target = strings.ToLower(rel)
		}
		if ok, _ := path.Match(g, target); ok {
			return true
		}
	}
	return false
}

// String renders a one-line summary.
func (s Summary) String() string {
	var reasons []string
	for r, n := range s.Skipped {
		reasons = append(reasons, fmt.Sprintf("%s: %d", r, n))
	}
	sort.Strings(reasons)
	out := fmt.Sprintf("uploaded %d (%s), failed %d, skipped {%s}", s.Uploaded, progress.Bytes(s.Bytes), s.Failed, strings.Join(reasons, ", "))
	if s.WouldUpload > 0 {
		out += fmt.Sprintf(", would upload %d (%s)", s.WouldUpload, progress.Bytes(s.WouldBytes))
	}
	return out
}

// Print writes the end-of-run summary for people.
func (s Summary) Print(w io.Writer, dryRun bool) {
	skipped := 0
	for _, n := range s.Skipped {
		skipped += n
	}
	if dryRun {
		fmt.Fprintf(w, "dry run: would upload %d file(s), %s\n", s.WouldUpload, progress.Bytes(s.WouldBytes))
		skipped -= s.Skipped[SkipDryRunned]
	} else {
		fmt.Fprintf(w, "uploaded %d file(s), %s\n", s.Uploaded, progress.Bytes(s.Bytes))
	}
	var reasons []string
	for r, n := range s.Skipped {
		if r != SkipDryRunned {
			reasons = append(reasons, fmt.Sprintf("  %6d  %s", n, r))
		}
	}
	sort.Strings(reasons)
	fmt.Fprintf(w, "skipped %d file(s)\n", skipped)
	for _, r := range reasons {
		fmt.Fprintln(w, r)
	}
	if s.Failed > 0 {
		fmt.Fprintf(w, "failed %d file(s)\n", s.Failed)
	}
	if len(s.Attention) > 0 {
		fmt.Fprintln(w, "needs attention:")
		for _, a := range s.Attention {
			fmt.Fprintln(w, "  "+a)
		}
	}
}
