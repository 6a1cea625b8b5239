package s3

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// bodyRetries is how many times a ranged download is resumed after its
// body breaks off (the SDK retries failed requests, not broken bodies).
const bodyRetries = 3

// Get streams key. Objects larger than one range (half a part, see
// rangeSize) are fetched as parallel ranged GETs (at most the memory of
// Concurrency parts buffered, pinned to the first response's ETag) and
// delivered in order. At EOF the reader checks
// the size and the SHA-256 from metadata (or, for objects written by other
// tools, the full-object CRC32C when the server has one); a mismatch is an
// error wrapping storage.ErrChecksum instead of io.EOF.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, storage.Object, error) {
	rng := fmt.Sprintf("bytes=0-%d", s.rng-1)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key, Range: &rng})
	if err != nil && httpStatus(err) == http.StatusRequestedRangeNotSatisfiable {
		out, err = s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}) // empty object
	}
	if err != nil {
		if isNotFound(err) {
			return nil, storage.Object{}, fmt.Errorf("s3 get %s: %w", key, storage.ErrNotFound)
		}
		return nil, storage.Object{}, fmt.Errorf("s3 get %s: %w", key, err)
	}
	total := aws.ToInt64(out.ContentLength)
	if cr := aws.ToString(out.ContentRange); cr != "" {
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			if t, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
				total = t
			}
		}
	}
	obj := object(key, total, out.LastModified, out.Metadata)
	v := verifier{key: key, total: total, wantSHA: strings.ToLower(obj.SHA256), sha: sha256.New()}
	if v.wantSHA == "" {
		v.wantCRC = s.fullCRC(ctx, key, aws.ToString(out.ETag))
	}
	if total <= aws.ToInt64(out.ContentLength) {
		return &streamReader{body: out.Body, v: v}, obj, nil
	}

	gctx, cancel := context.WithCancel(ctx)
	g := &getReader{
		s: s, key: key, etag: aws.ToString(out.ETag), total: total, v: v,
		ctx: gctx, cancel: cancel,
		ordered: make(chan *part, s.rconc),
		free:    make(chan []byte, s.rconc),
		first:   out.Body,
	}
	return g, obj, nil
}

// fullCRC returns the object's full-object CRC32C when the server reports
// one, else "".
func (s *Store) fullCRC(ctx context.Context, key, etag string) string {
	in := &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key, ChecksumMode: types.ChecksumModeEnabled}
	if etag != "" {
		in.IfMatch = &etag
	}
	out, err := s.client.HeadObject(ctx, in)
	if err != nil || out.ChecksumType == types.ChecksumTypeComposite {
		return ""
	}
	c := aws.ToString(out.ChecksumCRC32C)
	if strings.Contains(c, "-") {
		return ""
	}
	return c
}

// verifier checks what was read against the size and checksums.
type verifier struct {
	key     string
	total   int64
	n       int64
	sha     hash.Hash
	crc     uint32
	wantSHA string
	wantCRC string
}

func (v *verifier) write(b []byte) {
	v.n += int64(len(b))
	v.sha.Write(b)
	if v.wantCRC != "" {
		v.crc = crc32.Update(v.crc, castagnoli, b)
	}
}

// finish returns io.EOF when everything matches.
func (v *verifier) finish() error {
	if v.n != v.total {
		return fmt.Errorf("s3 get %s: read %d bytes, object has %d: %w", v.key, v.n, v.total, io.ErrUnexpectedEOF)
	}
	if v.wantSHA != "" {
		if got := hex.EncodeToString(v.sha.Sum(nil)); got != v.wantSHA {
			return fmt.Errorf("s3 get %s: %w: read sha256 %s, metadata says %s", v.key, storage.ErrChecksum, got, v.wantSHA)
		}
	} else if v.wantCRC != "" {
		if got := crcString(v.crc); got != v.wantCRC {
			return fmt.Errorf("s3 get %s: %w: read crc32c %s, object has %s", v.key, storage.ErrChecksum, got, v.wantCRC)
		}
	}
	return io.EOF
}

// streamReader reads a single-response object.
type streamReader struct {
	body io.ReadCloser
	v    verifier
	err  error
}

func (r *streamReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.body.Read(p)
	r.v.write(p[:n])
	if err == io.EOF {
		r.err = r.v.finish()
		if n > 0 && r.err == io.EOF {
			return n, nil
		}
		return n, r.err
	} else if err != nil {
		r.err = fmt.Errorf("s3 get %s: %w", r.v.key, err)
		return n, r.err
	}
	return n, nil
}

func (r *streamReader) Close() error {
	if r.err == nil {
		r.err = errors.New("s3 get: reader closed")
	}
	return r.body.Close()
}

// part is one range of a parallel download.
type part struct {
	off, n int64
	buf    []byte
	err    error
	done   chan struct{}
}

// getReader delivers parts in order while later ones download.
type getReader struct {
	s       *Store
	key     string
	etag    string
	total   int64
	v       verifier
	ctx     context.Context
	cancel  context.CancelFunc
	ordered chan *part  // parts in offset order, at most conc
	free    chan []byte // buffers the reader is done with
	cur     *part
	off     int64
	err     error
	once    sync.Once

	// The other ranges are requested at the first read (start): a caller
	// that looks at the object's metadata and then closes the reader
	// costs one response, not Concurrency parts' worth of transfers.
	startMu sync.Mutex
	first   io.ReadCloser // the first response, until start
	started bool
	// wa, when set (WriteToAt), receives every part at its offset from
	// the goroutine that fetched it.
	wa      io.WriterAt
	fetches sync.WaitGroup
}

// start begins the parallel download (once; not after Close).
func (g *getReader) start() {
	g.startMu.Lock()
	defer g.startMu.Unlock()
	if g.started {
		return
	}
	g.started = true
	if g.first == nil { // closed
		close(g.ordered)
		return
	}
	first := g.first
	g.first = nil
	g.fetches.Add(1) // the scheduler too: its fetches are added before it ends
	go g.schedule(first)
}

func (g *getReader) schedule(first io.ReadCloser) {
	defer g.fetches.Done()
	defer close(g.ordered)
	allocated := 0
	for off := int64(0); off < g.total; off += g.s.rng {
		var buf []byte
		if allocated < g.s.rconc {
			buf = g.s.rangeBuffer()
			allocated++
		} else {
			select {
			case buf = <-g.free:
			case <-g.ctx.Done():
				if off == 0 {
					first.Close()
				}
				return
			}
		}
		p := &part{off: off, n: min(g.s.rng, g.total-off), buf: buf, done: make(chan struct{})}
		g.ordered <- p // never blocks: at most conc parts exist
		body := io.ReadCloser(nil)
		if off == 0 {
			body = first
		}
		g.fetches.Add(1)
		go func() {
			defer g.fetches.Done()
			g.fetch(p, body)
		}()
	}
}

// fetch fills p, from body when given (the first response), resuming the
// range when a body breaks off.
func (g *getReader) fetch(p *part, body io.ReadCloser) {
	defer close(p.done)
	var got int64
	for attempt := 0; ; attempt++ {
		if body == nil {
			rng := fmt.Sprintf("bytes=%d-%d", p.off+got, p.off+p.n-1)
			in := &s3.GetObjectInput{Bucket: &g.s.bucket, Key: &g.key, Range: &rng}
			if g.etag != "" {
				in.IfMatch = &g.etag
			}
			out, err := g.s.client.GetObject(g.ctx, in)
			if err != nil {
				if httpStatus(err) == http.StatusPreconditionFailed {
					err = fmt.Errorf("object changed during download: %w", err)
				}
				p.err = fmt.Errorf("s3 get %s: range %s: %w", g.key, rng, err)
				return
			}
			body = out.Body
		}
		b := body
		stop := context.AfterFunc(g.ctx, func() { b.Close() })
		m, err := io.ReadFull(body, p.buf[got:p.n])
		stop()
		body.Close()
		body = nil
		got += int64(m)
		if got == p.n {
			if g.wa != nil {
				if _, err := g.wa.WriteAt(p.buf[:p.n], p.off); err != nil {
					p.err = fmt.Errorf("s3 get %s: write bytes %d-%d: %w", g.key, p.off, p.off+p.n-1, err)
				}
			}
			return
		}
		if attempt >= bodyRetries || g.ctx.Err() != nil {
			p.err = fmt.Errorf("s3 get %s: bytes %d-%d: %w", g.key, p.off, p.off+p.n-1, err)
			return
		}
	}
}

// next makes the following part current, or finishes.
func (g *getReader) next() error {
	g.start()
	p, ok := <-g.ordered
	if !ok {
		if g.ctx.Err() != nil {
			return fmt.Errorf("s3 get %s: %w", g.key, g.ctx.Err())
		}
		g.releaseAll()
		return g.v.finish()
	}
	<-p.done
	if p.err != nil {
		g.cancel()
		return p.err
	}
	g.v.write(p.buf[:p.n])
	g.cur, g.off = p, 0
	return nil
}

func (g *getReader) advance(n int) {
	g.off += int64(n)
	if g.off == g.cur.n {
		g.free <- g.cur.buf
		g.cur = nil
	}
}

func (g *getReader) Read(b []byte) (int, error) {
	for {
		if g.err != nil {
			return 0, g.err
		}
		if g.cur == nil {
			g.err = g.next()
			continue
		}
		n := copy(b, g.cur.buf[g.off:g.cur.n])
		g.advance(n)
		return n, nil
	}
}

// WriteTo writes the parts straight from their buffers (io.Copy uses it).
func (g *getReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if g.err == io.EOF {
			return total, nil
		}
		if g.err != nil {
			return total, g.err
		}
		if g.cur == nil {
			g.err = g.next()
			continue
		}
		n, err := w.Write(g.cur.buf[g.off:g.cur.n])
		total += int64(n)
		g.advance(n)
		if err != nil {
			return total, err
		}
	}
}

// WriteToAt writes the object to w, each range at its offset from the
// goroutine that fetched it, as soon as it has arrived (several at once,
// in any order), while this goroutine checks them in order: writing
// overlaps the network, the checksum and the other writes. It returns
// once every range is written and checked, with the bytes checked and
// nil, or with an error (wrapping storage.ErrChecksum on a mismatch); on
// an error, bytes may have been written anywhere in w. No write to w
// happens after it returns. Call it instead of Read and WriteTo, first.
func (g *getReader) WriteToAt(w io.WriterAt) (int64, error) {
	g.startMu.Lock()
	if g.started {
		g.startMu.Unlock()
		return 0, fmt.Errorf("s3 get %s: WriteToAt after Read", g.key)
	}
	g.wa = w
	g.startMu.Unlock()
	var total int64
	for {
		if g.err == nil && g.cur == nil {
			g.err = g.next()
		}
		if g.err == io.EOF {
			g.fetches.Wait()
			return total, nil
		}
		if g.err != nil {
			g.cancel()
			g.fetches.Wait()
			return total, g.err
		}
		total += g.cur.n
		g.advance(int(g.cur.n))
	}
}

// releaseAll returns the buffers to the store's pool after the last part.
func (g *getReader) releaseAll() {
	for {
		select {
		case b := <-g.free:
			g.s.releaseRange(b)
		default:
			return
		}
	}
}

func (g *getReader) Close() error {
	g.once.Do(func() {
		g.cancel()
		g.startMu.Lock()
		if g.first != nil {
			g.first.Close()
			g.first = nil
		}
		g.startMu.Unlock()
		if g.err == nil {
			g.err = errors.New("s3 get: reader closed")
		}
	})
	return nil
}
