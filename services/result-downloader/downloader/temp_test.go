package downloader

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{7})
	_, _ = r.Read(b)
	return b
}

// aligned returns a page-aligned copy of b (a large allocation).
func aligned(t *testing.T, b []byte) []byte {
	buf := make([]byte, len(b)+directAlign)
	off := (directAlign - int(uintptr(unsafe.Pointer(&buf[0]))%directAlign)) % directAlign
	out := buf[off : off+len(b)]
	copy(out, b)
	return out
}

// testTemp creates a temp file in dir, its record in a state directory
// elsewhere.
func testTemp(t *testing.T, dir string, direct bool) *temp {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	temps, err := library.OpenTemps(t.TempDir(), "dl", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := newTemp(root, temps, ".", 0o755, direct)
	if err != nil {
		t.Fatal(err)
	}
	return tmp
}

func commitAndCheck(t *testing.T, tmp *temp, dir string, want []byte) {
	t.Helper()
	if tmp.n != int64(len(want)) {
		t.Fatalf("counted %d bytes, wrote %d", tmp.n, len(want))
	}
	target := filepath.Join(dir, "out-hevc.mp4")
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := tmp.commit(root, "out-hevc.mp4", 0o644, time.Time{}, -1, -1); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("installed file differs (%d bytes, want %d)", len(got), len(want))
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want the installed file only", len(ents))
	}
}

// TestTempWrite: sequential writes of aligned blocks (O_DIRECT where the
// file system allows it), unaligned buffers and tails, and a direct write
// failing midway, all end in the same bytes.
func TestTempWrite(t *testing.T) {
	data := randomBytes(5*directAlign*16 + 1234)
	for _, tc := range []struct {
		name   string
		direct bool
		fail   bool // direct writes "fail" after the first
	}{{"buffered", false, false}, {"direct", true, false}, {"direct-then-failing", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tmp := testTemp(t, dir, tc.direct)
			defer tmp.abort()
			if runtime.GOOS == "linux" && tc.direct && tmp.direct == nil {
				t.Logf("no O_DIRECT on %s: buffered writes only", dir)
			}
			buf := aligned(t, data)
			chunk := directAlign * 16
			for off := 0; off < len(buf); off += chunk {
				p := buf[off:min(off+chunk, len(buf))]
				if off == 2*chunk {
					p = append([]byte(nil), p...) // not aligned in memory (most likely)
				}
				if _, err := tmp.Write(p); err != nil {
					t.Fatal(err)
				}
				if tc.fail && off == 0 {
					tmp.directFailed.Store(true)
				}
			}
			commitAndCheck(t, tmp, dir, data)
		})
	}
}

// TestTempWriteAt: ranges written concurrently, in any order, at their
// offsets (the S3 store's WriteToAt).
func TestTempWriteAt(t *testing.T) {
	data := randomBytes(37*directAlign*4 + 999)
	dir := t.TempDir()
	tmp := testTemp(t, dir, true)
	defer tmp.abort()
	buf := aligned(t, data)
	rng := directAlign * 4
	var wg sync.WaitGroup
	errs := make(chan error, len(buf)/rng+1)
	for off := len(buf) / rng * rng; off >= 0; off -= rng { // last first
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := tmp.WriteAt(buf[off:min(off+rng, len(buf))], int64(off)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	tmp.endParallel()
	commitAndCheck(t, tmp, dir, data)
}
