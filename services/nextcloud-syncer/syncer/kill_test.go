package syncer_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/services/nextcloud-syncer/internal/davtest"
	"github.com/hevc-encoder/hevc-encoder/services/nextcloud-syncer/syncer"
)

// TestMain doubles as the service binary (SYNCER_TEST_CHILD=1), wired like
// main.go, so that tests can kill a real process mid-transfer.
func TestMain(m *testing.M) {
	if os.Getenv("SYNCER_TEST_CHILD") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := syncer.Main(ctx, os.Args[1:], os.Getenv, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "nextcloud-syncer:", err)
		}
		os.Exit(syncer.ExitCode(err))
	}
	os.Exit(m.Run())
}

// TestKilledMidTransferConverges kills the process (SIGKILL, and SIGTERM)
// while a file is downloading; nothing may be lost, and the next pass
// finishes the job and removes the temp file the killed one left.
func TestKilledMidTransferConverges(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			e := newEnv(t, "alice")
			fill(e, "alice", 1)
			e.put("alice", "big.bin", data(99, 16<<20), "")
			want := e.snapshot()
			cmd := exec.Command(os.Args[0], "--once")
			cmd.Env = append(os.Environ(), "SYNCER_TEST_CHILD=1", "NC_URL="+e.srv.URL, "NC_USERS=alice",
				"NC_PASS_alice="+e.users["alice"], "LIBRARY_ROOT="+e.lib, "CONCURRENCY=1", "LOG_FORMAT=json")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			started := make(chan *os.Process, 1)
			e.srv.AddFault(&davtest.Fault{Method: "GET", Path: "big.bin", Times: 1, After: 2 << 20, Hook: func() {
				(<-started).Signal(sig)
				time.Sleep(200 * time.Millisecond) // let it die before more bytes go out
			}})
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			started <- cmd.Process
			err := cmd.Wait()
			t.Log(stderr.String())
			if err == nil {
				t.Fatal("the killed pass exited 0")
			}
			if sig == syscall.SIGTERM && cmd.ProcessState.ExitCode() != 1 {
				t.Errorf("SIGTERM: exit status %d, want 1 (interrupted)", cmd.ProcessState.ExitCode())
			}
			e.checkNoLoss(map[string]map[string]string{}) // temp files allowed only after SIGKILL: checked below
			temps := 0
			for p := range e.local("alice") {
				if strings.Contains(p, ".hevc-tmp-") {
					temps++
				}
			}
			if sig == syscall.SIGTERM && temps != 0 {
				t.Errorf("SIGTERM left %d temp files", temps)
			}
			e.srv.ClearFaults()
			cfg := e.config()
			cfg.Concurrency = 1
			if _, err := e.run(cfg); err != nil {
				t.Fatal(err)
			}
			e.checkAllMoved(want)
		})
	}
}
