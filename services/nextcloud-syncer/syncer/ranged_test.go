package syncer_test

import (
	"crypto/sha1"
	"encoding/hex"
	"os"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/services/nextcloud-syncer/internal/davtest"
)

// TestSplitDownloads: with idle transfer slots, large files are fetched in
// ranges (small parts here, to split often). Every case ends with every
// file byte-identical in the library or still on the server, and after a
// clean re-run all of them moved.
func TestSplitDownloads(t *testing.T) {
	const size = 13<<20 + 12345 // not a multiple of a part
	cases := []struct {
		name      string
		fault     *davtest.Fault
		modify    bool // the file is rewritten while its ranges download
		transient bool // the first pass moves everything anyway
		sum       string
	}{
		{name: "clean, sha1", sum: "sha1", transient: true},
		{name: "clean, every checksum", sum: "all", transient: true},
		{name: "clean, no checksum", sum: "", transient: true},
		{name: "drop the first two GETs", fault: &davtest.Fault{Method: "GET", Path: "big.bin", Drop: true, After: 1 << 20, Times: 2}, sum: "sha1", transient: true},
		{name: "drop every GET of the file", fault: &davtest.Fault{Method: "GET", Path: "big.bin", Drop: true, After: 2 << 20}, sum: "sha1"},
		{name: "503 on every GET but the first", fault: &davtest.Fault{Method: "GET", Path: "big.bin", Status: 503}, sum: "sha1"},
		{name: "modified while downloading", modify: true, sum: "sha1"},
		{name: "modified while downloading, no checksum", modify: true, sum: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "alice")
			e.put("alice", "big.bin", data(1, size), tc.sum)
			e.put("alice", "sub/big2.bin", data(2, size), tc.sum)
			e.put("alice", "small.jpg", data(3, 5000), tc.sum)
			want := e.snapshot()
			next := data(4, size)
			if tc.fault != nil {
				f := *tc.fault
				if f.Status != 0 {
					// Let the first stream through, fail the ranges.
					e.srv.AddFault(&davtest.Fault{Method: "GET", Path: "big.bin", Times: 1, Hook: func() {}})
				}
				e.srv.AddFault(&f)
			}
			if tc.modify {
				e.srv.AddFault(&davtest.Fault{Method: "GET", Path: "big.bin", Times: 1, After: 3 << 20, Hook: func() {
					// In place, same size: only the ETag and the content tell.
					if err := os.WriteFile(e.srv.Path("alice", source+"/big.bin"), next, 0o644); err != nil {
						t.Error(err)
					}
					if tc.sum != "" { // Nextcloud updates the checksum with the file
						s := sha1.Sum(next)
						e.srv.SetChecksum("alice", source+"/big.bin", "SHA1:"+hex.EncodeToString(s[:]))
					}
				}})
				want["alice"]["big.bin"] = sha(next)
			}
			cfg := e.config()
			cfg.PartSize, cfg.PartStreams = 1<<20, 4
			sums, err := e.run(cfg)
			if tc.transient && err != nil {
				t.Errorf("first pass: %v", err)
			}
			if n := e.srv.Count("GET"); tc.fault == nil && !tc.modify && n <= 3 {
				t.Errorf("no download was split into ranges: %d GETs for 3 files", n)
			}
			s := e.summary(sums, "alice")
			if tc.modify && s.Deferred != 1 {
				t.Errorf("a file rewritten during its download is deferred: %+v", s)
			}
			e.checkNoLoss(want)
			e.srv.ClearFaults()
			if _, err := e.run(cfg); err != nil {
				t.Fatalf("re-run: %v", err)
			}
			e.checkAllMoved(want)
		})
	}
}
