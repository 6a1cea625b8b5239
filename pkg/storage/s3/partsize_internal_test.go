package s3

import "testing"

// Issue 15 point 6: the part size grows with the object so that it fits
// S3's 10000 parts: max(S3_PART_SIZE, ceil(size/10000) rounded up to a MiB).
func TestPartSizeFor(t *testing.T) {
	const mib, gib, tib = int64(1) << 20, int64(1) << 30, int64(1) << 40
	for _, c := range []struct {
		name             string
		configured, size int64
		want             int64
	}{
		{"unknown size", 16 * mib, -1, 16 * mib},
		{"small object", 16 * mib, 100 * mib, 16 * mib},
		{"exactly 10000 default parts", 16 * mib, 10000 * 16 * mib, 16 * mib},
		{"one byte more", 16 * mib, 10000*16*mib + 1, 17 * mib},
		// 10000 parts of 16 MiB hold 156.25 GiB: 156 GiB still fits them
		// (15.97 MiB a part), 157 GiB needs 16.08 MiB, rounded up to 17.
		{"156 GiB", 16 * mib, 156 * gib, 16 * mib},
		{"157 GiB", 16 * mib, 157 * gib, 17 * mib},
		{"156 GiB with 64 MiB parts configured", 64 * mib, 156 * gib, 64 * mib},
		// 1 TiB / 10000 = 104.86 MiB -> 105 MiB.
		{"1 TiB", 16 * mib, tib, 105 * mib},
		// 5 TiB (S3's largest object) / 10000 = 524.29 MiB -> 525 MiB.
		{"5 TiB", 16 * mib, 5 * tib, 525 * mib},
		{"5 TiB with 5 MiB parts configured", 5 * mib, 5 * tib, 525 * mib},
	} {
		got := partSizeFor(c.configured, c.size)
		if got != c.want {
			t.Errorf("%s: partSizeFor(%d, %d) = %d (%.2f MiB), want %d MiB", c.name, c.configured, c.size, got, float64(got)/float64(mib), c.want/mib)
			continue
		}
		if c.size > 0 {
			if parts := (c.size + got - 1) / got; parts > maxParts {
				t.Errorf("%s: %d parts of %d bytes, over S3's %d", c.name, parts, got, maxParts)
			}
			if got%mib != 0 {
				t.Errorf("%s: %d is not a whole number of MiB", c.name, got)
			}
		}
	}
}
