package upload

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/hevc-encoder/hevc-encoder/pkg/media"
)

// AutoBitsPerPixel is MIN_BITRATE=auto's threshold: bits per second per
// pixel of the picture. Measured (README, "Only where it pays"): 720p30
// H.264 sources re-encoded with the default (libx265 CRF 26, preset fast)
// stop getting smaller at about 1.1 Mbit/s for noisy low light (output
// 1.03× the source) and 2.6 Mbit/s for fast motion (1.83× at 1.3 Mbit/s),
// while a talking head still shrinks at 0.4 Mbit/s. Below 1.2 bit/s per
// pixel two of the three kinds of footage gain nothing. Whether an encode
// pays depends on the bits each pixel gets, so the threshold scales with
// the picture: 1.1 Mbit/s at 1280×720, 2.5 Mbit/s at 1920×1080, 10 Mbit/s
// at 3840×2160. The frame rate is left out: at 60 fps each frame gets half
// the bits, so files are uploaded rather than skipped (the processor's
// no-gain rule still keeps the original when the encode is not smaller).
const AutoBitsPerPixel = 1.2

// AutoBitrateDoc describes auto for --help.
const AutoBitrateDoc = "the default: 1.2 bit/s per pixel of the picture, 1.1 Mbit/s at 720p, 2.5 Mbit/s at 1080p, 10 Mbit/s at 4K, below which the bench's fast-motion and low-light footage no longer shrinks"

// MinBitrate is the MIN_BITRATE rule. The zero value is off.
type MinBitrate struct {
	Auto bool  // scale with the picture (AutoBitsPerPixel)
	Rate int64 // bits per second when not Auto; 0 is off
}

// For is the threshold for a file in bits per second; 0 means no
// threshold (off, or auto without a picture size).
func (m MinBitrate) For(info media.Info) int64 {
	if !m.Auto {
		return m.Rate
	}
	v, ok := info.MainVideo()
	if !ok || v.Width <= 0 || v.Height <= 0 {
		return 0
	}
	return int64(AutoBitsPerPixel * float64(v.Width) * float64(v.Height))
}

// String is the setting as MIN_BITRATE spells it.
func (m MinBitrate) String() string {
	switch {
	case m.Auto:
		return "auto"
	case m.Rate == 0:
		return "0"
	}
	return FormatBitrate(m.Rate)
}

// ParseMinBitrate reads MIN_BITRATE: "auto", "0" or "off", or a rate in
// bits per second with an optional decimal suffix k, M or G and an
// optional unit bit, bit/s, bps or b/s ("3Mbit", "2500k", "1.5 Mbit/s",
// "3000000"). Bytes are refused: "3MB" would be read wrong by someone.
func ParseMinBitrate(s string) (MinBitrate, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch t {
	case "auto":
		return MinBitrate{Auto: true}, nil
	case "", "0", "off", "none":
		return MinBitrate{}, nil
	}
	for _, unit := range []string{"bit/s", "bits/s", "bps", "b/s", "bits", "bit"} {
		if strings.HasSuffix(t, unit) {
			t = strings.TrimSpace(strings.TrimSuffix(t, unit))
			break
		}
	}
	mult := 1.0
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult, t = 1e3, t[:n-1]
		case 'm':
			mult, t = 1e6, t[:n-1]
		case 'g':
			mult, t = 1e9, t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f*mult > 1e12 {
		return MinBitrate{}, fmt.Errorf("%q is not a bit rate like 3Mbit, 2500k or 3000000 (or auto, or 0 for off)", s)
	}
	return MinBitrate{Rate: int64(math.Round(f * mult))}, nil
}

// FormatBitrate renders bits per second for people ("2.35 Mbit/s").
func FormatBitrate(bps int64) string {
	switch {
	case bps >= 1e6:
		return strconv.FormatFloat(float64(bps)/1e6, 'f', 2, 64) + " Mbit/s"
	case bps >= 1e3:
		return strconv.FormatFloat(float64(bps)/1e3, 'f', 0, 64) + " kbit/s"
	}
	return strconv.FormatInt(bps, 10) + " bit/s"
}

// VideoBitrate is the main video stream's bit rate in bits per second, as
// the probe tells it: the stream's own bit rate (from the MP4's sample
// sizes), else the file's (size × 8 / duration) less its audio streams';
// 0 when unknown. Audio whose rate is unknown is not subtracted, so the
// estimate errs high: towards uploading, never towards a wrong skip.
func VideoBitrate(info media.Info) int64 {
	v, ok := info.MainVideo()
	if !ok {
		return 0
	}
	if v.BitRate > 0 {
		return v.BitRate
	}
	total := info.BitRate
	if total <= 0 && info.Size > 0 && info.Duration > 0 {
		total = int64(float64(info.Size*8) / info.Duration)
	}
	if total <= 0 {
		return 0
	}
	for _, s := range info.Streams {
		if s.Kind == "audio" {
			total -= s.BitRate
		}
	}
	return max(total, 0)
}
