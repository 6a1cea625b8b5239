package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
	"github.com/hevc-encoder/hevc-encoder/pkg/events"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	s3store "github.com/hevc-encoder/hevc-encoder/pkg/storage/s3"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage/storagetest"
)

func TestMain(m *testing.M) { awstest.Main(m) }

const mib = 1 << 20

var ctx = context.Background()

func randBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	_, _ = r.Read(b)
	return b
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// smallParts is a store with 5 MiB parts (S3's minimum) and the given
// concurrency, on a scratch bucket.
func smallParts(t *testing.T, env *awstest.Env, bucket string, conc int) *s3store.Store {
	t.Helper()
	cfg := env.StoreConfig(bucket)
	cfg.PartSize, cfg.Concurrency = 5*mib, conc
	s, err := s3store.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readAll(t *testing.T, s storage.Store, key string) ([]byte, storage.Object, error) {
	t.Helper()
	r, obj, err := s.Get(ctx, key)
	if err != nil {
		return nil, obj, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return b, obj, err
}

// tamper overwrites key's bytes through the S3 API, keeping its metadata
// (and so its recorded sha256).
func tamper(t *testing.T, env *awstest.Env, bucket, key string, data []byte) {
	t.Helper()
	head, err := env.S3.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.S3.PutObject(ctx, &awss3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(data), Metadata: head.Metadata})
	if err != nil {
		t.Fatal(err)
	}
}

func TestContract(t *testing.T) {
	env := awstest.Shared(t)
	buckets := map[*testing.T]string{}
	storagetest.Run(t, func(t *testing.T) storage.Store {
		s := env.NewScratchStore(t)
		buckets[t] = s.Bucket()
		return s
	}, storagetest.Options{
		ManyKeys: 1005,
		Tamper: func(t *testing.T, key string, data []byte) {
			tamper(t, env, buckets[t], key, data)
		},
	})
}

func TestMultipartRoundTrip(t *testing.T) {
	env := awstest.Shared(t)
	bucket := env.ScratchBucket(t)
	s := smallParts(t, env, bucket, 3)
	for i, size := range []int{5 * mib, 5*mib + 1, 15 * mib, 17*mib + 12345} {
		data := randBytes(size, uint64(i))
		key := fmt.Sprintf("DONE/size-%d-hevc.mp4", size)
		obj, err := s.Put(ctx, key, bytes.NewReader(data), storage.PutOptions{
			Size:     int64(size),
			SHA256:   sum(data),
			Metadata: map[string]string{storage.MetaSourceMtime: "2024-01-02T03:04:05Z", "source-name": "clip é\t1.mp4"},
		})
		if err != nil {
			t.Fatalf("put %d bytes: %v", size, err)
		}
		if obj.Size != int64(size) || obj.SHA256 != sum(data) {
			t.Fatalf("put returned %+v", obj)
		}
		// The server checked and kept our full-object CRC32C.
		head, err := env.S3.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &bucket, Key: &key, ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(head.ChecksumCRC32C) == "" {
			t.Errorf("%s: no CRC32C recorded by the server (type %q)", key, head.ChecksumType)
		}
		if head.Metadata[storage.MetaSHA256] != sum(data) || head.Metadata[storage.MetaSourceMtime] != "2024-01-02T03:04:05Z" {
			t.Errorf("%s: metadata %v", key, head.Metadata)
		}
		// Download through ranged parallel GETs with 2 buffers.
		got, gobj, err := readAll(t, smallParts(t, env, bucket, 2), key)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get %s: %v (%d of %d bytes, equal %v)", key, err, len(got), size, bytes.Equal(got, data))
		}
		if gobj.Size != int64(size) || gobj.SHA256 != sum(data) || gobj.Metadata["source-name"] != "clip é\t1.mp4" {
			t.Fatalf("get returned %+v", gobj)
		}
		// WriteTo path (io.Copy) too.
		r, _, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, r); err != nil || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("io.Copy %s: %v", key, err)
		}
		r.Close()
	}
	assertNoUploads(t, env, bucket)
}

func assertNoUploads(t *testing.T, env *awstest.Env, bucket string) {
	t.Helper()
	out, err := env.S3.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left open", len(out.Uploads))
	}
}

func TestMultipartChecksumMismatchAborts(t *testing.T) {
	env := awstest.Shared(t)
	bucket := env.ScratchBucket(t)
	s := smallParts(t, env, bucket, 2)
	data := randBytes(12*mib, 7)
	_, err := s.Put(ctx, "DONE/bad-hevc.mp4", bytes.NewReader(data), storage.PutOptions{SHA256: sum(data[1:])})
	if !errors.Is(err, storage.ErrChecksum) {
		t.Fatalf("want ErrChecksum, got %v", err)
	}
	if _, err := s.Head(ctx, "DONE/bad-hevc.mp4"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("object committed after mismatch: %v", err)
	}
	assertNoUploads(t, env, bucket)
}

func TestPutWithoutKnownSHA(t *testing.T) {
	env := awstest.Shared(t)
	bucket := env.ScratchBucket(t)
	s := smallParts(t, env, bucket, 2)
	data := randBytes(11*mib+3, 9)

	t.Run("SeekableFileIsHashedFirst", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "in.mp4")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		obj, err := s.Put(ctx, "TODO/file.mp4", f, storage.PutOptions{})
		if err != nil || obj.SHA256 != sum(data) {
			t.Fatalf("put: %v %+v", err, obj)
		}
		h, err := s.Head(ctx, "TODO/file.mp4")
		if err != nil || h.SHA256 != sum(data) || h.Size != int64(len(data)) {
			t.Fatalf("head: %v %+v", err, h)
		}
	})

	for _, tc := range []struct {
		name  string
		limit int64
	}{{"UnseekableIsStagedAndCopied", 0}, {"UnseekableMultipartCopy", 6 * mib}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.limit > 0 {
				defer s3store.SetCopyLimit(tc.limit)()
			}
			key := "TODO/" + tc.name + ".mp4"
			r := io.MultiReader(bytes.NewReader(data)) // hides Seek and Len
			obj, err := s.Put(ctx, key, r, storage.PutOptions{Metadata: map[string]string{storage.MetaSourceSize: "1"}})
			if err != nil || obj.SHA256 != sum(data) {
				t.Fatalf("put: %v %+v", err, obj)
			}
			got, gobj, err := readAll(t, s, key)
			if err != nil || !bytes.Equal(got, data) || gobj.SHA256 != sum(data) || gobj.Metadata[storage.MetaSourceSize] != "1" {
				t.Fatalf("get: %v %+v", err, gobj)
			}
			page, err := s.List(ctx, s3store.StagingPrefix, "", 0)
			if err != nil || len(page.Objects) != 0 {
				t.Fatalf("staging objects left: %v %+v", err, page.Objects)
			}
		})
	}
	assertNoUploads(t, env, bucket)
}

func TestGetDetectsTamperedMultipartObject(t *testing.T) {
	env := awstest.Shared(t)
	bucket := env.ScratchBucket(t)
	s := smallParts(t, env, bucket, 2)
	data := randBytes(13*mib, 11)
	if _, err := s.Put(ctx, "DONE/big-hevc.mp4", bytes.NewReader(data), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(data)
	bad[12*mib] ^= 1
	tamper(t, env, bucket, "DONE/big-hevc.mp4", bad)
	_, _, err := readAll(t, s, "DONE/big-hevc.mp4")
	if !errors.Is(err, storage.ErrChecksum) {
		t.Fatalf("want ErrChecksum, got %v", err)
	}
}

func TestGetVerifiesCRCOfForeignObjects(t *testing.T) {
	// Objects written by other tools (no sha256 metadata) are checked
	// against the server's full-object CRC32C.
	env := awstest.Shared(t)
	bucket := env.ScratchBucket(t)
	s := smallParts(t, env, bucket, 2)
	data := randBytes(7*mib, 12)
	key := "DONE/foreign-hevc.mp4"
	_, err := env.S3.PutObject(ctx, &awss3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(data), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
	if err != nil {
		t.Fatal(err)
	}
	got, obj, err := readAll(t, s, key)
	if err != nil || !bytes.Equal(got, data) || obj.SHA256 != "" {
		t.Fatalf("get: %v %+v", err, obj)
	}
}

func TestGetFailsWhenObjectChangesMidway(t *testing.T) {
	env := awstest.Shared(t)
	bucket := env.ScratchBucket(t)
	s := smallParts(t, env, bucket, 1) // one buffer: part 2 is requested after part 1 is read
	data := randBytes(11*mib, 13)
	if _, err := s.Put(ctx, "DONE/moving-hevc.mp4", bytes.NewReader(data), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	r, _, err := s.Get(ctx, "DONE/moving-hevc.mp4")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.ReadFull(r, make([]byte, 5*mib)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "DONE/moving-hevc.mp4", bytes.NewReader(randBytes(11*mib, 14)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r); err == nil || !strings.Contains(err.Error(), "changed during download") {
		t.Fatalf("want a changed-object error, got %v", err)
	}
}

func TestGetCloseEarly(t *testing.T) {
	env := awstest.Shared(t)
	s := smallParts(t, env, env.ScratchBucket(t), 3)
	if _, err := s.Put(ctx, "DONE/x-hevc.mp4", bytes.NewReader(randBytes(16*mib, 15)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	r, _, err := s.Get(ctx, "DONE/x-hevc.mp4")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 10)); err == nil {
		t.Fatal("read after close succeeded")
	}
}

func TestRetriesThrottlingAndServerErrors(t *testing.T) {
	env := awstest.Shared(t)
	bucket := env.ScratchBucket(t)
	proxy := awstest.NewFaultProxy(t, env.S3Endpoint)
	cfg := env.StoreConfig(bucket)
	cfg.Endpoint = proxy.URL
	cfg.PartSize, cfg.Concurrency = 5*mib, 2
	cfg.MaxAttempts = 4
	s, err := s3store.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Fail(1, awstest.InternalError, awstest.Match(http.MethodPost, "/", "uploads"))              // CreateMultipartUpload
	proxy.Fail(3, awstest.SlowDown, awstest.Match(http.MethodPut, "/", "partNumber", "uploadId"))     // UploadPart
	proxy.Fail(1, awstest.ServiceUnavailable, awstest.Match(http.MethodPost, "/", "uploadId"))        // Complete
	proxy.Fail(2, awstest.SlowDown, func(r *http.Request) bool { return r.Method == http.MethodGet }) // ranged GETs
	proxy.Fail(1, awstest.InternalError, awstest.Match(http.MethodHead, "/"))                         // Head

	data := randBytes(12*mib, 21)
	if _, err := s.Put(ctx, "DONE/retry-hevc.mp4", bytes.NewReader(data), storage.PutOptions{}); err != nil {
		t.Fatalf("put through faults: %v", err)
	}
	got, _, err := readAll(t, s, "DONE/retry-hevc.mp4")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get through faults: %v", err)
	}
	if _, err := s.Head(ctx, "DONE/retry-hevc.mp4"); err != nil {
		t.Fatalf("head through faults: %v", err)
	}
	if n := proxy.Injected(); n != 8 {
		t.Fatalf("injected %d faults, want 8", n)
	}

	// Faults beyond MaxAttempts surface as an error naming the key.
	proxy.Fail(10, awstest.SlowDown, awstest.Match(http.MethodHead, "/"))
	if _, err := s.Head(ctx, "DONE/retry-hevc.mp4"); err == nil || !strings.Contains(err.Error(), "retry-hevc") {
		t.Fatalf("want an error after %d attempts, got %v", cfg.MaxAttempts, err)
	}
}

type receiver interface {
	Receive(ctx context.Context, n int, wait time.Duration) ([]queue.Message, error)
	Delete(ctx context.Context, receipt string) error
}

func TestNotificationsReachSQS(t *testing.T) {
	env := awstest.Shared(t)
	s := env.NewStore(t)
	work := env.NewWorkQueue(t)
	results := env.NewResultsQueue(t)

	const todo = "TODO/a b/clip é.mp4"
	const done = "DONE/a b/clip é-hevc.mp4"
	for _, k := range []string{"TODO/notes.txt", todo, done} {
		if _, err := s.Put(ctx, k, strings.NewReader("data of "+k), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		q    receiver
		key  string
	}{{"work", work, todo}, {"results", results, done}} {
		found := false
		for i := 0; i < 10 && !found; i++ {
			msgs, err := tc.q.Receive(ctx, 10, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if !strings.Contains(m.Body, `"Records"`) {
					t.Fatalf("%s: body is not an S3 event: %s", tc.name, m.Body)
				}
				if tc.key == todo && !strings.Contains(m.Body, "TODO%2Fa+b%2Fclip+%C3%A9.mp4") && !strings.Contains(m.Body, "TODO/a+b/clip+%C3%A9.mp4") {
					t.Errorf("%s: key not URL-encoded as on AWS: %s", tc.name, m.Body)
				}
				recs, err := events.Parse(m.Body)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				for _, r := range recs {
					if r.Key == "TODO/notes.txt" {
						t.Errorf("TODO/notes.txt reached the %s queue", tc.name)
					}
					if r.Key == tc.key && r.Bucket == env.Bucket && events.IsObjectCreated(r.EventName) {
						found = true
					}
				}
				if err := tc.q.Delete(ctx, m.Receipt); err != nil {
					t.Fatal(err)
				}
			}
		}
		if !found {
			t.Fatalf("no ObjectCreated event for %q on the %s queue", tc.key, tc.name)
		}
	}
}

// hostRecorder records the host of every request and answers like a
// bucket without keys: 404 to a HEAD, an empty listing to a list.
type hostRecorder struct{ hosts []string }

func (h *hostRecorder) Do(r *http.Request) (*http.Response, error) {
	h.hosts = append(h.hosts, r.URL.Host)
	if r.URL.Query().Get("list-type") == "2" {
		body := `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>`
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
	}
	return &http.Response{StatusCode: 404, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

func TestEndpointOptions(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_CA_BUNDLE", "") // a bundle needs the SDK's own HTTP client
	for _, tc := range []struct {
		cfg  s3store.Config
		host string
	}{
		{s3store.Config{Bucket: "bkt", Region: "eu-west-1"}, "bkt.s3.eu-west-1.amazonaws.com"},
		{s3store.Config{Bucket: "bkt", Region: "eu-west-1", DualStack: true}, "bkt.s3.dualstack.eu-west-1.amazonaws.com"},
		{s3store.Config{Bucket: "b", Endpoint: "http://127.0.0.1:9", PathStyle: true}, "127.0.0.1:9"},
	} {
		rec := &hostRecorder{}
		tc.cfg.HTTPClient, tc.cfg.MaxAttempts = rec, 1
		s, err := s3store.New(ctx, tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Head(ctx, "k"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%+v: head: %v", tc.cfg, err)
		}
		// The HEAD, and the listing that tells a missing key from a
		// missing bucket.
		if len(rec.hosts) != 2 || rec.hosts[0] != tc.host || rec.hosts[1] != tc.host {
			t.Errorf("%+v: requests went to %v, want %s twice", tc.cfg, rec.hosts, tc.host)
		}
	}
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	if _, err := s3store.New(ctx, s3store.Config{Bucket: "b"}); err == nil || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Fatalf("no region: want an error naming AWS_REGION, got %v", err)
	}
	if _, err := s3store.New(ctx, s3store.Config{}); err == nil || !strings.Contains(err.Error(), "S3_BUCKET") {
		t.Fatalf("no bucket: want an error naming S3_BUCKET, got %v", err)
	}
}

// changingFile is a seekable source whose content changes after the first
// pass, like a library file rewritten while it uploads.
type changingFile struct {
	*bytes.Reader
	data  []byte
	seeks int
}

func (c *changingFile) Seek(off int64, whence int) (int64, error) {
	c.seeks++
	if c.seeks == 2 { // the rewind after the hashing pass
		c.data[len(c.data)-1] ^= 1
	}
	return c.Reader.Seek(off, whence)
}

func TestPutDetectsSourceChangingDuringUpload(t *testing.T) {
	env := awstest.Shared(t)
	bucket := env.ScratchBucket(t)
	s := smallParts(t, env, bucket, 2)
	data := randBytes(11*mib, 31)
	src := &changingFile{Reader: bytes.NewReader(data), data: data}
	_, err := s.Put(ctx, "TODO/changing.mp4", src, storage.PutOptions{})
	if !errors.Is(err, storage.ErrChecksum) || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("want ErrChecksum for a changing source, got %v", err)
	}
	if _, err := s.Head(ctx, "TODO/changing.mp4"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("object committed: %v", err)
	}
	assertNoUploads(t, env, bucket)
}

// TestPutWithCallersCRC: with the CRC32C the caller computed along with the
// SHA-256 (storage.SumFile), a matching stream is stored with that SHA-256
// and a different one is refused, nothing committed.
func TestPutWithCallersCRC(t *testing.T) {
	env := awstest.Shared(t)
	bucket := env.ScratchBucket(t)
	s := smallParts(t, env, bucket, 2)
	data := randBytes(12*mib, 41)
	p := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sums, err := storage.SumFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if sums.SHA256 != sum(data) || sums.Size != int64(len(data)) {
		t.Fatalf("SumFile %+v", sums)
	}
	opts := storage.PutOptions{SHA256: sums.SHA256, CRC32C: &sums.CRC32C, Size: sums.Size}
	obj, err := s.Put(ctx, "TODO/crc.mp4", bytes.NewReader(data), opts)
	if err != nil || obj.SHA256 != sums.SHA256 {
		t.Fatalf("put: %+v, %v", obj, err)
	}
	got, gobj, err := readAll(t, s, "TODO/crc.mp4")
	if err != nil || !bytes.Equal(got, data) || gobj.SHA256 != sums.SHA256 {
		t.Fatalf("read back: %d bytes, %+v, %v", len(got), gobj, err)
	}

	changed := append([]byte(nil), data...)
	changed[7*mib] ^= 1
	_, err = s.Put(ctx, "TODO/changed.mp4", bytes.NewReader(changed), opts)
	if !errors.Is(err, storage.ErrChecksum) {
		t.Fatalf("want ErrChecksum for a stream other than the hashed one, got %v", err)
	}
	if _, err := s.Head(ctx, "TODO/changed.mp4"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("object committed: %v", err)
	}
	assertNoUploads(t, env, bucket)
}

// memAt is an io.WriterAt in memory, safe for concurrent writers.
type memAt struct {
	mu     sync.Mutex
	b      []byte
	writes int
}

func (m *memAt) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	copy(m.b[off:], p)
	m.writes++
	return len(p), nil
}

type writerToAt interface {
	WriteToAt(w io.WriterAt) (int64, error)
}

// TestGetWriteToAt: the ranges of a multi-range object are written at
// their offsets (by the goroutines that fetched them) and checked in order;
// a tampered object fails with ErrChecksum.
func TestGetWriteToAt(t *testing.T) {
	env := awstest.Shared(t)
	bucket := env.ScratchBucket(t)
	s := smallParts(t, env, bucket, 2)
	data := randBytes(13*mib+12345, 21)
	key := "DONE/at-hevc.mp4"
	if _, err := s.Put(ctx, key, bytes.NewReader(data), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	r, _, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	wa, ok := r.(writerToAt)
	if !ok {
		t.Fatalf("%T has no WriteToAt", r)
	}
	var m memAt
	n, err := wa.WriteToAt(&m)
	r.Close()
	if err != nil || n != int64(len(data)) || !bytes.Equal(m.b, data) {
		t.Fatalf("WriteToAt: %d bytes, %v; content equal: %v", n, err, bytes.Equal(m.b, data))
	}
	if m.writes < 2 {
		t.Errorf("%d writes, want one per range", m.writes)
	}

	bad := bytes.Clone(data)
	bad[9*mib] ^= 1
	tamper(t, env, bucket, key, bad)
	r, _, err = s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.(writerToAt).WriteToAt(&memAt{}); !errors.Is(err, storage.ErrChecksum) {
		t.Fatalf("tampered: want ErrChecksum, got %v", err)
	}
}

// TestGetWriteToAtAfterRead: WriteToAt is an alternative to Read, not a
// continuation.
func TestGetWriteToAtAfterRead(t *testing.T) {
	env := awstest.Shared(t)
	s := smallParts(t, env, env.ScratchBucket(t), 2)
	if _, err := s.Put(ctx, "DONE/y-hevc.mp4", bytes.NewReader(randBytes(8*mib, 22)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	r, _, err := s.Get(ctx, "DONE/y-hevc.mp4")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.(writerToAt).WriteToAt(&memAt{}); err == nil {
		t.Fatal("WriteToAt after Read succeeded")
	}
}

// TestGetCloseUnread: a reader closed before its first read (a caller that
// only wanted the metadata) ends cleanly, and reads after it fail.
func TestGetCloseUnread(t *testing.T) {
	env := awstest.Shared(t)
	s := smallParts(t, env, env.ScratchBucket(t), 3)
	if _, err := s.Put(ctx, "DONE/z-hevc.mp4", bytes.NewReader(randBytes(16*mib, 23)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	r, obj, err := s.Get(ctx, "DONE/z-hevc.mp4")
	if err != nil || obj.Size != 16*mib || obj.SHA256 == "" {
		t.Fatalf("get: %v %+v", err, obj)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 10)); err == nil {
		t.Fatal("read after close succeeded")
	}
	if _, err := r.(writerToAt).WriteToAt(&memAt{}); err == nil {
		t.Fatal("WriteToAt after close succeeded")
	}
}
