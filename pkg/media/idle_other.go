//go:build !linux

package media

import "os/exec"

// startIdle starts cmd; only Linux lowers its CPU policy (idle_linux.go).
func startIdle(cmd *exec.Cmd) error { return cmd.Start() }
