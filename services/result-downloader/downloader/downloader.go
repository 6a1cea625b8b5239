// Package downloader is result-downloader's logic: bring DONE/<rel>-hevc.mp4
// home beside its original, verified, then remove the original.
package downloader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/events"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// Config tunes the downloader.
type Config struct {
	Root string
	// FileMode and DirMode of installed files; 0 keeps the original's mode.
	FileMode, DirMode int
	Reconcile         time.Duration
	Wait              time.Duration // long-poll wait
}

// Bind registers the downloader's variables.
func (c *Config) Bind(s *config.Set) {
	s.String(&c.Root, "LIBRARY_ROOT", "", "library root directory", config.Required())
	s.Int(&c.FileMode, "FILE_MODE", 0, "mode of installed files, e.g. 420 (0644); 0 keeps the original's")
	s.Int(&c.DirMode, "DIR_MODE", 0o755, "mode of directories created, e.g. 493 (0755)")
	s.Duration(&c.Reconcile, "RECONCILE_INTERVAL", 10*time.Minute, "how often DONE/ is listed in case events were lost")
	c.Wait = 20 * time.Second
}

// Outcome of one result.
type Outcome string

// Outcomes.
const (
	Installed Outcome = "installed" // new file in place, original and DONE/ removed
	Collision Outcome = "collision" // target name taken by a different file: nothing done
	Refused   Outcome = "refused"   // key outside the library rules
	Rejected  Outcome = "rejected"  // result failed verification: original kept
	Missing   Outcome = "gone"      // DONE/ object no longer exists
)

// Result describes one handled DONE/ object.
type Result struct {
	Key, Path     string
	Outcome       Outcome
	Before, After int64 // bytes of the original and of the HEVC file
	Err           error
}

// Downloader installs results.
type Downloader struct {
	Store storage.Store
	Queue queue.Queue // results queue; nil: reconcile only
	Cfg   Config
	Log   zerolog.Logger
	// OnResult, if set, sees every handled object.
	OnResult func(Result)
}

// Run reconciles, then consumes the results queue until ctx ends,
// reconciling again every Cfg.Reconcile.
func (d *Downloader) Run(ctx context.Context) error {
	if err := d.Reconcile(ctx); err != nil && ctx.Err() == nil {
		d.Log.Error().Err(err).Msg("reconcile")
	}
	last := time.Now()
	for ctx.Err() == nil {
		if d.Cfg.Reconcile > 0 && time.Since(last) >= d.Cfg.Reconcile {
			if err := d.Reconcile(ctx); err != nil && ctx.Err() == nil {
				d.Log.Error().Err(err).Msg("reconcile")
			}
			last = time.Now()
		}
		if d.Queue == nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(last.Add(d.Cfg.Reconcile))):
			}
			continue
		}
		wait := d.Cfg.Wait
		if d.Cfg.Reconcile > 0 {
			wait = min(wait, max(time.Second, time.Until(last.Add(d.Cfg.Reconcile))))
		}
		msgs, err := d.Queue.Receive(ctx, 10, wait)
		if err != nil {
			if ctx.Err() == nil {
				d.Log.Error().Err(err).Msg("receive results")
				sleep(ctx, 5*time.Second)
			}
			continue
		}
		for _, m := range msgs {
			d.handleMessage(ctx, m)
		}
	}
	return nil
}

func (d *Downloader) handleMessage(ctx context.Context, m queue.Message) {
	recs, err := events.Parse(m.Body)
	if err != nil {
		d.Log.Error().Err(err).Str("message", m.ID).Msg("unreadable results message; deleted")
		d.Queue.Delete(ctx, m.Receipt)
		return
	}
	retry := false
	for _, r := range recs {
		if !strings.HasPrefix(r.Key, library.DonePrefix) {
			continue
		}
		if _, err := d.Install(ctx, r.Key); err != nil {
			retry = true
		}
	}
	if !retry {
		if err := d.Queue.Delete(ctx, m.Receipt); err != nil {
			d.Log.Warn().Err(err).Msg("delete results message")
		}
	}
}

// Reconcile installs every object under DONE/.
func (d *Downloader) Reconcile(ctx context.Context) error {
	var keys []string
	if err := storage.Walk(ctx, d.Store, library.DonePrefix, func(o storage.Object) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		return fmt.Errorf("list %s: %w", library.DonePrefix, err)
	}
	var errs []error
	for _, k := range keys {
		if _, err := d.Install(ctx, k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Install brings one DONE/ object home. It returns an error only for
// failures worth retrying; refusals are reported in the Result and logged.
func (d *Downloader) Install(ctx context.Context, key string) (res Result, err error) {
	res.Key = key
	log := d.Log.With().Str("key", key).Logger()
	defer func() {
		res.Err = err
		if d.OnResult != nil {
			d.OnResult(res)
		}
	}()
	hevcRel, stem, err := library.RelsFromDone(key)
	if err != nil {
		res.Outcome = Refused
		log.Error().Err(err).Msg("refused: key would escape the library")
		return res, nil
	}
	target, _ := library.Path(d.Cfg.Root, hevcRel)
	res.Path = target
	orig, origInfo := findOriginal(d.Cfg.Root, stem)

	obj, err := d.Store.Head(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		res.Outcome = Missing
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("head %s: %w", key, err)
	}
	res.After = obj.Size

	if _, err := os.Lstat(target); err == nil {
		// Either our own earlier install (crash before cleanup) or a
		// stranger: only a byte-identical file counts as ours.
		sha, _, herr := library.FileSHA256(target)
		if herr != nil || obj.SHA256 == "" || sha != obj.SHA256 {
			res.Outcome = Collision
			log.Error().Str("existing", target).Msg("not installed: a different file already has this name; resolve by hand (the result stays in DONE/)")
			return res, nil
		}
		log.Info().Msg("already installed; finishing cleanup")
		return d.cleanup(ctx, key, orig, origInfo, res)
	}

	mode := os.FileMode(d.Cfg.FileMode)
	var mtime time.Time
	var origProbe media.Info
	if orig != "" {
		res.Before = origInfo.Size()
		mtime = origInfo.ModTime()
		if mode == 0 {
			mode = origInfo.Mode().Perm()
		}
		if origProbe, err = media.Probe(ctx, orig); err != nil {
			return res, fmt.Errorf("probe original %s: %w", orig, err)
		}
	} else if t, perr := time.Parse(time.RFC3339Nano, obj.Metadata[storage.MetaSourceMtime]); perr == nil {
		mtime = t
	}
	if mode == 0 {
		mode = 0o644
	}

	tmp, err := library.CreateTemp(target, os.FileMode(d.Cfg.DirMode))
	if err != nil {
		return res, err
	}
	defer tmp.Abort()
	start := time.Now()
	r, _, err := d.Store.Get(ctx, key)
	if err != nil {
		return res, fmt.Errorf("get %s: %w", key, err)
	}
	_, err = io.Copy(tmp, r)
	r.Close()
	if errors.Is(err, storage.ErrChecksum) {
		res.Outcome = Rejected
		log.Error().Err(err).Msg("not installed: download does not match its checksum; original kept")
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("download %s: %w", key, err)
	}
	if err := tmp.Sync(); err != nil {
		return res, err
	}
	if orig != "" {
		if _, err := media.Verify(ctx, origProbe, tmp.Name()); err != nil {
			if errors.Is(err, media.ErrVerify) || errors.Is(err, media.ErrBadInput) {
				res.Outcome = Rejected
				log.Error().Err(err).Str("original", orig).Msg("not installed: result does not match its original; original kept")
				return res, nil
			}
			return res, fmt.Errorf("verify %s: %w", key, err)
		}
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(tmp.Name(), mtime, mtime); err != nil {
			return res, fmt.Errorf("set mtime of %s: %w", target, err)
		}
	}
	if err := tmp.Commit(obj.Size, obj.SHA256, mode); err != nil {
		if errors.Is(err, library.ErrExists) {
			res.Outcome = Collision
			log.Error().Str("existing", target).Msg("not installed: name taken while downloading")
			return res, nil
		}
		if errors.Is(err, library.ErrChecksum) {
			res.Outcome = Rejected
			log.Error().Err(err).Msg("not installed; original kept")
			return res, nil
		}
		return res, err
	}
	secs := time.Since(start).Seconds()
	log.Info().Str("file", hevcRel).Int64("bytes", obj.Size).Float64("MBps", float64(obj.Size)/1e6/max(secs, 1e-6)).Msg("installed")
	return d.cleanup(ctx, key, orig, origInfo, res)
}

// cleanup runs once the verified result is durably in place: the original
// goes first, then the DONE/ object.
func (d *Downloader) cleanup(ctx context.Context, key, orig string, origInfo os.FileInfo, res Result) (Result, error) {
	if orig != "" {
		if err := os.Remove(orig); err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("remove original %s: %w", orig, err)
		}
		if err := library.SyncDir(filepath.Dir(orig)); err != nil {
			return res, err
		}
		if res.Before == 0 && origInfo != nil {
			res.Before = origInfo.Size()
		}
	}
	if err := d.Store.Delete(ctx, key); err != nil {
		return res, fmt.Errorf("delete %s: %w", key, err)
	}
	res.Outcome = Installed
	return res, nil
}

// findOriginal looks for <stem>.mp4 in any case of the extension.
func findOriginal(root, stem string) (string, os.FileInfo) {
	p, err := library.Path(root, stem+".mp4")
	if err != nil {
		return "", nil
	}
	dir, base := filepath.Dir(p), filepath.Base(stem)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", nil
	}
	for _, e := range ents {
		n := e.Name()
		if len(n) == len(base)+4 && n[:len(base)] == base && strings.EqualFold(n[len(base):], ".mp4") && e.Type().IsRegular() {
			fi, err := e.Info()
			if err != nil {
				return "", nil
			}
			return filepath.Join(dir, n), fi
		}
	}
	return "", nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
