package syncer

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A large file starts downloading as one stream (GET Range: bytes=0-).
// When a transfer slot is idle — no other file is waiting for it, as at
// the end of a pass — the largest range still to come is cut in half and
// its upper half fetched on that slot (GET Range, If-Match on the first
// answer's ETag, so every range is the same version of the file). Busy
// passes thus cost one request per file, as before, while the last files
// of a pass do not run on one stream with the other slots idle. Every
// stream writes at its offset in the temp file (pwrite).
//
// The first stream hashes what it writes, in order. What the other streams
// write lies beyond it; once the first stream is done, it hashes the rest
// reading it back from the page cache, close behind the writers, so the
// checksums still cover every byte of the temp file. No range is held in
// memory: each stream has one copy buffer.

// span is one stream's share of the file: [start, end). claimed bytes are
// being written (a split never cuts below them); done bytes are written.
type span struct {
	start, claimed, done, end int64
}

// rangedDL is one file's split download.
type rangedDL struct {
	r      *userRun
	remote string
	t      *staged
	size   int64
	etag   string // of the first answer; If-Match of the others
	wb     *writeback
	hashes []hash.Hash

	mu      sync.Mutex
	cond    *sync.Cond // signalled when a span's done grows, a stream ends, or err is set
	spans   []*span
	written int64 // bytes written, all streams
	err     error
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// errNoRanges means the server ignored Range: the first stream carries the
// whole file and nothing can be split.
var errNoRanges = errors.New("server does not serve ranges")

// downloadRanged fetches remote (listed with e.Size bytes) into t, hashing
// it into v; see the comment at the top of the file.
func (r *userRun) downloadRanged(ctx context.Context, remote string, e Entry, t *staged, v *verifier) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &rangedDL{r: r, remote: remote, t: t, size: e.Size, hashes: v.hashes, cancel: cancel,
		spans: []*span{{end: e.Size}}}
	d.cond = sync.NewCond(&d.mu)
	d.wb = newWriteback(t.Name(), writebackStep)
	defer d.wb.close()

	body, etag, err := r.dav.getRange(ctx, remote, 0, e.Size, e.Size, "", r.s.cfg.Timeout)
	if errors.Is(err, errNoRanges) {
		// A plain 200: one stream, in order, hashed as it goes.
		defer body.Close()
		if err := d.stream(ctx, d.spans[0], body, true); err != nil {
			return err
		}
		t.n = d.written
		return nil
	}
	if err != nil {
		return err
	}
	d.etag = etag
	first := d.spans[0]
	stop := make(chan struct{})
	var split sync.WaitGroup
	if etag != "" && r.s.cfg.PartStreams > 1 {
		split.Go(func() { d.splitter(ctx, stop) })
	}
	err = d.stream(ctx, first, body, true)
	body.Close()
	if err == nil {
		d.mu.Lock()
		end := first.end
		d.mu.Unlock()
		err = d.hashRest(end)
	}
	close(stop)
	split.Wait()
	if err != nil {
		d.fail(err)
	}
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	t.n = d.written
	return d.err
}

// stream copies body into sp's bytes of the temp file, hashing them when
// inOrder (the first stream), until sp's end, which a split may lower
// meanwhile.
func (d *rangedDL) stream(ctx context.Context, sp *span, body io.Reader, inOrder bool) error {
	bp := d.r.s.bufs.Get().(*[]byte)
	defer d.r.s.bufs.Put(bp)
	buf := *bp
	for {
		d.mu.Lock()
		room, pos := sp.end-sp.claimed, sp.claimed
		d.mu.Unlock()
		if room <= 0 {
			return nil
		}
		n, rerr := io.ReadFull(body, buf[:min(int64(len(buf)), room)])
		if n > 0 {
			// Claim before writing: a split cuts only above claimed bytes.
			d.mu.Lock()
			k := min(int64(n), sp.end-sp.claimed)
			sp.claimed += k
			d.mu.Unlock()
			if _, err := d.t.f.WriteAt(buf[:k], pos); err != nil {
				return fmt.Errorf("write %s: %w", d.t.Name(), err)
			}
			if inOrder {
				for _, h := range d.hashes {
					h.Write(buf[:k])
				}
			}
			d.wb.wrote(int(k))
			d.mu.Lock()
			sp.done += k
			d.written += k
			d.cond.Broadcast()
			d.mu.Unlock()
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF), errors.Is(rerr, io.ErrUnexpectedEOF):
			d.mu.Lock()
			short := sp.claimed < sp.end
			d.mu.Unlock()
			if short {
				return fmt.Errorf("download %s: %w (range ended at byte %d)", d.remote, io.ErrUnexpectedEOF, pos+int64(n))
			}
			return nil
		default:
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("download %s: %w (at byte %d)", d.remote, rerr, pos+int64(n))
		}
	}
}

// splitter lends idle transfer slots to this file until stop, each to the
// upper half of the largest range left, while halves stay ≥ PartSize and
// the file has fewer than PartStreams streams.
func (d *rangedDL) splitter(ctx context.Context, stop <-chan struct{}) {
	s := d.r.s
	for {
		freed := s.slotFreed()
		if !d.canSplit() {
			return
		}
		if s.filesWaiting.Load() == 0 {
			select {
			case s.sem <- struct{}{}:
				if !d.split(ctx) {
					s.releaseSlot()
					return
				}
				continue
			default:
			}
		}
		select {
		case <-freed:
		case <-stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (d *rangedDL) canSplit() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.largest()
	return ok
}

// largest is the span to split, if any. Call with mu held.
func (d *rangedDL) largest() (*span, bool) {
	if d.err != nil || len(d.spans) >= d.r.s.cfg.PartStreams {
		return nil, false
	}
	var best *span
	for _, sp := range d.spans {
		if best == nil || sp.end-sp.claimed > best.end-best.claimed {
			best = sp
		}
	}
	return best, best.end-best.claimed >= 2*d.r.s.cfg.PartSize
}

// split cuts the largest span and starts a stream (on the slot the caller
// took) for its upper half; false when there is nothing left to split.
func (d *rangedDL) split(ctx context.Context) bool {
	d.mu.Lock()
	sp, ok := d.largest()
	if !ok {
		d.mu.Unlock()
		return false
	}
	mid := sp.claimed + (sp.end-sp.claimed)/2
	mid -= mid % (1 << 20) // whole MiB: page-aligned writes
	ns := &span{start: mid, claimed: mid, done: mid, end: sp.end}
	sp.end = mid
	d.spans = append(d.spans, ns)
	d.mu.Unlock()
	d.wg.Go(func() {
		defer d.r.s.releaseSlot()
		err := d.fetch(ctx, ns)
		if err != nil {
			d.fail(err)
		}
		d.mu.Lock()
		d.cond.Broadcast()
		d.mu.Unlock()
	})
	return true
}

// fetch downloads span sp (at its start, with nothing claimed yet).
func (d *rangedDL) fetch(ctx context.Context, sp *span) error {
	d.mu.Lock()
	end := sp.end
	d.mu.Unlock()
	body, _, err := d.r.dav.getRange(ctx, d.remote, sp.start, end-sp.start, d.size, d.etag, d.r.s.cfg.Timeout)
	if err != nil {
		return err
	}
	defer body.Close()
	return d.stream(ctx, sp, body, false)
}

// fail records the first error and stops every stream.
func (d *rangedDL) fail(err error) {
	d.mu.Lock()
	if d.err == nil {
		d.err = err
	}
	d.cond.Broadcast()
	d.mu.Unlock()
	d.cancel()
}

// hashRest hashes [from, size) reading back what the other streams wrote,
// waiting for each byte to be written.
func (d *rangedDL) hashRest(from int64) error {
	bp := d.r.s.bufs.Get().(*[]byte)
	defer d.r.s.bufs.Put(bp)
	buf := *bp
	for h := from; h < d.size; {
		d.mu.Lock()
		var avail int64
		for d.err == nil {
			if sp := d.spanAt(h); sp != nil && sp.done > h {
				avail = sp.done - h
				break
			}
			d.cond.Wait()
		}
		err := d.err
		d.mu.Unlock()
		if err != nil {
			return err
		}
		n, err := d.t.f.ReadAt(buf[:min(avail, int64(len(buf)))], h)
		if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return fmt.Errorf("read back %s: %w", d.t.Name(), err)
		}
		for _, hh := range d.hashes {
			hh.Write(buf[:n])
		}
		h += int64(n)
	}
	return nil
}

// spanAt is the span holding byte off. Call with mu held.
func (d *rangedDL) spanAt(off int64) *span {
	for _, sp := range d.spans {
		if sp.start <= off && off < sp.end {
			return sp
		}
	}
	return nil
}

// getRange GETs n bytes of rel (listed with size bytes) from off (Range),
// with If-Match when etag is set. It returns the body (closed when ctx
// ends or no byte arrives for stall) and the answer's ETag. A 200 instead
// of a 206 for off 0 comes back with errNoRanges and the body of the whole
// file. A total size other than size means the file changed (errChanged).
func (d *dav) getRange(ctx context.Context, rel string, off, n, size int64, etag string, stall time.Duration) (io.ReadCloser, string, error) {
	hdr := map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", off, off+n-1)}
	if etag != "" {
		hdr["If-Match"] = etag
	}
	resp, err := d.do(ctx, http.MethodGet, rel, nil, hdr)
	if err != nil {
		return nil, "", err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		first, last, total, ok := parseContentRange(cr)
		if ok && total != size {
			drain(resp)
			return nil, "", fmt.Errorf("%w: GET %s: now %d bytes, listed %d", errChanged, rel, total, size)
		}
		if !ok || first != off || last != off+n-1 {
			drain(resp)
			return nil, "", fmt.Errorf("GET %s: asked for bytes %d-%d, got Content-Range %q", rel, off, off+n-1, cr)
		}
	case http.StatusOK:
		if off == 0 && (resp.ContentLength < 0 || resp.ContentLength == size) {
			return newWatchedBody(ctx, resp.Body, stall), "", errNoRanges
		}
		if off == 0 {
			drain(resp)
			return nil, "", fmt.Errorf("%w: GET %s: now %d bytes, listed %d", errChanged, rel, resp.ContentLength, size)
		}
		drain(resp)
		return nil, "", fmt.Errorf("GET %s: %w", rel, errNoRanges)
	case http.StatusNotFound:
		drain(resp)
		return nil, "", fmt.Errorf("GET %s: %w", rel, ErrNotFound)
	case http.StatusPreconditionFailed:
		drain(resp)
		return nil, "", fmt.Errorf("GET %s: %w", rel, errChanged)
	default:
		drain(resp)
		return nil, "", &StatusError{Op: "GET", Path: rel, Code: resp.StatusCode}
	}
	return newWatchedBody(ctx, resp.Body, stall), resp.Header.Get("ETag"), nil
}

// parseContentRange parses "bytes first-last/total".
func parseContentRange(cr string) (first, last, total int64, ok bool) {
	r, ok := strings.CutPrefix(strings.TrimSpace(cr), "bytes ")
	if !ok {
		return 0, 0, 0, false
	}
	r, t, ok := strings.Cut(r, "/")
	a, b, ok2 := strings.Cut(r, "-")
	if !ok || !ok2 {
		return 0, 0, 0, false
	}
	var errs [3]error
	first, errs[0] = strconv.ParseInt(a, 10, 64)
	last, errs[1] = strconv.ParseInt(b, 10, 64)
	total, errs[2] = strconv.ParseInt(t, 10, 64)
	return first, last, total, errors.Join(errs[:]...) == nil
}
