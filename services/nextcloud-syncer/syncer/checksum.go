package syncer

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/adler32"
	"io"
	"os"
	"strconv"
	"strings"
)

// Checksum is one entry of Nextcloud's oc:checksums property, e.g.
// "SHA1:2fd4e1c6…". Alg is upper case; Value as the server sent it.
type Checksum struct {
	Alg, Value string
}

func (c Checksum) String() string { return c.Alg + ":" + c.Value }

// ParseChecksums splits the text of an <oc:checksum> element: one or more
// "ALG:value" separated by spaces ("SHA1:… MD5:… ADLER32:…").
func ParseChecksums(s string) []Checksum {
	var out []Checksum
	for _, f := range strings.Fields(s) {
		alg, val, ok := strings.Cut(f, ":")
		if !ok || alg == "" || val == "" {
			continue
		}
		out = append(out, Checksum{Alg: strings.ToUpper(alg), Value: val})
	}
	return out
}

// newHash returns a hash for a supported algorithm, or nil.
func newHash(alg string) hash.Hash {
	switch alg {
	case "SHA1":
		return sha1.New()
	case "MD5":
		return md5.New()
	case "SHA256":
		return sha256.New()
	case "ADLER32":
		return adler32.New()
	}
	return nil
}

// matches compares a computed digest with the server's value. ADLER32 is
// sent as hex without leading zeros by some clients, so it compares as a
// number.
func matches(alg string, sum []byte, value string) bool {
	if alg == "ADLER32" {
		want, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(value), "0x"), 16, 32)
		if err != nil || len(sum) != 4 {
			return false
		}
		got := uint64(sum[0])<<24 | uint64(sum[1])<<16 | uint64(sum[2])<<8 | uint64(sum[3])
		return got == want
	}
	return strings.EqualFold(hex.EncodeToString(sum), value)
}

// verifier hashes a stream with every supported algorithm the server
// offered.
type verifier struct {
	sums   []Checksum
	hashes []hash.Hash
}

func newVerifier(sums []Checksum) *verifier {
	v := &verifier{}
	for _, c := range sums {
		if h := newHash(c.Alg); h != nil {
			v.sums = append(v.sums, c)
			v.hashes = append(v.hashes, h)
		}
	}
	return v
}

func (v *verifier) writers() []io.Writer {
	w := make([]io.Writer, len(v.hashes))
	for i, h := range v.hashes {
		w[i] = h
	}
	return w
}

// check returns an error naming the first mismatching checksum.
func (v *verifier) check() error {
	for i, c := range v.sums {
		if sum := v.hashes[i].Sum(nil); !matches(c.Alg, sum, c.Value) {
			return fmt.Errorf("%s %s, server says %s", c.Alg, hex.EncodeToString(sum), c.Value)
		}
	}
	return nil
}

// bestStrong picks the strongest supported checksum the server offered.
func bestStrong(sums []Checksum) (Checksum, bool) {
	for _, alg := range []string{"SHA256", "SHA1", "MD5"} {
		for _, c := range sums {
			if c.Alg == alg {
				return c, true
			}
		}
	}
	return Checksum{}, false
}

// fileMatches hashes a local file with c's algorithm and compares.
func fileMatches(p string, c Checksum) (bool, error) {
	h := newHash(c.Alg)
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("hash %s: %w", p, err)
	}
	return matches(c.Alg, h.Sum(nil), c.Value), nil
}
