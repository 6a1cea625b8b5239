package syncer

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/studio-b12/gowebdav"
)

// DAVPrefix is where Nextcloud serves a user's files.
const DAVPrefix = "/remote.php/dav/files/"

// ErrAuth is returned (wrapped) when the server rejects the credentials.
var ErrAuth = errors.New("authentication failed")

// ErrNotFound is returned (wrapped) for a 404.
var ErrNotFound = errors.New("not found")

// ErrPrecondition is returned (wrapped) when a conditional request fails
// (the resource changed since it was listed).
var ErrPrecondition = errors.New("remote changed (precondition failed)")

// ErrNoCondition means a remote file could not be deleted safely: the
// server gives nothing to make the DELETE conditional on.
var ErrNoCondition = errors.New("no condition for a safe delete")

// StatusError is an unexpected HTTP status.
type StatusError struct {
	Op, Path string
	Code     int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d %s", e.Op, e.Path, e.Code, http.StatusText(e.Code))
}

// Entry is one file or folder from a PROPFIND.
type Entry struct {
	Name      string // last path segment
	Dir       bool
	Size      int64 // -1 when the server did not say
	ModTime   time.Time
	ETag      string
	Checksums []Checksum // from oc:checksums, when offered
}

// dav talks to one user's WebDAV root. GET goes through gowebdav (a plain
// streamed body); PROPFIND and DELETE are issued directly because they need
// Nextcloud's oc:checksums property, a context and If-Match, which
// gowebdav does not expose.
type dav struct {
	user, pass string
	base       *url.URL // …/remote.php/dav/files/<user>/ (unescaped Path)
	hc         *http.Client
	gw         *gowebdav.Client
}

func newDAV(baseURL, user, pass string, rt http.RoundTripper) (*dav, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("NC_URL %q is not an absolute URL", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/") + DAVPrefix + user + "/"
	u.RawPath = ""
	root := u.Scheme + "://" + u.Host + u.Path
	gw := gowebdav.NewAuthClient(root, gowebdav.NewPreemptiveAuth(&basicAuth{user: user, pass: pass}))
	gw.SetTransport(rt)
	return &dav{user: user, pass: pass, base: u, hc: &http.Client{Transport: rt}, gw: gw}, nil
}

// basicAuth is a preemptive gowebdav Authenticator (gowebdav's own
// BasicAuth cannot be constructed outside the package, and its auto
// negotiation costs one 401 round trip).
type basicAuth struct{ user, pass string }

func (b *basicAuth) Authorize(_ *http.Client, rq *http.Request, _ string) error {
	rq.SetBasicAuth(b.user, b.pass)
	return nil
}

func (b *basicAuth) Verify(_ *http.Client, rs *http.Response, p string) (bool, error) {
	if rs.StatusCode == http.StatusUnauthorized {
		return false, fmt.Errorf("%w: HTTP %d for %s", ErrAuth, rs.StatusCode, p)
	}
	return false, nil
}

func (b *basicAuth) Clone() gowebdav.Authenticator { return b }
func (b *basicAuth) Close() error                  { return nil }

// String never shows the password.
func (b *basicAuth) String() string { return "basic auth for " + b.user }

func (d *dav) url(rel string) *url.URL {
	u := *d.base
	u.Path = path.Join(d.base.Path, rel)
	if rel == "" || strings.HasSuffix(rel, "/") {
		u.Path += "/"
	}
	return &u
}

func (d *dav) do(ctx context.Context, method, rel string, body io.Reader, hdr map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, d.url(rel).String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, rel, err)
	}
	req.SetBasicAuth(d.user, d.pass)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, rel, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		drain(resp)
		return nil, fmt.Errorf("%w: user %s: HTTP 401 for %s %s (check NC_PASS_%s)", ErrAuth, d.user, method, rel, d.user)
	}
	return resp, nil
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

const propfindBody = `<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">
  <d:prop>
    <d:resourcetype/>
    <d:getcontentlength/>
    <d:getlastmodified/>
    <d:getetag/>
    <oc:checksums/>
  </d:prop>
</d:propfind>`

type xmlResponse struct {
	Href     string `xml:"DAV: href"`
	Propstat []struct {
		Status string `xml:"DAV: status"`
		Prop   struct {
			Collection *struct{} `xml:"DAV: resourcetype>collection"`
			Length     string    `xml:"DAV: getcontentlength"`
			Modified   string    `xml:"DAV: getlastmodified"`
			ETag       string    `xml:"DAV: getetag"`
			Checksums  []string  `xml:"http://owncloud.org/ns checksums>checksum"`
		} `xml:"DAV: prop"`
	} `xml:"DAV: propstat"`
}

// propfind lists rel (depth "1": the folder's children; "0": rel itself).
// The response is decoded one <response> at a time.
func (d *dav) propfind(ctx context.Context, rel, depth string) (self *Entry, children []Entry, err error) {
	resp, err := d.do(ctx, "PROPFIND", rel, strings.NewReader(propfindBody), map[string]string{
		"Depth": depth, "Content-Type": "application/xml; charset=utf-8",
	})
	if err != nil {
		return nil, nil, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusMultiStatus:
	case http.StatusNotFound:
		return nil, nil, fmt.Errorf("PROPFIND %s: %w", rel, ErrNotFound)
	default:
		return nil, nil, &StatusError{Op: "PROPFIND", Path: rel, Code: resp.StatusCode}
	}
	reqPath := path.Clean(d.url(rel).Path)
	dec := xml.NewDecoder(resp.Body)
	first := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("PROPFIND %s: read response: %w", rel, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "response" || se.Name.Space != "DAV:" {
			continue
		}
		var r xmlResponse
		if err := dec.DecodeElement(&r, &se); err != nil {
			return nil, nil, fmt.Errorf("PROPFIND %s: decode response: %w", rel, err)
		}
		e, hrefPath, ok := toEntry(&r)
		isFirst := first
		first = false
		if !ok {
			continue
		}
		if path.Clean(hrefPath) == reqPath || (isFirst && depth == "1" && e.Dir) {
			s := e
			self = &s
			continue
		}
		if e.Name == "" || e.Name == "." || e.Name == ".." || strings.ContainsAny(e.Name, "/\x00") {
			return nil, nil, fmt.Errorf("PROPFIND %s: unusable name in href %q", rel, r.Href)
		}
		children = append(children, e)
	}
	if depth == "0" && self == nil {
		return nil, nil, fmt.Errorf("PROPFIND %s: %w (no entry in the answer)", rel, ErrNotFound)
	}
	return self, children, nil
}

func toEntry(r *xmlResponse) (Entry, string, bool) {
	hu, err := url.Parse(r.Href)
	if err != nil {
		return Entry{}, "", false
	}
	p := hu.Path
	e := Entry{Name: path.Base(strings.TrimRight(p, "/")), Size: -1}
	found := false
	for _, ps := range r.Propstat {
		if !strings.Contains(ps.Status, " 200") {
			continue
		}
		found = true
		pr := ps.Prop
		if pr.Collection != nil {
			e.Dir = true
		}
		if pr.Length != "" {
			if n, err := strconv.ParseInt(strings.TrimSpace(pr.Length), 10, 64); err == nil {
				e.Size = n
			}
		}
		if pr.Modified != "" {
			if t, err := http.ParseTime(strings.TrimSpace(pr.Modified)); err == nil {
				e.ModTime = t
			}
		}
		if pr.ETag != "" {
			e.ETag = strings.TrimSpace(pr.ETag)
		}
		for _, c := range pr.Checksums {
			e.Checksums = append(e.Checksums, ParseChecksums(c)...)
		}
	}
	return e, p, found
}

// List returns the children of folder rel.
func (d *dav) List(ctx context.Context, rel string) ([]Entry, error) {
	_, ch, err := d.propfind(ctx, rel+"/", "1")
	return ch, err
}

// Stat returns rel's properties.
func (d *dav) Stat(ctx context.Context, rel string) (Entry, error) {
	e, _, err := d.propfind(ctx, rel, "0")
	if err != nil {
		return Entry{}, err
	}
	return *e, nil
}

// Open streams rel's body (gowebdav ReadStream hands back the response body
// unbuffered). The body is closed when ctx ends or when no byte arrives for
// stall.
func (d *dav) Open(ctx context.Context, rel string, stall time.Duration) (io.ReadCloser, error) {
	rc, err := d.gw.ReadStream(rel)
	if err != nil {
		var se gowebdav.StatusError
		switch {
		case errors.Is(err, ErrAuth):
			return nil, fmt.Errorf("GET %s: %w", rel, err)
		case gowebdav.IsErrNotFound(err):
			return nil, fmt.Errorf("GET %s: %w", rel, ErrNotFound)
		case errors.As(err, &se):
			return nil, &StatusError{Op: "GET", Path: rel, Code: se.Status}
		}
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("GET %s: %w", rel, err)
	}
	return newWatchedBody(ctx, rc, stall), nil
}

// Delete removes rel only if its ETag is still etag (If-Match; Nextcloud
// honours it, so a file changed after it was copied is not deleted). A 404
// counts as deleted.
func (d *dav) Delete(ctx context.Context, rel, etag string) error {
	hdr := map[string]string{}
	if etag != "" {
		hdr["If-Match"] = etag
	}
	return d.deleteWith(ctx, rel, hdr)
}

// deleteWith sends DELETE with the given conditional headers.
func (d *dav) deleteWith(ctx context.Context, rel string, hdr map[string]string) error {
	resp, err := d.do(ctx, "DELETE", rel, nil, hdr)
	if err != nil {
		return err
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent, http.StatusNotFound:
		return nil
	case http.StatusPreconditionFailed:
		return fmt.Errorf("DELETE %s: %w", rel, ErrPrecondition)
	}
	return &StatusError{Op: "DELETE", Path: rel, Code: resp.StatusCode}
}

// DeleteIfUnmodified deletes rel on condition that it has not changed since
// it was listed as e: If-Match on its ETag or, from servers that send
// none, If-Unmodified-Since on its mtime (RFC 9110; SabreDAV honours it),
// after a fresh look at its size and mtime. Without an ETag or an mtime
// to make the DELETE conditional, nothing is deleted: an unconditional
// DELETE would take a version saved after the copy was made.
func (d *dav) DeleteIfUnmodified(ctx context.Context, rel string, e Entry) error {
	if e.ETag != "" {
		return d.Delete(ctx, rel, e.ETag)
	}
	now, err := d.Stat(ctx, rel)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if changed(e, now) {
		return fmt.Errorf("DELETE %s: %w: listed %s, now %s", rel, ErrPrecondition, describe(e), describe(now))
	}
	if now.ETag != "" {
		return d.Delete(ctx, rel, now.ETag)
	}
	if e.ModTime.IsZero() {
		return fmt.Errorf("DELETE %s: %w: the server sends neither an ETag nor a modification time, so the delete cannot be made conditional; the file stays on the server", rel, ErrNoCondition)
	}
	return d.deleteWith(ctx, rel, map[string]string{"If-Unmodified-Since": e.ModTime.UTC().Format(http.TimeFormat)})
}

// watchedBody closes the underlying body when ctx ends or reads stall.
type watchedBody struct {
	ctx     context.Context
	rc      io.ReadCloser
	stop    func() bool
	timer   *time.Timer
	stall   time.Duration
	stalled atomic.Bool
}

func newWatchedBody(ctx context.Context, rc io.ReadCloser, stall time.Duration) *watchedBody {
	w := &watchedBody{ctx: ctx, rc: rc, stall: stall}
	w.stop = context.AfterFunc(ctx, func() { rc.Close() })
	if stall > 0 {
		w.timer = time.AfterFunc(stall, func() { w.stalled.Store(true); rc.Close() })
	}
	return w
}

func (w *watchedBody) Read(p []byte) (int, error) {
	n, err := w.rc.Read(p)
	if w.timer != nil && n > 0 {
		w.timer.Reset(w.stall)
	}
	if err != nil && err != io.EOF {
		if cerr := w.ctx.Err(); cerr != nil {
			return n, cerr
		}
		if w.stalled.Load() {
			return n, fmt.Errorf("no data for %s: %w", w.stall, err)
		}
	}
	return n, err
}

func (w *watchedBody) Close() error {
	w.stop()
	if w.timer != nil {
		w.timer.Stop()
	}
	return w.rc.Close()
}
