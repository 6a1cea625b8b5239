package metrics

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
)

// Processor ends are counted by result and reason: from real exit
// statuses (LAUNCHER=exec) and from ECS's exit code and stop code.
func TestJobEnds(t *testing.T) {
	reg := NewRegistry()
	m := NewDispatcher(reg)
	for _, script := range []string{"exit 0", "exit 75", "exit 1", "kill -TERM $$"} {
		m.ExecEnded(exec.Command("sh", "-c", script).Run())
	}
	zero, two := int32(0), int32(2)
	m.TaskStopped(&zero, "EssentialContainerExited")
	m.TaskStopped(&two, "EssentialContainerExited")
	m.TaskStopped(nil, "SpotInterruption")
	m.TaskStopped(nil, "TaskFailedToStart")
	m.TaskStopped(nil, "")
	l := m.ObserveLauncher(failingLauncher{}, nil, func(error) string { return "capacity" })
	_ = l.Launch(context.Background(), launch.Job{Key: "TODO/a.mp4"})
	text := gather(t, reg)
	for _, want := range []string{
		`hevc_dispatcher_jobs_ended_total{reason="exit_0",result="succeeded"} 2`,
		`hevc_dispatcher_jobs_ended_total{reason="exit_75",result="failed"} 1`,
		`hevc_dispatcher_jobs_ended_total{reason="exit_1",result="failed"} 1`,
		`hevc_dispatcher_jobs_ended_total{reason="signal",result="failed"} 1`,
		`hevc_dispatcher_jobs_ended_total{reason="exit_2",result="failed"} 1`,
		`hevc_dispatcher_jobs_ended_total{reason="spot_interruption",result="failed"} 1`,
		`hevc_dispatcher_jobs_ended_total{reason="failed_to_start",result="failed"} 1`,
		`hevc_dispatcher_jobs_ended_total{reason="unknown",result="failed"} 1`,
		`hevc_dispatcher_launch_failures_total{reason="capacity"} 1`,
		"hevc_dispatcher_jobs_launched_total 0",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

type failingLauncher struct{}

func (failingLauncher) Launch(context.Context, launch.Job) error { return errors.New("no capacity") }
func (failingLauncher) InFlight(context.Context) (map[string]bool, error) {
	return nil, nil
}
func (failingLauncher) Capacity() int { return 1 }
