package mp4box

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// errFound stops a walk of the boxes once the video track is read.
var errFound = errors.New("found")

// KeyframeTimes returns the presentation times, in seconds and ascending,
// of the sync samples (stss; every sample when there is none) of the
// first video track of the file r of the given size: what ffprobe's
// packet list gives with the K flag (decode times from stts, composition
// offsets from ctts, shifted by the edit list's first media time, as
// ffmpeg's demuxer does for one edit). It reads only the movie box's
// sample tables. Files it cannot read exactly (fragmented, several
// edits, tables above 1 MiB, no video) are an error: use ffprobe.
func KeyframeTimes(r io.ReaderAt, size int64) ([]float64, error) {
	var moov header
	for off := int64(0); off < size; {
		h, err := readHeader(r, off, size)
		if err != nil {
			return nil, err
		}
		if h.typ == "moov" {
			moov = h
			break
		}
		if h.typ == "moof" {
			return nil, fmt.Errorf("%w: fragmented", ErrUnsupported)
		}
		off += h.size
	}
	if moov.typ == "" {
		return nil, fmt.Errorf("%w: no moov box", ErrUnsupported)
	}
	var times []float64
	err := children(r, moov, 0, func(h header) error {
		if h.typ != "trak" {
			return nil
		}
		t, ok, err := videoKeyframes(r, h)
		if err != nil {
			return err
		}
		if ok {
			times = t
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		sort.Float64s(times)
		return times, nil
	}
	if err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: no video track", ErrUnsupported)
}

// sampleTables are one track's boxes KeyframeTimes needs.
type sampleTables struct {
	handler          string
	timescale        uint32
	stts, ctts, stss []byte
	haveStss         bool
	editMedia        int64
	edits            int
}

// videoKeyframes reads a trak; ok is false for a track that is not video.
func videoKeyframes(r io.ReaderAt, trak header) ([]float64, bool, error) {
	var st sampleTables
	var walk func(h header) error
	walk = func(h header) error {
		var err error
		switch h.typ {
		case "edts", "mdia", "minf", "stbl":
			return children(r, h, 0, walk)
		case "elst":
			var b []byte
			if b, err = fullBody(r, h); err != nil {
				return err
			}
			st.edits, st.editMedia, err = firstEdit(b)
		case "mdhd":
			var b []byte
			if b, err = fullBody(r, h); err == nil {
				st.timescale, _, err = timing(b)
			}
		case "hdlr":
			var b []byte
			if b, err = readBody(r, h, 12); err == nil && len(b) == 12 {
				st.handler = string(b[8:12])
			}
		case "stts":
			st.stts, err = fullBody(r, h)
		case "ctts":
			st.ctts, err = fullBody(r, h)
		case "stss":
			st.stss, err = fullBody(r, h)
			st.haveStss = true
		}
		return err
	}
	if err := children(r, trak, 0, walk); err != nil {
		return nil, false, err
	}
	if st.handler != "vide" {
		return nil, false, nil
	}
	if st.timescale == 0 || st.stts == nil || st.edits > 1 {
		return nil, false, fmt.Errorf("%w: video track without a timescale or stts, or with %d edits", ErrUnsupported, st.edits)
	}
	t, err := st.keyTimes()
	return t, err == nil, err
}

// firstEdit returns the number of edits and the first one's media time
// (an empty edit, media time -1, is not read: ErrUnsupported).
func firstEdit(b []byte) (int, int64, error) {
	if len(b) < 8 {
		return 0, 0, fmt.Errorf("%w: short elst", ErrUnsupported)
	}
	n := int(binary.BigEndian.Uint32(b[4:8]))
	size := 12
	if b[0] == 1 {
		size = 20
	}
	if len(b) < 8+n*size {
		return 0, 0, fmt.Errorf("%w: short elst", ErrUnsupported)
	}
	if n == 0 {
		return 0, 0, nil
	}
	e := b[8:]
	m := int64(int32(binary.BigEndian.Uint32(e[4:8])))
	if b[0] == 1 {
		m = int64(binary.BigEndian.Uint64(e[8:16]))
	}
	if m < 0 {
		return 0, 0, fmt.Errorf("%w: empty edit", ErrUnsupported)
	}
	return n, m, nil
}

// keyTimes computes the sync samples' presentation times.
func (st sampleTables) keyTimes() ([]float64, error) {
	entries := func(b []byte, per int) ([]byte, int, error) {
		if len(b) < 8 {
			return nil, 0, fmt.Errorf("%w: short sample table", ErrUnsupported)
		}
		n := int(binary.BigEndian.Uint32(b[4:8]))
		if n < 0 || len(b)-8 < n*per {
			return nil, 0, fmt.Errorf("%w: sample table shorter than its %d entries", ErrUnsupported, n)
		}
		return b[8:], n, nil
	}
	sync := map[uint32]bool{}
	if st.haveStss {
		e, n, err := entries(st.stss, 4)
		if err != nil {
			return nil, err
		}
		for i := range n {
			sync[binary.BigEndian.Uint32(e[4*i:])] = true
		}
	}
	var offsets []int64 // per sample, from ctts
	if st.ctts != nil {
		e, n, err := entries(st.ctts, 8)
		if err != nil {
			return nil, err
		}
		for i := range n {
			count := binary.BigEndian.Uint32(e[8*i:])
			off := int64(binary.BigEndian.Uint32(e[8*i+4:]))
			if st.ctts[0] == 1 {
				off = int64(int32(uint32(off)))
			}
			if count > 1<<24 || len(offsets)+int(count) > 1<<24 {
				return nil, fmt.Errorf("%w: ctts too long", ErrUnsupported)
			}
			for range count {
				offsets = append(offsets, off)
			}
		}
	}
	e, n, err := entries(st.stts, 8)
	if err != nil {
		return nil, err
	}
	var times []float64
	var dts int64
	sample := uint32(0) // 0-based
	for i := range n {
		count := binary.BigEndian.Uint32(e[8*i:])
		delta := int64(binary.BigEndian.Uint32(e[8*i+4:]))
		if count > 1<<24 {
			return nil, fmt.Errorf("%w: stts entry of %d samples", ErrUnsupported, count)
		}
		for range count {
			if !st.haveStss || sync[sample+1] {
				pts := dts - st.editMedia
				if int(sample) < len(offsets) {
					pts += offsets[sample]
				}
				times = append(times, float64(pts)/float64(st.timescale))
			}
			dts += delta
			sample++
		}
	}
	return times, nil
}
