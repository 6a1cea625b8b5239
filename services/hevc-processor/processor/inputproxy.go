package processor

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// presignTTL is the lifetime of each presigned URL the input proxy signs:
// one per request ffmpeg makes, used at once (S3 checks the expiry when a
// request starts, not while its body streams), so a few minutes cover a
// slow connection set-up and nothing longer is ever handed out.
const presignTTL = 5 * time.Minute

// inputProxy lets ffmpeg stream the TODO object without ever seeing a
// presigned URL: ffmpeg reads http://127.0.0.1:<port>/<random>/input.mp4
// (the only URL in its arguments, usable only from this host, for this
// object, while the job runs), and each of its requests (ranges
// included) is forwarded to a freshly presigned URL of the object.
//
// Every request after the first carries If-Match with the ETag of the
// first response, so all the bytes ffmpeg reads (and the picture samples
// the verification reads) come from the one object version that was
// HEADed: an object replaced meanwhile answers 412, which ffmpeg reports
// as an HTTP error and the job is retried on the new object.
type inputProxy struct {
	URL string // what ffmpeg reads

	presigner storage.Presigner
	key       string
	path      string
	client    *http.Client
	srv       *http.Server
	done      chan struct{}

	mu   sync.Mutex
	etag string // of the first response: the version every read is pinned to
	// size is the object's: from the HEAD, or, when the proxy starts
	// before the HEAD has answered (-1), from the first response, and then
	// checked against the HEAD's by expect.
	size int64
	// sha is the SHA-256 in the object's metadata (storage.MetaSHA256, ""
	// when it has none) of the first response or of the HEAD, whichever
	// came first (shaKnown); every response must carry the same, so that
	// the bytes read are the version the job's HEAD described (the job
	// later deletes TODO/ only if it still holds that SHA-256).
	sha      string
	shaKnown bool
}

// startInputProxy serves key (of size bytes, or -1: not known yet, see
// expect) on a loopback port until Close.
func startInputProxy(ps storage.Presigner, key string, size int64) (*inputProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("input proxy for %s: %w", key, err)
	}
	var rnd [16]byte
	_, _ = rand.Read(rnd[:])
	p := &inputProxy{
		presigner: ps, key: key, size: size,
		path: "/" + hex.EncodeToString(rnd[:]) + "/input.mp4",
		// No overall timeout: a response streams for as long as ffmpeg
		// reads it; ffmpeg's own -rw_timeout ends a stalled one, which
		// cancels the upstream request with it.
		client: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		done:   make(chan struct{}),
	}
	p.URL = "http://" + ln.Addr().String() + p.path
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// expect sets the object's size and SHA-256 from the HEAD, for a proxy
// started without them, and fails when a response has already shown
// another (the object was replaced between the first read and the HEAD).
func (p *inputProxy) expect(size int64, sha string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.size >= 0 && p.size != size || p.shaKnown && p.sha != sha {
		return fmt.Errorf("%s changed while it was read: %d bytes, SHA-256 %q; the HEAD says %d, %q", p.key, p.size, p.sha, size, sha)
	}
	p.size, p.sha, p.shaKnown = size, sha, true
	return nil
}

// shaHeader is the response header of the object's storage.MetaSHA256
// (S3 user metadata).
var shaHeader = http.CanonicalHeaderKey("X-Amz-Meta-" + storage.MetaSHA256)

// Close stops the proxy and every request in flight.
func (p *inputProxy) Close() {
	_ = p.srv.Close()
	<-p.done
	p.client.CloseIdleConnections()
}

// forwarded are the response headers ffmpeg's http protocol looks at.
var forwarded = []string{"Content-Length", "Content-Range", "Accept-Ranges", "Content-Type", "Last-Modified", "ETag"}

func (p *inputProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != p.path || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	u, err := p.presigner.PresignGet(r.Context(), p.key, presignTTL)
	if err != nil {
		http.Error(w, "presign failed", http.StatusBadGateway)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u, nil)
	if err != nil {
		http.Error(w, "bad upstream request", http.StatusBadGateway)
		return
	}
	if rg := r.Header.Get("Range"); rg != "" {
		req.Header.Set("Range", rg)
	}
	p.mu.Lock()
	etag := p.etag
	p.mu.Unlock()
	if etag != "" {
		req.Header.Set("If-Match", etag)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		// The error names the presigned URL: never pass it on.
		http.Error(w, "upstream request failed", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent {
		total := totalSize(resp)
		p.mu.Lock()
		if p.size < 0 {
			p.size = total // the first response; expect checks it against the HEAD
		}
		same := total < 0 || total == p.size
		if sha := resp.Header.Get(shaHeader); !p.shaKnown {
			p.sha, p.shaKnown = sha, true
		} else if sha != p.sha {
			same = false
		}
		if same && p.etag == "" {
			p.etag = resp.Header.Get("ETag")
		}
		p.mu.Unlock()
		if !same {
			http.Error(w, "object changed", http.StatusPreconditionFailed)
			return
		}
	}
	for _, h := range forwarded {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodGet {
		_, _ = io.Copy(w, resp.Body)
	}
}

// totalSize is the object's full size as a 200 or 206 response gives it,
// or -1 when it does not say.
func totalSize(resp *http.Response) int64 {
	if resp.StatusCode == http.StatusPartialContent {
		cr := resp.Header.Get("Content-Range")
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			if n, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
				return n
			}
		}
		return -1
	}
	return resp.ContentLength
}
