package procstat

import (
	"os"
	"testing"
)

func TestPeakRSSAndLoad(t *testing.T) {
	if kib := PeakRSSKiB(os.Getpid()); kib <= 0 {
		t.Errorf("own peak RSS = %d KiB", kib)
	}
	if kib := PeakRSSKiB(-1); kib != 0 {
		t.Errorf("no such process: %d", kib)
	}
	if l := LoadAvg(); l < 0 {
		t.Errorf("load %f", l)
	}
}
