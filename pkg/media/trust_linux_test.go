package media

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// accessTime is path's last access time.
func accessTime(t *testing.T, path string) time.Time {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	a := st.Sys().(*syscall.Stat_t).Atim
	return time.Unix(a.Sec, a.Nsec)
}
