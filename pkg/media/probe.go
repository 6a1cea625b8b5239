// Package media wraps ffprobe and ffmpeg (via github.com/u2takey/ffmpeg-go)
// for the HEVC re-encode: Probe reads a file's streams and tags, NewPlan
// turns them into ffmpeg arguments following DESIGN.md "Media", Encode runs
// ffmpeg with progress reporting, and Verify checks that an output decodes
// and matches its input.
//
// Errors: ErrBadInput (permanent, the input is not a usable video) and
// ErrVerify (the output does not match its input) are wrapped with the
// file and the reason; anything else (ffmpeg missing, disk full, context
// cancelled) is an ordinary, retryable error.
package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"

	ffmpeg "github.com/u2takey/ffmpeg-go"
)

// ErrBadInput marks a permanent input problem: zero bytes, truncated, not a
// video, undecodable, no video stream. Retrying cannot help.
var ErrBadInput = errors.New("bad input")

// ErrVerify marks an output that does not match its input.
var ErrVerify = errors.New("verification failed")

// Stream is one stream of a probed file.
type Stream struct {
	Index int
	// Kind is ffprobe's codec_type: video, audio, data, subtitle, attachment.
	Kind           string
	Codec          string // codec_name, e.g. h264, hevc, aac; empty for tmcd data tracks
	CodecTag       string // codec_tag_string, e.g. avc1, hvc1, tmcd
	PixFmt         string
	Profile        string
	Width, Height  int
	ColorPrimaries string
	ColorTransfer  string
	ColorSpace     string
	ColorRange     string
	AttachedPic    bool // cover art, not a real video track
	// Rotation is the display matrix rotation in degrees as ffprobe reports
	// it (e.g. 90, -90, 180); 0 when there is none.
	Rotation int
	Language string
	Duration float64 // seconds; 0 when unknown
	Frames   int64   // nb_frames from the container; 0 when unknown
	// FrameRate is the average frame rate in frames per second (ffprobe's
	// avg_frame_rate, else r_frame_rate); 0 when unknown.
	FrameRate float64
	// BitRate is the stream's average bit rate in bits per second
	// (ffprobe's stream bit_rate; ProbeBoxes: the track's sample bytes over
	// its duration); 0 when unknown.
	BitRate int64
}

// Info is what Probe learned about a file.
type Info struct {
	Path       string
	FormatName string
	Duration   float64 // seconds
	Size       int64
	BitRate    int64
	Streams    []Stream
	// Tags are the format (container) tags: creation_time, location,
	// com.apple.quicktime.location.ISO6709, ...
	Tags map[string]string
}

// MainVideo returns the first video stream that is not an attached picture
// (the stream ffmpeg's "-map 0:V:0" selects).
func (i Info) MainVideo() (Stream, bool) {
	for _, s := range i.Streams {
		if s.Kind == "video" && !s.AttachedPic {
			return s, true
		}
	}
	return Stream{}, false
}

// IsHEVC reports whether the main video stream is already HEVC.
func (i Info) IsHEVC() bool {
	v, ok := i.MainVideo()
	return ok && v.Codec == "hevc"
}

// Count returns the number of streams of a kind (attached pictures count as
// video).
func (i Info) Count(kind string) int {
	n := 0
	for _, s := range i.Streams {
		if s.Kind == kind {
			n++
		}
	}
	return n
}

// videoCount counts real (not attached picture) video streams.
func (i Info) videoCount() int {
	n := 0
	for _, s := range i.Streams {
		if s.Kind == "video" && !s.AttachedPic {
			n++
		}
	}
	return n
}

// ffprobe JSON (-show_format -show_streams -of json).
type probeJSON struct {
	Streams []struct {
		Index          int               `json:"index"`
		CodecType      string            `json:"codec_type"`
		CodecName      string            `json:"codec_name"`
		CodecTagString string            `json:"codec_tag_string"`
		PixFmt         string            `json:"pix_fmt"`
		Profile        string            `json:"profile"`
		Width          int               `json:"width"`
		Height         int               `json:"height"`
		ColorPrimaries string            `json:"color_primaries"`
		ColorTransfer  string            `json:"color_transfer"`
		ColorSpace     string            `json:"color_space"`
		ColorRange     string            `json:"color_range"`
		Duration       string            `json:"duration"`
		NbFrames       string            `json:"nb_frames"`
		BitRate        string            `json:"bit_rate"`
		AvgFrameRate   string            `json:"avg_frame_rate"`
		RFrameRate     string            `json:"r_frame_rate"`
		Disposition    map[string]int    `json:"disposition"`
		Tags           map[string]string `json:"tags"`
		SideData       []struct {
			Type     string   `json:"side_data_type"`
			Rotation *float64 `json:"rotation"`
		} `json:"side_data_list"`
	} `json:"streams"`
	Format struct {
		FormatName string            `json:"format_name"`
		Duration   string            `json:"duration"`
		Size       string            `json:"size"`
		BitRate    string            `json:"bit_rate"`
		Tags       map[string]string `json:"tags"`
	} `json:"format"`
}

// Probe runs ffprobe on input (a local path or a URL with a scheme, e.g.
// https://...). A file that ffprobe cannot read, or that has no decodable
// video stream or no duration, yields an error wrapping ErrBadInput with
// ffprobe's message (the partial Info is still returned). A missing file,
// a network failure or a cancelled ctx are not ErrBadInput.
func Probe(ctx context.Context, input string) (Info, error) {
	return probeWith(ctx, input, (*exec.Cmd).Start)
}

// probeWith is Probe, starting ffprobe with start (startIdle: at the
// SCHED_IDLE priority).
func probeWith(ctx context.Context, input string, start func(*exec.Cmd) error) (Info, error) {
	info := Info{Path: input, Tags: map[string]string{}}
	// ffmpeg-go's Probe has no context parameter, so the same arguments are
	// built with its KwArgs renderer and run under ctx here.
	args := ffmpeg.ConvertKwargsToCmdLineArgs(ffmpeg.KwArgs{
		"v": "error", "show_format": "", "show_streams": "", "of": "json",
	})
	args = append(args, trustArgs(input)...)
	args = append(args, "-i", ffURL(input))
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ffprobe", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := start(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		msg := oneLine(stderr.String())
		switch {
		case ctx.Err() != nil:
			return info, fmt.Errorf("probe %s: %w", input, ctx.Err())
		case errors.Is(err, exec.ErrNotFound):
			return info, fmt.Errorf("probe %s: %w", input, err)
		case environmental(msg):
			return info, fmt.Errorf("probe %s: %s (%w)", input, msg, err)
		case msg == "":
			return info, fmt.Errorf("probe %s: ffprobe: %w", input, err)
		}
		return info, fmt.Errorf("%w: %s: %s", ErrBadInput, input, msg)
	}
	var pj probeJSON
	if err := json.Unmarshal(stdout.Bytes(), &pj); err != nil {
		return info, fmt.Errorf("probe %s: parse ffprobe output: %w", input, err)
	}
	info.FormatName = pj.Format.FormatName
	info.Duration = parseFloat(pj.Format.Duration)
	info.Size = int64(parseFloat(pj.Format.Size))
	info.BitRate = int64(parseFloat(pj.Format.BitRate))
	for k, v := range pj.Format.Tags {
		info.Tags[k] = v
	}
	for _, s := range pj.Streams {
		st := Stream{
			Index: s.Index, Kind: s.CodecType, Codec: s.CodecName, CodecTag: s.CodecTagString,
			PixFmt: s.PixFmt, Profile: s.Profile, Width: s.Width, Height: s.Height,
			ColorPrimaries: s.ColorPrimaries, ColorTransfer: s.ColorTransfer,
			ColorSpace: s.ColorSpace, ColorRange: s.ColorRange,
			AttachedPic: s.Disposition["attached_pic"] == 1,
			Language:    s.Tags["language"],
			Duration:    parseFloat(s.Duration),
			Frames:      int64(parseFloat(s.NbFrames)),
			FrameRate:   parseRate(s.AvgFrameRate),
			BitRate:     int64(parseFloat(s.BitRate)),
		}
		if st.FrameRate == 0 {
			st.FrameRate = parseRate(s.RFrameRate)
		}
		for _, sd := range s.SideData {
			if sd.Rotation != nil {
				st.Rotation = int(math.Round(*sd.Rotation))
			}
		}
		if r, ok := s.Tags["rotate"]; ok && st.Rotation == 0 { // older ffprobe
			st.Rotation, _ = strconv.Atoi(r)
		}
		info.Streams = append(info.Streams, st)
	}
	v, ok := info.MainVideo()
	if info.Duration <= 0 && ok {
		info.Duration = v.Duration
	}
	switch {
	case len(info.Streams) == 0:
		return info, fmt.Errorf("%w: %s: no streams (format %s)", ErrBadInput, input, info.FormatName)
	case !ok:
		return info, fmt.Errorf("%w: %s: no video stream", ErrBadInput, input)
	case v.Codec == "" || v.Width <= 0 || v.Height <= 0:
		return info, fmt.Errorf("%w: %s: video stream %d cannot be decoded (codec %q, %dx%d)",
			ErrBadInput, input, v.Index, v.Codec, v.Width, v.Height)
	case info.Duration <= 0:
		return info, fmt.Errorf("%w: %s: unknown duration (format %s)", ErrBadInput, input, info.FormatName)
	}
	return info, nil
}

// ffURL turns a local path into an unambiguous ffmpeg URL, so names with a
// colon or a leading dash are not read as protocols or options.
func ffURL(p string) string {
	if strings.Contains(p, "://") || strings.HasPrefix(p, "file:") || p == "-" {
		return p
	}
	return "file:" + p
}

// environmental reports ffmpeg messages about the surroundings rather than
// the file's content: missing files, permissions, network trouble.
func environmental(msg string) bool {
	for _, s := range []string{
		"No such file or directory", "Permission denied", "Connection refused",
		"Connection reset", "Connection timed out", "timed out", "Network is unreachable",
		"Server returned", "Input/output error", "Failed to resolve hostname",
		"No space left on device", "Cannot allocate memory", "Too many open files",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// parseRate parses an ffprobe rational such as "30000/1001"; 0 when it is
// unknown ("0/0") or not a number.
func parseRate(s string) float64 {
	n, d, ok := strings.Cut(s, "/")
	if !ok {
		return parseFloat(s)
	}
	if den := parseFloat(d); den > 0 {
		return parseFloat(n) / den
	}
	return 0
}

func parseFloat(s string) float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// oneLine joins a multi-line ffmpeg message into one line.
func oneLine(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, " | ")
}
