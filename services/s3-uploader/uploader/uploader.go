// Package uploader is s3-uploader's logic: walk the library and put every
// H.264 .mp4 that has no result yet into the bucket's TODO/.
package uploader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
}

// Bind registers the uploader's variables.
func (c *Config) Bind(s *config.Set) {
	s.String(&c.Root, "LIBRARY_ROOT", "", "library root directory", config.Required())
	s.String(&c.Include, "INCLUDE", "*.mp4", "comma-separated globs of file names to upload (case-insensitive)")
	s.String(&c.Exclude, "EXCLUDE", "", "comma-separated globs of file names or relative paths to leave alone")
	s.Duration(&c.MinAge, "MIN_AGE", 5*time.Minute, "skip files modified more recently (still being written)")
	s.Int(&c.Concurrency, "CONCURRENCY", 4, "parallel uploads")
	s.Bool(&c.DryRun, "DRY_RUN", false, "print what would be uploaded, upload nothing")
	s.Check(func() error {
		for _, g := range splitGlobs(c.Include + "," + c.Exclude) {
			if _, err := path.Match(g, ""); err != nil {
				return fmt.Errorf("INCLUDE/EXCLUDE: bad glob %q: %w", g, err)
			}
		}
		if c.Concurrency < 1 {
			return fmt.Errorf("CONCURRENCY must be at least 1, got %d", c.Concurrency)
		}
		return nil
	})
}

// Uploader walks a library into a store.
type Uploader struct {
	Store storage.Store
	Cfg   Config
	Log   zerolog.Logger
	// Probe defaults to media.Probe; tests may replace it.
	Probe func(ctx context.Context, path string) (media.Info, error)
}

// Summary counts what a run did.
type Summary struct {
	Uploaded int
	Bytes    int64
	Failed   int
	Skipped  map[string]int // reason → count
}

// Skipped reasons.
const (
	SkipTooNew    = "modified within MIN_AGE"
	SkipHevc      = "already HEVC"
	SkipSibling   = "-hevc.mp4 name already taken"
	SkipQueued    = "already in TODO/"
	SkipDone      = "result waiting in DONE/"
	SkipFailed    = "failed before (see FAILED/)"
	SkipUnsafe    = "name outside the library rules"
	SkipExcluded  = "excluded"
	SkipDryRunned = "dry run"
)

// Run walks the library once.
func (u *Uploader) Run(ctx context.Context) (Summary, error) {
	if u.Probe == nil {
		u.Probe = media.Probe
	}
	sum := Summary{Skipped: map[string]int{}}
	var mu sync.Mutex
	paths := make(chan string)
	var wg sync.WaitGroup
	for i := 0; i < max(1, u.Cfg.Concurrency); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range paths {
				n, skip, err := u.one(ctx, p)
				mu.Lock()
				switch {
				case err != nil:
					sum.Failed++
					u.Log.Error().Err(err).Str("file", p).Msg("upload failed")
				case skip != "":
					sum.Skipped[skip]++
				default:
					sum.Uploaded++
					sum.Bytes += n
				}
				mu.Unlock()
			}
		}()
	}
	walkErr := filepath.WalkDir(u.Cfg.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			u.Log.Warn().Err(err).Str("file", p).Msg("cannot read; skipped")
			return nil
		}
		name := d.Name()
		if d.IsDir() {
			if p != u.Cfg.Root && strings.HasPrefix(name, ".") {
				return filepath.SkipDir // hidden, e.g. .Trash, .hevc state
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
	if walkErr != nil {
		return sum, fmt.Errorf("walk library %s: %w", u.Cfg.Root, walkErr)
	}
	if sum.Failed > 0 {
		return sum, fmt.Errorf("%d file(s) failed to upload", sum.Failed)
	}
	return sum, nil
}

// one decides about and uploads one file; it returns bytes uploaded or the
// reason it was skipped.
func (u *Uploader) one(ctx context.Context, p string) (int64, string, error) {
	rel, err := library.Rel(u.Cfg.Root, p)
	log := u.Log.With().Str("file", rel).Logger()
	if err != nil {
		log.Warn().Err(err).Msg("skipped")
		return 0, SkipUnsafe, nil
	}
	key, err := library.TodoKey(rel)
	if err != nil {
		log.Warn().Err(err).Msg("skipped")
		return 0, SkipUnsafe, nil
	}
	log = log.With().Str("key", key).Logger()
	if matchAny(u.Cfg.Exclude, path.Base(rel), rel) {
		return 0, SkipExcluded, nil
	}
	st, err := os.Stat(p)
	if err != nil {
		return 0, "", fmt.Errorf("stat %s: %w", p, err)
	}
	if time.Since(st.ModTime()) < u.Cfg.MinAge {
		log.Debug().Msg("skipped: modified within MIN_AGE")
		return 0, SkipTooNew, nil
	}
	if sib, _ := library.Path(u.Cfg.Root, library.HevcRel(rel)); exists(sib) {
		log.Warn().Str("sibling", library.HevcRel(rel)).Msg("left alone: its -hevc.mp4 name is already taken")
		return 0, SkipSibling, nil
	}
	doneKey, _ := library.DoneKey(rel)
	if ok, err := storage.Exists(ctx, u.Store, doneKey); err != nil {
		return 0, "", fmt.Errorf("check %s: %w", doneKey, err)
	} else if ok {
		return 0, SkipDone, nil
	}
	var sha string // computed lazily: only needed when a same-size object exists
	hash := func() (string, error) {
		if sha == "" {
			s, _, err := library.FileSHA256(p)
			if err != nil {
				return "", fmt.Errorf("hash %s: %w", p, err)
			}
			sha = s
		}
		return sha, nil
	}
	failedKey, _ := library.FailedKey(rel)
	if rec, err := u.failedRecord(ctx, failedKey); err != nil {
		return 0, "", err
	} else if rec != nil && rec.SourceSize == st.Size() {
		if h, err := hash(); err != nil {
			return 0, "", err
		} else if rec.SourceSHA256 == "" || rec.SourceSHA256 == h {
			return 0, SkipFailed, nil
		}
	}
	if obj, err := u.Store.Head(ctx, key); err == nil && obj.Size == st.Size() {
		if h, err := hash(); err != nil {
			return 0, "", err
		} else if obj.SHA256 == h {
			return 0, SkipQueued, nil
		}
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return 0, "", fmt.Errorf("check %s: %w", key, err)
	}
	if info, err := u.Probe(ctx, p); err == nil && info.IsHEVC() {
		return 0, SkipHevc, nil
	}
	// A file that does not probe is uploaded anyway: the processor records
	// why it is bad in FAILED/, so the user sees it and it is not retried.
	if u.Cfg.DryRun {
		log.Info().Int64("bytes", st.Size()).Msg("would upload")
		return 0, SkipDryRunned, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return 0, "", fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	start := time.Now()
	md := map[string]string{
		storage.MetaSourceSize:  strconv.FormatInt(st.Size(), 10),
		storage.MetaSourceMtime: st.ModTime().UTC().Format(time.RFC3339Nano),
	}
	obj, err := u.Store.Put(ctx, key, io.Reader(f), storage.PutOptions{Size: st.Size(), SHA256: sha, Metadata: md})
	if err != nil {
		return 0, "", fmt.Errorf("upload %s to %s: %w", rel, key, err)
	}
	if obj.Size != st.Size() {
		return 0, "", fmt.Errorf("upload %s: stored %d bytes, file has %d (changed while uploading?)", rel, obj.Size, st.Size())
	}
	secs := time.Since(start).Seconds()
	log.Info().Int64("bytes", obj.Size).Float64("MBps", float64(obj.Size)/1e6/max(secs, 1e-6)).Msg("uploaded")
	return obj.Size, "", nil
}

// failedRecord reads FAILED/<rel>.mp4.json; nil when absent.
func (u *Uploader) failedRecord(ctx context.Context, key string) (*struct {
	SourceSize   int64  `json:"source_size"`
	SourceSHA256 string `json:"source_sha256"`
}, error) {
	r, _, err := u.Store.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer r.Close()
	var rec struct {
		SourceSize   int64  `json:"source_size"`
		SourceSHA256 string `json:"source_sha256"`
	}
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

// Format renders a summary line.
func (s Summary) String() string {
	var reasons []string
	for r, n := range s.Skipped {
		reasons = append(reasons, fmt.Sprintf("%s: %d", r, n))
	}
	sort.Strings(reasons)
	return fmt.Sprintf("uploaded %d (%d bytes), failed %d, skipped {%s}", s.Uploaded, s.Bytes, s.Failed, strings.Join(reasons, ", "))
}
