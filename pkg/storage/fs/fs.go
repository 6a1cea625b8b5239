// Package fs is the embedded object store: a directory is a bucket. Writes
// are atomic (temp + fsync + rename) and, like S3, committed writes fire
// bucket-notification rules that put S3 event JSON on a queue.
package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/hevc-encoder/hevc-encoder/pkg/events"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// Reserved top-level directories: object metadata and in-progress writes.
const (
	metaDir = ".meta"
	tmpDir  = ".tmp"
)

// Rule is a bucket-notification rule: ObjectCreated on keys with Prefix and
// Suffix goes to Queue as S3 event JSON.
type Rule struct {
	Prefix, Suffix string
	Queue          queue.Queue
}

// Store is a directory-backed bucket.
type Store struct {
	root, bucket string
	mu           sync.RWMutex
	rules        []Rule
}

var _ storage.Store = (*Store)(nil)

// New opens (creating) the bucket directory root; bucket is its name in
// events.
func New(root, bucket string) (*Store, error) {
	for _, d := range []string{root, filepath.Join(root, metaDir), filepath.Join(root, tmpDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create bucket directory %s: %w", d, err)
		}
	}
	return &Store{root: root, bucket: bucket}, nil
}

// Notify adds a bucket-notification rule.
func (s *Store) Notify(r Rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = append(s.rules, r)
}

// Bucket implements storage.Store.
func (s *Store) Bucket() string { return s.bucket }

func (s *Store) paths(key string) (data, meta string, err error) {
	if err := library.CheckRel(key); err != nil {
		return "", "", fmt.Errorf("key %q: %w", key, err)
	}
	if first, _, _ := strings.Cut(key, "/"); first == metaDir || first == tmpDir {
		return "", "", fmt.Errorf("key %q: %w: reserved prefix", key, library.ErrUnsafe)
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), filepath.Join(s.root, metaDir, filepath.FromSlash(key)+".json"), nil
}

type metaFile struct {
	SHA256   string            `json:"sha256"`
	Size     int64             `json:"size"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Put implements storage.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) (storage.Object, error) {
	data, meta, err := s.paths(key)
	if err != nil {
		return storage.Object{}, err
	}
	tmp, err := os.CreateTemp(filepath.Join(s.root, tmpDir), "put-*")
	if err != nil {
		return storage.Object{}, fmt.Errorf("put %s: %w", key, err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, r})
	if err != nil {
		return storage.Object{}, fmt.Errorf("put %s: write: %w", key, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if opts.SHA256 != "" && !strings.EqualFold(opts.SHA256, sum) {
		return storage.Object{}, fmt.Errorf("put %s: %w: got %s, want %s", key, storage.ErrChecksum, sum, opts.SHA256)
	}
	if err := tmp.Sync(); err != nil {
		return storage.Object{}, fmt.Errorf("put %s: fsync: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return storage.Object{}, fmt.Errorf("put %s: close: %w", key, err)
	}
	md := map[string]string{}
	for k, v := range opts.Metadata {
		md[strings.ToLower(k)] = v
	}
	md[storage.MetaSHA256] = sum
	mb, _ := json.Marshal(metaFile{SHA256: sum, Size: n, Metadata: md})
	if err := writeAtomic(filepath.Join(s.root, tmpDir), meta, mb); err != nil {
		return storage.Object{}, fmt.Errorf("put %s: metadata: %w", key, err)
	}
	if err := os.MkdirAll(filepath.Dir(data), 0o755); err != nil {
		return storage.Object{}, fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), data); err != nil {
		return storage.Object{}, fmt.Errorf("put %s: commit: %w", key, err)
	}
	committed = true
	if err := library.SyncDir(filepath.Dir(data)); err != nil {
		return storage.Object{}, fmt.Errorf("put %s: %w", key, err)
	}
	obj, err := s.Head(ctx, key)
	if err != nil {
		return storage.Object{}, err
	}
	s.notify(ctx, obj)
	return obj, nil
}

func (s *Store) notify(ctx context.Context, o storage.Object) {
	s.mu.RLock()
	rules := append([]Rule(nil), s.rules...)
	s.mu.RUnlock()
	for _, r := range rules {
		if strings.HasPrefix(o.Key, r.Prefix) && strings.HasSuffix(o.Key, r.Suffix) {
			// Like S3, a lost notification does not fail the write; the
			// consumers reconcile by listing.
			_ = r.Queue.Send(context.WithoutCancel(ctx), events.Created(s.bucket, o.Key, o.Size, "ObjectCreated:Put"))
		}
	}
}

func writeAtomic(tmpdir, dst string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(tmpdir, "meta-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// Get implements storage.Store; the reader verifies the recorded SHA-256.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, storage.Object, error) {
	obj, err := s.Head(ctx, key)
	if err != nil {
		return nil, storage.Object{}, err
	}
	data, _, _ := s.paths(key)
	f, err := os.Open(data)
	if err != nil {
		return nil, storage.Object{}, fmt.Errorf("get %s: %w", key, notFound(err))
	}
	return storage.VerifyingReader(f, key, obj.SHA256), obj, nil
}

func notFound(err error) error {
	if errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("%w: %v", storage.ErrNotFound, err)
	}
	return err
}

// Head implements storage.Store.
func (s *Store) Head(_ context.Context, key string) (storage.Object, error) {
	data, meta, err := s.paths(key)
	if err != nil {
		return storage.Object{}, err
	}
	st, err := os.Stat(data)
	if err != nil || !st.Mode().IsRegular() {
		if err == nil {
			err = iofs.ErrNotExist
		}
		return storage.Object{}, fmt.Errorf("head %s: %w", key, notFound(err))
	}
	obj := storage.Object{Key: key, Size: st.Size(), Modified: st.ModTime()}
	if b, err := os.ReadFile(meta); err == nil {
		var m metaFile
		// A metadata file that does not match the data (object replaced by
		// hand) is ignored rather than trusted.
		if json.Unmarshal(b, &m) == nil && m.Size == st.Size() {
			obj.SHA256, obj.Metadata = m.SHA256, m.Metadata
		}
	}
	return obj, nil
}

// List implements storage.Store. The token is the last key of the previous
// page (S3's StartAfter).
func (s *Store) List(ctx context.Context, prefix, token string, max int) (storage.ListPage, error) {
	if max <= 0 {
		max = 1000
	}
	var keys []string
	// Walk only the directory the prefix lives in.
	base := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		base = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	err := filepath.WalkDir(base, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, iofs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(s.root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == metaDir || rel == tmpDir {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(rel, prefix) && rel > token {
			keys = append(keys, rel)
		}
		return ctx.Err()
	})
	if err != nil {
		return storage.ListPage{}, fmt.Errorf("list %s: %w", prefix, err)
	}
	sort.Strings(keys)
	var page storage.ListPage
	if len(keys) > max {
		keys = keys[:max]
		page.Next = keys[max-1]
	}
	for _, k := range keys {
		o, err := s.Head(ctx, k)
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted while listing
		}
		if err != nil {
			return storage.ListPage{}, err
		}
		page.Objects = append(page.Objects, o)
	}
	return page, nil
}

// Delete implements storage.Store.
func (s *Store) Delete(_ context.Context, key string) error {
	data, meta, err := s.paths(key)
	if err != nil {
		return err
	}
	if err := os.Remove(data); errors.Is(err, iofs.ErrNotExist) {
		os.Remove(meta)
		return nil // S3: deleting a missing key succeeds
	} else if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := os.Remove(meta); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("delete %s metadata: %w", key, err)
	}
	// Drop now-empty parent directories, as S3 has no directories.
	dir := filepath.Dir(data)
	for dir != s.root && strings.HasPrefix(dir, s.root) && os.Remove(dir) == nil {
		dir = filepath.Dir(dir)
	}
	for {
		err := library.SyncDir(dir)
		if err == nil || !errors.Is(err, iofs.ErrNotExist) || dir == s.root || !strings.HasPrefix(dir, s.root) {
			return err
		}
		// A concurrent Delete emptied and removed dir meanwhile; the
		// removal is recorded in its parent.
		dir = filepath.Dir(dir)
	}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
