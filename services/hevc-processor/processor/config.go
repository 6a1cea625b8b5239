package processor

import (
	"fmt"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/media"
)

// Bind registers the processor's tuning variables.
func (c *Config) Bind(s *config.Set) {
	var quality string
	d := media.DefaultSettings()
	s.String(&quality, "QUALITY", "balanced", "encode preset: archive, balanced (the seed's CRF 26 fast plus "+media.BalancedTune+") or small; X265_* override it")
	crf, preset := -1, ""
	s.Int(&crf, "X265_CRF", -1, "x265 CRF (0-51, lower is better quality); -1 keeps the QUALITY preset's")
	s.String(&preset, "X265_PRESET", "", "x265 preset (ultrafast … veryslow), replacing the QUALITY preset's with its tuning; empty keeps the QUALITY preset's")
	s.Int(&c.Settings.Threads, "X265_THREADS", 0, "x265 worker threads (0: all CPUs of the task)")
	var x265Params string
	s.String(&x265Params, "X265_PARAMS", "", "extra x265 parameters k=v:k=v, applied last (e.g. "+media.SeedParams+" for the seed's exact bitstream)")
	s.Duration(&c.Heartbeat, "HEARTBEAT_INTERVAL", time.Minute, "how often the work message's visibility is extended while encoding")
	s.Duration(&c.Visibility, "VISIBILITY_TIMEOUT", 5*time.Minute, "visibility set by each heartbeat; must exceed HEARTBEAT_INTERVAL")
	s.String(&c.WorkDir, "WORK_DIR", "", "scratch directory for input and output (default: the OS temp dir)")
	c.Task.Bind(s)
	s.Bool(&c.StreamInput, "STREAM_INPUT", true, "let ffmpeg stream the input from S3, encoding while it arrives, through a loopback proxy (presigned URLs of 5 minutes, never in process arguments, every read pinned to the object's ETag); false: download it first")
	s.Check(func() error {
		st, err := media.Preset(quality)
		if err != nil {
			return fmt.Errorf("QUALITY: %w", err)
		}
		st.Threads = c.Settings.Threads
		st.X265Params = x265Params
		if crf >= 0 {
			if crf > 51 {
				return fmt.Errorf("X265_CRF must be 0..51, got %d", crf)
			}
			st.CRF = crf
		}
		if preset != "" {
			// The preset's tuning is relative to its x265 preset: on
			// veryslow it would lower the search.
			st.Preset, st.Tune = preset, ""
		}
		if st.AudioBitrate == "" {
			st.AudioBitrate = d.AudioBitrate
		}
		if err := st.Validate(); err != nil {
			return fmt.Errorf("X265_*: %w", err)
		}
		c.Settings = st.WithCPUs() // X265_THREADS=0: pools and frame threads for the task's CPUs (cgroup quota)
		if c.Visibility <= c.Heartbeat {
			return fmt.Errorf("VISIBILITY_TIMEOUT (%s) must be longer than HEARTBEAT_INTERVAL (%s)", c.Visibility, c.Heartbeat)
		}
		return nil
	})
}
