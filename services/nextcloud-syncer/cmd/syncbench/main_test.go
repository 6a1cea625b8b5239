package main

import (
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/benchline"
)

// Issue 18, point 6: the 5 × 200 MiB case against plain rclone move (which
// does not fsync) informs; the row against rclone followed by a sync, at
// equal durability, is the judged one. The small-file case stays judged.
func TestLargeFilesJudgedAtEqualDurability(t *testing.T) {
	// Ours 0.5 s, rclone 0.5 s + 0.5 s of sync: rclone's speed, twice
	// that of rclone made durable.
	ours := []result{{seconds: 0.5}}
	theirs := []result{{seconds: 0.5, syncSeconds: 0.5}}
	for _, quick := range []bool{false, true} {
		for _, c := range benchCases(quick) {
			lines := rows(c, ours, theirs)
			if len(lines) != 3 {
				t.Fatalf("%s: %d rows, want 3", c.name, len(lines))
			}
			plain, durable := lines[0], lines[1]
			if !strings.HasSuffix(durable.Case, "(durable)") || durable.AnchorName != "rclone+sync" || durable.Target == benchline.Info || !durable.Pass {
				t.Errorf("%s: durable row %+v, want judged and passing", c.name, durable)
			}
			large := strings.HasPrefix(c.name, "b:")
			if large != c.diskBound {
				t.Errorf("%s: diskBound %v", c.name, c.diskBound)
			}
			if large && (plain.Target != benchline.Info || !plain.Pass) {
				t.Errorf("%s: plain rclone row %+v, want information only", c.name, plain)
			}
			if !large && (plain.Target == benchline.Info || plain.Pass) {
				t.Errorf("%s: plain rclone row %+v, want judged (and failing at rclone's speed, below 1.5)", c.name, plain)
			}
		}
	}
}
