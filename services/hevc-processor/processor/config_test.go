package processor

import (
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/media"
)

func parseConfig(t *testing.T, env map[string]string) (Config, error) {
	t.Helper()
	var c Config
	s := config.New("hevc-processor", "test")
	s.SetGetenv(func(k string) string { return env[k] })
	c.Bind(s)
	err := s.Parse(nil)
	return c, err
}

func TestConfigSizesThreadsAndStreamsByDefault(t *testing.T) {
	c, err := parseConfig(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Settings.Threads != media.CPUs() {
		t.Errorf("Threads = %d, want the task's CPUs (%d)", c.Settings.Threads, media.CPUs())
	}
	if !c.StreamInput {
		t.Errorf("STREAM_INPUT should default to true")
	}
	if c.Settings.CRF != 26 || c.Settings.Preset != "fast" || c.Settings.Tune != media.BalancedTune {
		t.Errorf("default encode %d/%s/%s, want the seed's 26/fast with the balanced tune", c.Settings.CRF, c.Settings.Preset, c.Settings.Tune)
	}
}

func TestConfigX265Overrides(t *testing.T) {
	c, err := parseConfig(t, map[string]string{"X265_THREADS": "3", "X265_PARAMS": "frame-threads=1", "STREAM_INPUT": "false"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Settings.Threads != 3 || c.Settings.X265Params != "frame-threads=1" || c.StreamInput {
		t.Fatalf("settings %+v, stream %v", c.Settings, c.StreamInput)
	}
	// The balanced tuning belongs to preset fast: another x265 preset drops it.
	if c, err := parseConfig(t, map[string]string{"X265_PRESET": "veryslow"}); err != nil || c.Settings.Preset != "veryslow" || c.Settings.Tune != "" {
		t.Fatalf("X265_PRESET=veryslow: %+v, %v", c.Settings, err)
	}
	if _, err := parseConfig(t, map[string]string{"X265_PRESET": "warp"}); err == nil || !strings.Contains(err.Error(), "warp") {
		t.Fatalf("unknown preset: err = %v", err)
	}
	if _, err := parseConfig(t, map[string]string{"X265_PARAMS": "a=1 b=2"}); err == nil {
		t.Fatalf("params with spaces accepted")
	}
}
