package downloader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/progress"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// locate starts the GET, finds the original, and hands a target that
// already exists to resume. One GET both describes the object (size,
// SHA-256, what it was made from) and delivers it: no HEAD first. The S3
// store requests further ranges only at the first read, so a job that ends
// here costs one response, closed unread.
func (j *job) locate(ctx context.Context) (bool, error) {
	j.start = time.Now()
	body, obj, err := j.d.Store.Get(ctx, j.key)
	if errors.Is(err, storage.ErrNotFound) {
		j.res.Outcome = Missing
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %s: %w", j.key, err)
	}
	j.body, j.obj = body, obj
	j.res.After, j.res.SHA256 = obj.Size, obj.SHA256
	if obj.SHA256 == "" {
		return j.reject("the object has no recorded SHA-256, so its download cannot be verified")
	}

	// The original's SHA-256 (a full read of a file as large as the
	// result) is checked while the result downloads, not before.
	path, info, unhashed, err := j.d.findOriginal(j.ref, obj)
	if err != nil {
		return j.mismatchOr(err)
	}
	if path != "" {
		rel, err := j.rel(path)
		if err != nil {
			return false, err
		}
		j.orig = original{path: path, rel: rel, info: info, unhashed: unhashed}
		j.res.Before = info.Size()
		j.log = j.log.With().Str("original", filepath.Base(path)).Logger()
	}

	if fi, err := j.root.Lstat(j.targetRel); err == nil {
		j.closeBody()
		j.tk.handOver(ctx)
		if unhashed {
			if err := confirmOriginal(ctx, path, obj); err != nil {
				return j.mismatchOr(err)
			}
			j.orig.unhashed = false
		}
		return j.resume(ctx, fi)
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("check %s: %w", j.target, err)
	}

	if r, ok := j.d.knownRejection(j.key, obj, j.orig.path, j.orig.info); ok {
		j.log.Debug().Msg("rejected before; not downloading again")
		j.res.Outcome, j.res.Reason = Rejected, r
		return true, nil
	}
	return false, nil
}

// fetch downloads the result into a recorded temp file beside its target
// while the original's SHA-256 is checked, then hands the download slot on.
func (j *job) fetch(ctx context.Context) (bool, error) {
	if j.orig.unhashed {
		cctx, cancel := context.WithCancel(ctx)
		j.confirmed = make(chan error, 1)
		j.cancelHash = cancel // an early return stops the hashing
		go func() { j.confirmed <- confirmOriginal(cctx, j.orig.path, j.obj) }()
	}
	temps, err := j.d.tempFiles()
	if err != nil {
		return false, err
	}
	if j.tmp, err = newTemp(j.root, temps, filepath.Dir(j.targetRel), os.FileMode(j.d.Cfg.DirMode), !j.d.Cfg.BufferedWrites); err != nil {
		return false, err
	}
	tmp := j.tmp
	tr := j.d.Progress.Start(j.ref.Hevc, j.obj.Size)
	if wa, ok := j.body.(writerToAt); ok && tmp.parallel() {
		// Ranges are written where they belong as they arrive, with
		// O_DIRECT, while the reader checks the SHA-256 in order.
		_, err = wa.WriteToAt(countAt{tmp, tr})
		tmp.endParallel()
	} else {
		// Counting on the writer's side keeps the reader's WriteTo: whole
		// parts reach tmp in one write each, from their own (aligned)
		// buffers.
		_, err = io.Copy(tr.Writer(tmp), j.body)
	}
	j.closeBody()
	tr.Done(err != nil)
	j.res.Downloaded = tmp.n
	if errors.Is(err, storage.ErrChecksum) {
		return j.remember("download does not match its recorded checksum: " + err.Error())
	}
	if err != nil {
		return false, fmt.Errorf("download %s: %w", j.key, err)
	}
	// The reader verified every byte against the SHA-256 recorded in the
	// metadata examined by locate: it came with the same response (further
	// ranges are pinned to its ETag).
	if tmp.n != j.obj.Size {
		return j.remember(fmt.Sprintf("download does not match its recorded size: %d bytes, recorded %d", tmp.n, j.obj.Size))
	}
	j.downloaded = time.Now()
	// The download's buffers are free: let the next result download while
	// this one is verified, fsynced, installed and its original deleted.
	j.tk.handOver(ctx)
	return false, nil
}

// writerToAt is a download that can write its ranges in parallel at their
// offsets (the S3 store's ranged GET), verifying them in order.
type writerToAt interface {
	WriteToAt(w io.WriterAt) (int64, error)
}

// countAt counts what is written through it for the progress display.
type countAt struct {
	w  io.WriterAt
	tr *progress.Transfer
}

func (c countAt) WriteAt(p []byte, off int64) (int, error) {
	n, err := c.w.WriteAt(p, off)
	c.tr.Add(int64(n))
	return n, err
}
