package media

import (
	"os/exec"
	"runtime"
	"syscall"
	"unsafe"
)

const schedIdle = 5 // SCHED_IDLE, linux/sched.h

// startIdle starts cmd at the SCHED_IDLE CPU policy: it runs only on CPU
// time nothing else wants. The policy is set on a locked OS thread that
// then starts cmd, so the child inherits it from its first instruction
// (setting it on the child's pid afterwards would miss threads it already
// started); the thread gets its normal policy back before it is unlocked.
// If the policy cannot be set, cmd runs at normal priority.
func startIdle(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if setPolicy(schedIdle) != nil {
			runtime.UnlockOSThread()
			errc <- cmd.Start()
			return
		}
		err := cmd.Start()
		if setPolicy(schedOther) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and ends with this goroutine
		errc <- err
	}()
	return <-errc
}

const schedOther = 0 // SCHED_OTHER, the normal policy

func setPolicy(policy int) error {
	var param struct{ priority int32 }
	if _, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, 0, uintptr(policy), uintptr(unsafe.Pointer(&param))); e != 0 {
		return e
	}
	return nil
}
