package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"mime"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// copyLimit is the largest object copied with one CopyObject; larger ones
// use UploadPartCopy. A variable so that tests can lower it.
var copyLimit int64 = maxCopyObject

// stagingPrefix holds objects uploaded from unseekable streams of unknown
// SHA-256 until they are copied to their key with the SHA-256 in metadata.
const stagingPrefix = ".staging/"

// unsignedPayload skips SigV4's SHA-256 of request bodies that already carry
// a CRC32C checksum header (the checksum protects the payload; over TLS the
// SDK would not sign it either). Saves one full hash pass per upload.
func unsignedPayload(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

func crcString(c uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], c)
	return base64.StdEncoding.EncodeToString(b[:])
}

// Put streams r into key. Objects up to one part go up with one PutObject,
// larger ones as a multipart upload with Concurrency parts in flight. The
// object's SHA-256 goes into metadata "sha256" (with opts.Metadata), and a
// full-object CRC32C is sent for the server to check. With opts.SHA256 set
// and a different stream, nothing is committed (the multipart upload is
// aborted) and the error wraps storage.ErrChecksum.
//
// The SHA-256 must be known before a multipart upload starts (metadata is
// fixed at creation): when opts.SHA256 is empty and r is seekable (a file),
// Put hashes it first and rewinds; an unseekable stream is uploaded to a
// staging key and copied to key with its metadata.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) (storage.Object, error) {
	if err := library.CheckRel(key); err != nil {
		return storage.Object{}, fmt.Errorf("s3 put: key %q: %w", key, err)
	}
	if strings.HasPrefix(key, stagingPrefix) {
		return storage.Object{}, fmt.Errorf("s3 put: key %q: %w: reserved prefix %s", key, library.ErrUnsafe, stagingPrefix)
	}
	want := strings.ToLower(strings.TrimSpace(opts.SHA256))
	meta := make(map[string]string, len(opts.Metadata)+1)
	for k, v := range opts.Metadata {
		meta[strings.ToLower(k)] = encodeMeta(v)
	}
	delete(meta, storage.MetaSHA256)

	hint := sizeHint(r, opts.Size)
	part := partSizeFor(s.part, hint)
	var first []byte
	if hint >= 0 && hint < part {
		first = make([]byte, hint+1) // +1 to see EOF without another read
	} else {
		first = s.bufferOf(part)
	}
	n, eof, err := fill(r, first)
	if err != nil {
		return storage.Object{}, fmt.Errorf("s3 put %s: read source: %w", key, err)
	}
	if !eof && int64(len(first)) < part { // the size hint was wrong
		b := s.bufferOf(part)
		copy(b, first[:n])
		m, e, err := fill(r, b[n:])
		if err != nil {
			return storage.Object{}, fmt.Errorf("s3 put %s: read source: %w", key, err)
		}
		first, n, eof = b, n+m, e
	}
	var peek [1]byte
	if !eof { // a full part: is there more?
		m, err := io.ReadFull(r, peek[:])
		switch {
		case m == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF):
			eof = true
		case err != nil:
			return storage.Object{}, fmt.Errorf("s3 put %s: read source: %w", key, err)
		}
	}
	if eof {
		obj, err := s.putSingle(ctx, key, first[:n], meta, want)
		s.release(first)
		return obj, err
	}

	rest := io.MultiReader(bytes.NewReader(peek[:]), r)
	exp := expect{sha256: want}
	if want != "" && opts.CRC32C != nil && opts.Size > 0 {
		// The caller hashed the stream and took its CRC32C in one pass: check
		// that cheap sum while uploading instead of a second SHA-256.
		exp = expect{sha256: want, crc32c: *opts.CRC32C, size: opts.Size, prehashed: true}
	}
	if want == "" {
		if rs, ok := r.(io.ReadSeeker); ok {
			// A file: hash it in a first pass (metadata is fixed when the
			// upload starts); the upload pass then checks the cheap CRC32C
			// against the first pass's, catching a file that changes meanwhile.
			// A pipe fails the first Seek and is staged below.
			if pos, err := rs.Seek(0, io.SeekCurrent); err == nil {
				sum, crc, size, err := prehash(rs, pos, first[:n], peek[:])
				if err != nil {
					return storage.Object{}, fmt.Errorf("s3 put %s: hash source: %w", key, err)
				}
				exp = expect{sha256: sum, crc32c: crc, size: size, prehashed: true}
			}
		}
	}
	if exp.sha256 != "" {
		meta[storage.MetaSHA256] = exp.sha256
		size, _, err := s.putMultipart(ctx, key, first[:n], rest, meta, exp, part)
		if err != nil {
			return storage.Object{}, err
		}
		return storage.Object{Key: key, Size: size, Modified: time.Now().UTC(), SHA256: exp.sha256, Metadata: meta}, nil
	}
	return s.putStaged(ctx, key, first[:n], rest, meta, part)
}

// partSizeFor is the multipart part size for an object of size bytes
// (negative: unknown): the configured size (S3_PART_SIZE), grown when the
// object would not fit S3's 10000 parts to ceil(size/10000) rounded up to
// a MiB. At the 16 MiB default that is every object over 156 GiB; S3's
// largest object (5 TiB) gets 525 MiB parts. A stream of unknown size
// keeps the configured size (and fails beyond 10000 parts).
func partSizeFor(configured, size int64) int64 {
	if size <= 0 {
		return configured
	}
	const mib = 1 << 20
	need := (size + maxParts - 1) / maxParts
	need = (need + mib - 1) / mib * mib
	return max(configured, need)
}

// bufferOf returns a part buffer of part bytes: pooled at the configured
// size, allocated (and dropped by release) when grown for a large object.
func (s *Store) bufferOf(part int64) []byte {
	if part == s.part {
		return s.buffer()
	}
	return make([]byte, part)
}

// expect is what an upload must turn out to be.
type expect struct {
	sha256 string // hex; "" when unknown
	// prehashed: sha256 came from a first pass over the same stream (ours,
	// or the caller's: PutOptions.CRC32C), which also gave crc32c and size;
	// the upload pass compares those instead of hashing SHA-256 again.
	prehashed bool
	crc32c    uint32
	size      int64
}

// prehash hashes first, peek and the rest of rs (SHA-256, CRC32C, size),
// then seeks rs back to pos, where it was.
func prehash(rs io.ReadSeeker, pos int64, first, peek []byte) (string, uint32, int64, error) {
	h := sha256.New()
	c := crc32.New(castagnoli)
	w := io.MultiWriter(h, c)
	w.Write(first)
	w.Write(peek)
	n, err := io.Copy(w, rs)
	if err != nil {
		return "", 0, 0, err
	}
	if _, err := rs.Seek(pos, io.SeekStart); err != nil {
		return "", 0, 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), c.Sum32(), int64(len(first)+len(peek)) + n, nil
}

func (s *Store) putSingle(ctx context.Context, key string, data []byte, meta map[string]string, want string) (storage.Object, error) {
	sum := sha256.Sum256(data)
	got := hex.EncodeToString(sum[:])
	if want != "" && got != want {
		return storage.Object{}, fmt.Errorf("s3 put %s: %w: stream has sha256 %s, expected %s", key, storage.ErrChecksum, got, want)
	}
	meta[storage.MetaSHA256] = got
	crc := crcString(crc32.Checksum(data, castagnoli))
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:            &s.bucket,
		Key:               &key,
		Body:              bytes.NewReader(data),
		ContentLength:     aws.Int64(int64(len(data))),
		Metadata:          meta,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		ChecksumCRC32C:    &crc,
	}, unsignedPayload)
	if err != nil {
		return storage.Object{}, fmt.Errorf("s3 put %s: %w", key, err)
	}
	return storage.Object{Key: key, Size: int64(len(data)), Modified: time.Now().UTC(), SHA256: got, Metadata: meta}, nil
}

// putMultipart uploads first followed by r as a multipart upload of part
// bytes per part (first is the first part) with a full-object CRC32C. It
// returns the size and hex SHA-256 of what it read (not computed when
// exp.prehashed); when what it read differs from exp it aborts the upload.
func (s *Store) putMultipart(ctx context.Context, key string, first []byte, r io.Reader, meta map[string]string, exp expect, part int64) (int64, string, error) {
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            &s.bucket,
		Key:               &key,
		Metadata:          meta,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		ChecksumType:      types.ChecksumTypeFullObject,
	})
	if err != nil {
		return 0, "", fmt.Errorf("s3 put %s: create multipart upload: %w", key, err)
	}
	uploadID := created.UploadId
	abort := func(cause error) error {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: uploadID}); err != nil {
			return errors.Join(cause, fmt.Errorf("s3 put %s: abort multipart upload: %w", key, err))
		}
		return cause
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu    sync.Mutex
		parts []types.CompletedPart
		wg    sync.WaitGroup
	)
	free := make(chan []byte, s.conc)
	allocated := 1
	upload := func(num int32, buf []byte, n int) {
		defer wg.Done()
		defer func() { free <- buf }()
		crc := crcString(crc32.Checksum(buf[:n], castagnoli))
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:            &s.bucket,
			Key:               &key,
			UploadId:          uploadID,
			PartNumber:        aws.Int32(num),
			Body:              bytes.NewReader(buf[:n]),
			ContentLength:     aws.Int64(int64(n)),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
			ChecksumCRC32C:    &crc,
		}, unsignedPayload)
		if err != nil {
			cancel(fmt.Errorf("s3 put %s: upload part %d: %w", key, num, err))
			return
		}
		mu.Lock()
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num), ChecksumCRC32C: &crc})
		mu.Unlock()
	}

	h := sha256.New()
	var full uint32
	var size int64
	buf, n, eof := first, len(first), false
	var readErr error
	for num := int32(1); ; num++ {
		if !exp.prehashed {
			h.Write(buf[:n])
		}
		full = crc32.Update(full, castagnoli, buf[:n])
		size += int64(n)
		wg.Add(1)
		go upload(num, buf, n)
		if eof {
			break
		}
		if num == maxParts {
			readErr = fmt.Errorf("s3 put %s: more than %d parts of %d bytes", key, maxParts, part)
			break
		}
		if allocated < s.conc {
			buf = s.bufferOf(part)
			allocated++
		} else {
			select {
			case buf = <-free:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
		}
		var err error
		n, eof, err = fill(r, buf)
		if err != nil {
			readErr = fmt.Errorf("s3 put %s: read source: %w", key, err)
			free <- buf
			break
		}
		if n == 0 { // EOF right at a part boundary
			free <- buf
			break
		}
	}
	wg.Wait()
	for len(free) > 0 {
		s.release(<-free)
	}
	if readErr == nil {
		readErr = context.Cause(ctx)
	}
	if readErr != nil {
		return 0, "", abort(readErr)
	}
	var got string
	if exp.prehashed {
		if full != exp.crc32c || size != exp.size {
			return 0, "", abort(fmt.Errorf("s3 put %s: %w: source changed while uploading (%d bytes, crc32c %08x; first pass %d bytes, %08x)",
				key, storage.ErrChecksum, size, full, exp.size, exp.crc32c))
		}
		got = exp.sha256
	} else {
		got = hex.EncodeToString(h.Sum(nil))
		if exp.sha256 != "" && got != exp.sha256 {
			return 0, "", abort(fmt.Errorf("s3 put %s: %w: stream has sha256 %s, expected %s", key, storage.ErrChecksum, got, exp.sha256))
		}
	}
	sort.Slice(parts, func(i, j int) bool { return *parts[i].PartNumber < *parts[j].PartNumber })
	fullCRC := crcString(full)
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             &key,
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		ChecksumCRC32C:  &fullCRC,
		ChecksumType:    types.ChecksumTypeFullObject,
		MpuObjectSize:   aws.Int64(size),
	})
	if err != nil {
		return 0, "", abort(fmt.Errorf("s3 put %s: complete multipart upload: %w", key, err))
	}
	return size, got, nil
}

// putStaged uploads an unseekable stream of unknown SHA-256 to a staging key,
// then copies it to key with the SHA-256 in its metadata, so that key
// appears once, complete, with its metadata (one ObjectCreated event).
func (s *Store) putStaged(ctx context.Context, key string, first []byte, r io.Reader, meta map[string]string, part int64) (storage.Object, error) {
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	tmp := stagingPrefix + hex.EncodeToString(rnd[:])
	size, sum, err := s.putMultipart(ctx, tmp, first, r, meta, expect{}, part)
	if err != nil {
		return storage.Object{}, fmt.Errorf("s3 put %s: stage: %w", key, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = s.Delete(dctx, tmp)
	}()
	meta[storage.MetaSHA256] = sum
	if err := s.copy(ctx, tmp, key, size, meta); err != nil {
		return storage.Object{}, fmt.Errorf("s3 put %s: copy from staging %s: %w", key, tmp, err)
	}
	return storage.Object{Key: key, Size: size, Modified: time.Now().UTC(), SHA256: sum, Metadata: meta}, nil
}

// copy copies src to dst in the bucket, replacing the metadata.
func (s *Store) copy(ctx context.Context, src, dst string, size int64, meta map[string]string) error {
	source := s.bucket + "/" + src // src is a staging key: no characters to escape
	if size <= copyLimit {
		_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket:            &s.bucket,
			Key:               &dst,
			CopySource:        &source,
			MetadataDirective: types.MetadataDirectiveReplace,
			Metadata:          meta,
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		})
		return err
	}
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &dst, Metadata: meta})
	if err != nil {
		return err
	}
	partSize := max(copyLimit/4, minPartSize)
	nparts := (size + partSize - 1) / partSize
	parts := make([]types.CompletedPart, nparts)
	errs := make([]error, nparts)
	sem := make(chan struct{}, s.conc)
	var wg sync.WaitGroup
	for i := range nparts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			off := i * partSize
			rng := fmt.Sprintf("bytes=%d-%d", off, min(off+partSize, size)-1)
			out, err := s.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
				Bucket: &s.bucket, Key: &dst, UploadId: created.UploadId, PartNumber: aws.Int32(int32(i + 1)),
				CopySource: &source, CopySourceRange: &rng,
			})
			if err != nil {
				errs[i] = fmt.Errorf("copy part %d: %w", i+1, err)
				return
			}
			parts[i] = types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(int32(i + 1))}
		}()
	}
	wg.Wait()
	err = errors.Join(errs...)
	if err == nil {
		_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: &s.bucket, Key: &dst, UploadId: created.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
	}
	if err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_, _ = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &dst, UploadId: created.UploadId})
	}
	return err
}

// encodeMeta makes a metadata value safe as an HTTP header: values with
// non-ASCII or control characters become RFC 2047 encoded-words (as S3 does
// itself); object() decodes them.
func encodeMeta(v string) string {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f {
			return mime.BEncoding.Encode("UTF-8", v)
		}
	}
	return v
}

// fill reads into b until it is full or the stream ends; eof reports the end.
func fill(r io.Reader, b []byte) (n int, eof bool, err error) {
	n, err = io.ReadFull(r, b)
	switch err {
	case nil:
		return n, false, nil
	case io.EOF, io.ErrUnexpectedEOF:
		return n, true, nil
	default:
		return n, false, err
	}
}

// sizeHint guesses the remaining length of r: opts.Size when positive, the
// length of in-memory readers, the rest of a regular file; -1 when unknown.
func sizeHint(r io.Reader, size int64) int64 {
	if size > 0 {
		return size
	}
	switch v := r.(type) {
	case interface{ Len() int }:
		return int64(v.Len())
	case *os.File:
		st, err := v.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return -1
		}
		pos, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		return max(st.Size()-pos, 0)
	}
	return -1
}
