// Package mp4box reads the header of an ISO base media file (MP4, QuickTime
// .mov, 3GP): the movie's and every track's duration, each track's handler
// (vide, soun, tmcd, …) and its first sample entry (avc1, hvc1, mp4a, …)
// with the picture size. It reads only the boxes it needs through
// io.ReaderAt (a few hundred bytes of a file of any size, the moov box
// wherever it is) and never the media data, so it answers in microseconds
// where spawning ffprobe costs tens of milliseconds.
//
// It is a fast path, not a demuxer: anything it does not fully understand
// (fragmented files, compressed movie headers, boxes that do not add up)
// is an error, and callers fall back to ffprobe.
package mp4box

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrNotISOBMFF means the data does not start like an ISO base media file.
var ErrNotISOBMFF = errors.New("not an ISO base media file")

// ErrUnsupported means the file is ISO BMFF but this package does not read
// it (fragmented, compressed movie header, no movie box before the data
// ends): use a real demuxer.
var ErrUnsupported = errors.New("unsupported ISO base media file")

// Movie is what the header says.
type Movie struct {
	MajorBrand string // ftyp major brand ("isom", "qt  ", …); empty without ftyp
	Timescale  uint32 // mvhd units per second
	Duration   uint64 // mvhd duration, edit lists applied, in Timescale units
	Tracks     []Track
}

// Seconds is the movie's duration in seconds.
func (m Movie) Seconds() float64 {
	if m.Timescale == 0 {
		return 0
	}
	return float64(m.Duration) / float64(m.Timescale)
}

// Track is one trak box.
type Track struct {
	ID      uint32
	Enabled bool   // tkhd flag
	Handler string // mdia/hdlr handler type: vide, soun, tmcd, meta, text, sbtl, subt, …
	// Format is the first sample entry's four-character code: avc1, avc3,
	// hvc1, hev1, mp4a, ac-3, tmcd, …; empty when the track has none.
	Format string
	// SampleEntries is the number of sample descriptions (more than one:
	// the format changes within the track).
	SampleEntries int
	Width, Height int    // visual sample entries only
	Timescale     uint32 // mdhd
	Duration      uint64 // mdhd, in Timescale units (media time, before edits)
	// ObjectType is the MPEG-4 objectTypeIndication of an mp4a entry's esds
	// (0x40 AAC, 0x6B MP3, …); 0 when absent.
	ObjectType byte
	// SampleBytes is the sum of the track's sample sizes (stbl/stsz): its
	// media data, from which a bit rate follows; 0 when the track has no
	// stsz (stz2, or a table too large to read here).
	SampleBytes int64
}

// BitRate is the track's average bit rate in bits per second (SampleBytes
// over its media duration, as ffprobe computes a stream's bit_rate); 0 when
// either is unknown.
func (t Track) BitRate() int64 {
	s := t.Seconds()
	if t.SampleBytes <= 0 || s <= 0 {
		return 0
	}
	return int64(float64(t.SampleBytes*8) / s)
}

// Seconds is the track's media duration in seconds.
func (t Track) Seconds() float64 {
	if t.Timescale == 0 {
		return 0
	}
	return float64(t.Duration) / float64(t.Timescale)
}

// topLevel are the box types that may open a file (what demuxers accept as
// the start of a QuickTime / ISO BMFF file).
var topLevel = map[string]bool{
	"ftyp": true, "moov": true, "mdat": true, "free": true, "skip": true,
	"wide": true, "pnot": true, "uuid": true, "styp": true,
}

// maxHeaderBox bounds the boxes read whole (mvhd, tkhd, mdhd, hdlr, one
// sample entry): real ones are tens to a few thousand bytes.
const maxHeaderBox = 1 << 20

// Read parses the header of the file r of the given size.
func Read(r io.ReaderAt, size int64) (Movie, error) {
	var m Movie
	var haveMoov bool
	for off, first := int64(0), true; off < size; first = false {
		if haveMoov && size-off < 8 {
			break // a few stray bytes after everything that matters
		}
		h, err := readHeader(r, off, size)
		if err != nil {
			if first {
				return m, fmt.Errorf("%w: %v", ErrNotISOBMFF, err)
			}
			return m, err
		}
		if first && !topLevel[h.typ] {
			return m, fmt.Errorf("%w: starts with %q", ErrNotISOBMFF, h.typ)
		}
		end := off + h.size
		if end > size {
			// Truncated: fine for the media data after a complete movie box
			// (players and ffprobe read such a file), fatal otherwise.
			if haveMoov && h.typ == "mdat" {
				break
			}
			return m, fmt.Errorf("%w: box %q at %d runs %d bytes past the end", ErrUnsupported, h.typ, off, end-size)
		}
		switch h.typ {
		case "ftyp":
			if b, err := readBody(r, h, 8); err == nil && len(b) >= 4 {
				m.MajorBrand = string(b[:4])
			}
		case "moov":
			if haveMoov {
				return m, fmt.Errorf("%w: two moov boxes", ErrUnsupported)
			}
			if err := readMoov(r, h, &m); err != nil {
				return m, err
			}
			haveMoov = true
		case "moof", "mfra", "sidx", "styp":
			return m, fmt.Errorf("%w: fragmented (%s box)", ErrUnsupported, h.typ)
		}
		off = end
	}
	if !haveMoov {
		return m, fmt.Errorf("%w: no moov box", ErrUnsupported)
	}
	return m, nil
}

// header is a box header.
type header struct {
	typ       string
	off, size int64 // box start and total size, header included
	hdr       int64 // header length (8, or 16 with a 64-bit size)
}

func (h header) body() (int64, int64) { return h.off + h.hdr, h.size - h.hdr }

// readHeader reads the box header at off; the box must fit in [off, limit)
// except at top level, where the caller decides about truncation.
func readHeader(r io.ReaderAt, off, limit int64) (header, error) {
	var b [16]byte
	if limit-off < 8 {
		return header{}, fmt.Errorf("%w: %d stray bytes at %d", ErrUnsupported, limit-off, off)
	}
	if _, err := r.ReadAt(b[:8], off); err != nil {
		return header{}, fmt.Errorf("read box header at %d: %w", off, err)
	}
	h := header{typ: string(b[4:8]), off: off, hdr: 8}
	for _, c := range b[4:8] {
		if (c < 0x20 || c > 0x7e) && c != 0xa9 { // printable, or © (QuickTime)
			return header{}, fmt.Errorf("%w: box type %q at %d is not a four-character code", ErrUnsupported, h.typ, off)
		}
	}
	switch sz := binary.BigEndian.Uint32(b[:4]); sz {
	case 0: // to the end of the enclosing space
		h.size = limit - off
	case 1:
		if _, err := r.ReadAt(b[8:16], off+8); err != nil {
			return header{}, fmt.Errorf("read box size at %d: %w", off, err)
		}
		h.hdr = 16
		large := binary.BigEndian.Uint64(b[8:16])
		if large > 1<<62 {
			return header{}, fmt.Errorf("%w: box %q at %d has size %d", ErrUnsupported, h.typ, off, large)
		}
		h.size = int64(large)
	default:
		h.size = int64(sz)
	}
	if h.size < h.hdr {
		return header{}, fmt.Errorf("%w: box %q at %d has size %d", ErrUnsupported, h.typ, off, h.size)
	}
	return h, nil
}

// children calls fn for each box inside h (starting skip bytes into the
// body), checking that they tile the body exactly.
func children(r io.ReaderAt, h header, skip int64, fn func(header) error) error {
	start, n := h.body()
	end := start + n
	for off := start + skip; off < end; {
		if end-off < 8 {
			// QuickTime may end a container with a 4-byte zero terminator.
			if end-off == 4 {
				return nil
			}
			return fmt.Errorf("%w: %d stray bytes at the end of %q", ErrUnsupported, end-off, h.typ)
		}
		c, err := readHeader(r, off, end)
		if err != nil {
			return err
		}
		if off+c.size > end {
			return fmt.Errorf("%w: box %q at %d overruns its parent %q", ErrUnsupported, c.typ, off, h.typ)
		}
		if err := fn(c); err != nil {
			return err
		}
		off += c.size
	}
	return nil
}

// readBody reads at most max bytes of h's body.
func readBody(r io.ReaderAt, h header, max int64) ([]byte, error) {
	start, n := h.body()
	if n > max {
		n = max
	}
	b := make([]byte, n)
	if _, err := r.ReadAt(b, start); err != nil {
		return nil, fmt.Errorf("read %q at %d: %w", h.typ, h.off, err)
	}
	return b, nil
}

// fullBody reads the whole body of a small box.
func fullBody(r io.ReaderAt, h header) ([]byte, error) {
	if _, n := h.body(); n > maxHeaderBox {
		return nil, fmt.Errorf("%w: %q box of %d bytes", ErrUnsupported, h.typ, n)
	}
	return readBody(r, h, maxHeaderBox)
}

func readMoov(r io.ReaderAt, moov header, m *Movie) error {
	var haveMvhd bool
	err := children(r, moov, 0, func(h header) error {
		switch h.typ {
		case "mvhd":
			b, err := fullBody(r, h)
			if err != nil {
				return err
			}
			ts, dur, err := timing(b)
			if err != nil {
				return fmt.Errorf("mvhd: %w", err)
			}
			m.Timescale, m.Duration, haveMvhd = ts, dur, true
		case "trak":
			t, err := readTrak(r, h)
			if err != nil {
				return err
			}
			m.Tracks = append(m.Tracks, t)
		case "mvex":
			return fmt.Errorf("%w: fragmented (mvex box)", ErrUnsupported)
		case "cmov":
			return fmt.Errorf("%w: compressed movie header", ErrUnsupported)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !haveMvhd {
		return fmt.Errorf("%w: moov without mvhd", ErrUnsupported)
	}
	return nil
}

// timing reads timescale and duration from an mvhd or mdhd body (both
// lay them out the same way after their creation and modification times).
func timing(b []byte) (uint32, uint64, error) {
	if len(b) < 4 {
		return 0, 0, fmt.Errorf("%w: short box", ErrUnsupported)
	}
	switch b[0] {
	case 0:
		if len(b) < 20 {
			return 0, 0, fmt.Errorf("%w: short box", ErrUnsupported)
		}
		d := uint64(binary.BigEndian.Uint32(b[16:20]))
		if d == 0xffffffff { // "unknown"
			d = 0
		}
		return binary.BigEndian.Uint32(b[12:16]), d, nil
	case 1:
		if len(b) < 32 {
			return 0, 0, fmt.Errorf("%w: short box", ErrUnsupported)
		}
		d := binary.BigEndian.Uint64(b[24:32])
		if d == 0xffffffffffffffff {
			d = 0
		}
		return binary.BigEndian.Uint32(b[20:24]), d, nil
	}
	return 0, 0, fmt.Errorf("%w: version %d", ErrUnsupported, b[0])
}

func readTrak(r io.ReaderAt, trak header) (Track, error) {
	var t Track
	var haveMdia bool
	err := children(r, trak, 0, func(h header) error {
		switch h.typ {
		case "tkhd":
			b, err := fullBody(r, h)
			if err != nil {
				return err
			}
			if len(b) < 24 {
				return fmt.Errorf("%w: short tkhd", ErrUnsupported)
			}
			t.Enabled = b[3]&1 != 0
			idAt := 12 // version 0: creation, modification (4 bytes each)
			if b[0] == 1 {
				idAt = 20
			}
			t.ID = binary.BigEndian.Uint32(b[idAt : idAt+4])
		case "mdia":
			haveMdia = true
			return readMdia(r, h, &t)
		}
		return nil
	})
	if err == nil && !haveMdia {
		err = fmt.Errorf("%w: track %d without mdia", ErrUnsupported, t.ID)
	}
	return t, err
}

func readMdia(r io.ReaderAt, mdia header, t *Track) error {
	var haveMdhd, haveHdlr bool
	err := children(r, mdia, 0, func(h header) error {
		switch h.typ {
		case "mdhd":
			b, err := fullBody(r, h)
			if err != nil {
				return err
			}
			if t.Timescale, t.Duration, err = timing(b); err != nil {
				return fmt.Errorf("mdhd: %w", err)
			}
			haveMdhd = true
		case "hdlr":
			b, err := readBody(r, h, 12)
			if err != nil {
				return err
			}
			if len(b) < 12 {
				return fmt.Errorf("%w: short hdlr", ErrUnsupported)
			}
			// version/flags, pre_defined (QuickTime: component type), handler type
			t.Handler, haveHdlr = string(b[8:12]), true
		case "minf":
			return children(r, h, 0, func(h header) error {
				if h.typ != "stbl" {
					return nil
				}
				return children(r, h, 0, func(h header) error {
					switch h.typ {
					case "stsd":
						return readStsd(r, h, t)
					case "stsz":
						t.SampleBytes = readStsz(r, h)
					}
					return nil
				})
			})
		}
		return nil
	})
	if err == nil && (!haveMdhd || !haveHdlr) {
		err = fmt.Errorf("%w: track %d without mdhd or hdlr", ErrUnsupported, t.ID)
	}
	return err
}

// maxStszTable bounds the sample size table read for SampleBytes: 4 MiB is
// a million samples (over 4 hours of 60 fps video).
const maxStszTable = 4 << 20

// readStsz sums the sample sizes of an stsz box; 0 when it cannot tell
// (the bit rate is then unknown, which is not an error: nothing else
// depends on it).
func readStsz(r io.ReaderAt, h header) int64 {
	b, err := readBody(r, h, 12)
	if err != nil || len(b) < 12 {
		return 0
	}
	// version/flags, sample_size (the same for all when not 0), sample_count
	size, count := int64(binary.BigEndian.Uint32(b[4:8])), int64(binary.BigEndian.Uint32(b[8:12]))
	if size != 0 {
		return size * count
	}
	if _, n := h.body(); count*4 > maxStszTable || n < 12+count*4 {
		return 0
	}
	t, err := readBody(r, h, 12+count*4)
	if err != nil {
		return 0
	}
	var sum int64
	for i := int64(12); i+4 <= int64(len(t)); i += 4 {
		sum += int64(binary.BigEndian.Uint32(t[i : i+4]))
	}
	return sum
}

// readStsd reads the first sample entry.
func readStsd(r io.ReaderAt, stsd header, t *Track) error {
	b, err := readBody(r, stsd, 8)
	if err != nil {
		return err
	}
	if len(b) < 8 {
		return fmt.Errorf("%w: short stsd", ErrUnsupported)
	}
	t.SampleEntries = int(binary.BigEndian.Uint32(b[4:8]))
	if t.SampleEntries == 0 {
		return nil
	}
	start, _ := stsd.body()
	e, err := readHeader(r, start+8, stsd.off+stsd.size)
	if err != nil {
		return err
	}
	if e.off+e.size > stsd.off+stsd.size {
		return fmt.Errorf("%w: sample entry overruns stsd", ErrUnsupported)
	}
	t.Format = e.typ
	body, err := fullBody(r, e)
	if err != nil {
		return err
	}
	// SampleEntry: reserved (6), data_reference_index (2); then for
	// VisualSampleEntry: pre_defined, reserved (4), pre_defined (12),
	// width (2), height (2).
	if t.Handler == "vide" && len(body) >= 28 {
		t.Width = int(binary.BigEndian.Uint16(body[24:26]))
		t.Height = int(binary.BigEndian.Uint16(body[26:28]))
	}
	if t.Format == "mp4a" {
		t.ObjectType = esdsObjectType(body)
	}
	return nil
}

// esdsObjectType finds the esds box among an mp4a entry's children (after
// the sound description, whose length depends on its QuickTime version)
// and returns its DecoderConfigDescriptor's objectTypeIndication.
func esdsObjectType(entry []byte) byte {
	if len(entry) < 28 {
		return 0
	}
	skip := 28 // SampleEntry 8 + AudioSampleEntry v0 20
	switch binary.BigEndian.Uint16(entry[8:10]) {
	case 1:
		skip += 16
	case 2:
		skip += 36
	}
	for off := skip; off+8 <= len(entry); {
		size := int(binary.BigEndian.Uint32(entry[off : off+4]))
		if size < 8 || off+size > len(entry) {
			return 0
		}
		switch string(entry[off+4 : off+8]) {
		case "esds":
			if size < 12 {
				return 0
			}
			return decoderObjectType(entry[off+12 : off+size]) // after version/flags
		case "wave": // QuickTime wraps the esds in a wave box
			if ot := esdsObjectType(append(make([]byte, 28), entry[off+8:off+size]...)); ot != 0 {
				return ot
			}
		}
		off += size
	}
	return 0
}

// decoderObjectType walks an ES_Descriptor (tag 3) to its
// DecoderConfigDescriptor (tag 4).
func decoderObjectType(d []byte) byte {
	tag, body, ok := descriptor(d)
	if !ok || tag != 3 || len(body) < 3 {
		return 0
	}
	flags := body[2]
	p := 3
	if flags&0x80 != 0 { // streamDependenceFlag
		p += 2
	}
	if flags&0x40 != 0 && p < len(body) { // URL_Flag
		p += 1 + int(body[p])
	}
	if flags&0x20 != 0 { // OCRstreamFlag
		p += 2
	}
	if p >= len(body) {
		return 0
	}
	tag, body, ok = descriptor(body[p:])
	if !ok || tag != 4 || len(body) < 1 {
		return 0
	}
	return body[0]
}

// descriptor splits an MPEG-4 descriptor: tag, then a length of 1-4 bytes
// of 7 bits each.
func descriptor(d []byte) (byte, []byte, bool) {
	if len(d) < 2 {
		return 0, nil, false
	}
	tag, n, p := d[0], 0, 1
	for i := 0; i < 4 && p < len(d); i++ {
		c := d[p]
		p++
		n = n<<7 | int(c&0x7f)
		if c&0x80 == 0 {
			break
		}
	}
	if p+n > len(d) {
		return 0, nil, false
	}
	return tag, d[p : p+n], true
}
