// Package davtest runs WebDAV servers laid out like Nextcloud for tests and
// benchmarks: golang.org/x/net/webdav mounted at
// /remote.php/dav/files/<user>/ with per-user basic auth, Nextcloud's
// oc:checksums property, If-Match on DELETE, and injectable faults; and
// `rclone serve webdav` as a second implementation.
package davtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/webdav"
)

// Prefix is Nextcloud's per-user WebDAV root.
const Prefix = "/remote.php/dav/files/"

// OCNamespace is ownCloud/Nextcloud's property namespace.
const OCNamespace = "http://owncloud.org/ns"

// Fault changes how matching requests are answered.
type Fault struct {
	Method string // "GET", "DELETE", "PROPFIND", …; "" matches any
	User   string // "" matches any
	Path   string // suffix of the path under the user's root; "" matches any
	Times  int    // requests to affect; 0 or less: every matching request

	Status int    // answer this status without serving
	Drop   bool   // serve After body bytes, then drop the connection
	Lose   bool   // carry the request out, then drop the connection unanswered
	After  int64  // for Drop and Hook: body bytes sent first
	Hook   func() // run before serving (After == 0) or once After body bytes were sent

	hits int
}

// Server is a Nextcloud-like WebDAV server on a local port.
type Server struct {
	Root string // files of user u are under Root/u
	URL  string // base URL (NC_URL)
	// NoETags makes the server send no ETags (no getetag property, no ETag
	// header), like some WebDAV servers; it still honours
	// If-Unmodified-Since on DELETE, as SabreDAV does.
	NoETags bool

	srv       *httptest.Server
	mu        sync.Mutex
	users     map[string]string
	handlers  map[string]*webdav.Handler
	checksums map[string]string // user/rel → "SHA1:… MD5:…"
	faults    []*Fault
	counts    map[string]int // method → requests
}

// New starts a server over root (created if needed) with users (name →
// password).
func New(root string, users map[string]string) (*Server, error) {
	s := &Server{Root: root, users: map[string]string{}, handlers: map[string]*webdav.Handler{},
		checksums: map[string]string{}, counts: map[string]int{}}
	for u, p := range users {
		if err := s.AddUser(u, p); err != nil {
			return nil, err
		}
	}
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.CloseClientConnections(); s.srv.Close() }

// AddUser adds (or re-keys) a user and creates its root folder.
func (s *Server) AddUser(user, pass string) error {
	if err := os.MkdirAll(filepath.Join(s.Root, user), 0o755); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[user] = pass
	s.handlers[user] = &webdav.Handler{
		Prefix:     Prefix + user,
		FileSystem: &csFS{Dir: webdav.Dir(filepath.Join(s.Root, user)), s: s, user: user},
		LockSystem: webdav.NewMemLS(),
	}
	return nil
}

// Path is the local path of a user's file.
func (s *Server) Path(user, rel string) string {
	return filepath.Join(s.Root, user, filepath.FromSlash(rel))
}

// WriteFile creates a user's file (and parents) with mtime.
func (s *Server) WriteFile(user, rel string, data []byte, mtime time.Time) error {
	p := s.Path(user, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return err
	}
	if !mtime.IsZero() {
		return os.Chtimes(p, mtime, mtime)
	}
	return nil
}

// SetChecksum sets the oc:checksums value of a file ("" removes it), e.g.
// "SHA1:da39a3ee5e6b4b0d3255bfef95601890afd80709".
func (s *Server) SetChecksum(user, rel, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := user + "/" + strings.Trim(rel, "/")
	if value == "" {
		delete(s.checksums, k)
		return
	}
	s.checksums[k] = value
}

func (s *Server) checksum(user, rel string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checksums[user+"/"+strings.Trim(rel, "/")]
}

// AddFault installs a fault.
func (s *Server) AddFault(f *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Count is the number of requests seen with method.
func (s *Server) Count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[method]
}

// Files maps every regular file under the user's folder rel to its sha256.
func (s *Server) Files(user, rel string) (map[string]string, error) {
	return HashTree(s.Path(user, rel))
}

// HashTree maps every regular file under dir ('/'-separated paths relative
// to dir) to its hex sha256; a missing dir is empty.
func HashTree(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == dir {
				return filepath.SkipDir
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		sum := sha256.Sum256(b)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	return out, err
}

func (s *Server) fault(method, user, rel string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[method]++
	for _, f := range s.faults {
		if (f.Method == "" || f.Method == method) && (f.User == "" || f.User == user) &&
			(f.Path == "" || strings.HasSuffix(strings.TrimRight(rel, "/"), strings.TrimRight(f.Path, "/"))) &&
			(f.Times <= 0 || f.hits < f.Times) {
			f.hits++
			return f
		}
	}
	return nil
}

// ServeHTTP routes /remote.php/dav/files/<user>/… to that user's handler
// after basic auth, like Nextcloud.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	user, rel, _ := strings.Cut(rest, "/")
	s.mu.Lock()
	pass, known := s.users[user]
	h := s.handlers[user]
	s.mu.Unlock()
	u, p, ok := r.BasicAuth()
	if !known || !ok || u != user || p != pass {
		w.Header().Set("WWW-Authenticate", `Basic realm="Nextcloud", charset="UTF-8"`)
		http.Error(w, "not authenticated", http.StatusUnauthorized)
		return
	}
	f := s.fault(r.Method, user, rel)
	if f != nil {
		switch {
		case f.Status != 0:
			http.Error(w, http.StatusText(f.Status), f.Status)
			return
		case f.Drop && f.After == 0:
			panic(http.ErrAbortHandler)
		case f.Lose:
			w = &lostWriter{header: http.Header{}}
			defer func() { panic(http.ErrAbortHandler) }()
		case f.Drop || (f.Hook != nil && f.After > 0):
			w = &faultWriter{ResponseWriter: w, f: f}
		case f.Hook != nil:
			f.Hook()
		}
	}
	if r.Method == http.MethodDelete {
		if !s.ifMatch(w, r, user, rel) || !s.ifUnmodifiedSince(w, r, user, rel) {
			return
		}
		defer s.forget(user, rel)
	}
	s.mu.Lock()
	noETags := s.NoETags
	s.mu.Unlock()
	if noETags {
		s.serveWithoutETags(h, w, r)
		return
	}
	h.ServeHTTP(w, r)
}

var getetagRE = regexp.MustCompile(`<[A-Za-z0-9]*:?getetag(?: [^>]*)?>[^<]*</[A-Za-z0-9]*:?getetag>|<[A-Za-z0-9]*:?getetag/>`)

// serveWithoutETags serves r with every ETag taken out.
func (s *Server) serveWithoutETags(h http.Handler, w http.ResponseWriter, r *http.Request) {
	if r.Method != "PROPFIND" {
		h.ServeHTTP(&noETagWriter{ResponseWriter: w}, r)
		return
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	body := getetagRE.ReplaceAll(rec.Body.Bytes(), nil)
	for k, v := range rec.Header() {
		if k != "Etag" && k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(rec.Code)
	w.Write(body)
}

type noETagWriter struct{ http.ResponseWriter }

func (w *noETagWriter) WriteHeader(code int) {
	w.Header().Del("Etag")
	w.ResponseWriter.WriteHeader(code)
}

func (w *noETagWriter) Write(p []byte) (int, error) {
	w.Header().Del("Etag")
	return w.ResponseWriter.Write(p)
}

// ifUnmodifiedSince answers 412 when the resource changed after the
// If-Unmodified-Since date (whole seconds, as HTTP dates go).
func (s *Server) ifUnmodifiedSince(w http.ResponseWriter, r *http.Request, user, rel string) bool {
	v := r.Header.Get("If-Unmodified-Since")
	if v == "" {
		return true
	}
	since, err := http.ParseTime(v)
	fi, serr := os.Stat(s.Path(user, rel))
	if err == nil && (serr != nil || !fi.ModTime().Truncate(time.Second).After(since)) {
		return true
	}
	http.Error(w, "precondition failed", http.StatusPreconditionFailed)
	return false
}

// ifMatch answers 412 when If-Match names another ETag than the resource
// has (Nextcloud/SabreDAV do this; x/net/webdav ignores If-Match).
func (s *Server) ifMatch(w http.ResponseWriter, r *http.Request, user, rel string) bool {
	im := r.Header.Get("If-Match")
	if im == "" || im == "*" {
		return true
	}
	fi, err := os.Stat(s.Path(user, rel))
	if err == nil {
		for _, tag := range strings.Split(im, ",") {
			if strings.TrimSpace(tag) == ETag(fi) {
				return true
			}
		}
	}
	http.Error(w, "precondition failed", http.StatusPreconditionFailed)
	return false
}

func (s *Server) forget(user, rel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := user + "/" + strings.Trim(rel, "/")
	for c := range s.checksums {
		if c == k || strings.HasPrefix(c, k+"/") {
			if _, err := os.Stat(s.Path(user, strings.TrimPrefix(c, user+"/"))); os.IsNotExist(err) {
				delete(s.checksums, c)
			}
		}
	}
}

// ETag is the ETag x/net/webdav reports for fi.
func ETag(fi os.FileInfo) string {
	return fmt.Sprintf(`"%x%x"`, fi.ModTime().UnixNano(), fi.Size())
}

// faultWriter drops the connection or runs a hook after f.After bytes.
type faultWriter struct {
	http.ResponseWriter
	f    *Fault
	n    int64
	done bool
}

func (w *faultWriter) Write(p []byte) (int, error) {
	if w.done || w.n+int64(len(p)) <= w.f.After {
		w.n += int64(len(p))
		return w.ResponseWriter.Write(p)
	}
	k := w.f.After - w.n
	if k > 0 {
		if _, err := w.ResponseWriter.Write(p[:k]); err != nil {
			return 0, err
		}
	}
	w.n += k
	if fl, ok := w.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
	if w.f.Drop {
		panic(http.ErrAbortHandler) // net/http closes the connection
	}
	w.done = true
	w.f.Hook()
	n, err := w.ResponseWriter.Write(p[k:])
	w.n += int64(n)
	return int(k) + n, err
}

// lostWriter swallows the answer.
type lostWriter struct{ header http.Header }

func (w *lostWriter) Header() http.Header         { return w.header }
func (w *lostWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *lostWriter) WriteHeader(int)             {}

// csFS adds the oc:checksums dead property to webdav.Dir files.
type csFS struct {
	webdav.Dir
	s    *Server
	user string
}

func (c *csFS) OpenFile(ctx context.Context, name string, flag int, perm os.FileMode) (webdav.File, error) {
	f, err := c.Dir.OpenFile(ctx, name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &csFile{File: f, fs: c, name: path.Clean("/" + name)}, nil
}

type csFile struct {
	webdav.File
	fs   *csFS
	name string
}

var checksumsName = xml.Name{Space: OCNamespace, Local: "checksums"}

var getetagName = xml.Name{Space: "DAV:", Local: "getetag"}

func (f *csFile) DeadProps() (map[xml.Name]webdav.Property, error) {
	props := map[xml.Name]webdav.Property{}
	// Folders have ETags on Nextcloud (x/net/webdav reports none): one
	// that changes when the folder's entries do, as its mtime does.
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		var tag strings.Builder
		xml.EscapeText(&tag, []byte(ETag(fi)))
		props[getetagName] = webdav.Property{XMLName: getetagName, InnerXML: []byte(tag.String())}
	}
	if v := f.fs.s.checksum(f.fs.user, f.name); v != "" {
		var inner strings.Builder
		inner.WriteString(`<checksum xmlns="` + OCNamespace + `">`)
		xml.EscapeText(&inner, []byte(v))
		inner.WriteString(`</checksum>`)
		props[checksumsName] = webdav.Property{XMLName: checksumsName, InnerXML: []byte(inner.String())}
	}
	return props, nil
}

func (f *csFile) Patch(p []webdav.Proppatch) ([]webdav.Propstat, error) {
	ps := webdav.Propstat{Status: http.StatusForbidden}
	for _, x := range p {
		ps.Props = append(ps.Props, x.Props...)
	}
	return []webdav.Propstat{ps}, nil
}
