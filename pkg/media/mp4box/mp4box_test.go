package mp4box

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// box builds a box with a 32-bit size.
func box(typ string, body ...[]byte) []byte {
	b := bytes.Join(body, nil)
	out := binary.BigEndian.AppendUint32(nil, uint32(8+len(b)))
	return append(append(out, typ...), b...)
}

// largeBox builds a box with a 64-bit size.
func largeBox(typ string, body []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, 1)
	out = append(out, typ...)
	out = binary.BigEndian.AppendUint64(out, uint64(16+len(body)))
	return append(out, body...)
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// mvhdV1 and mdhd are version 1 (64-bit times) and version 0 headers.
func mvhdV1(ts uint32, dur uint64) []byte {
	return box("mvhd", []byte{1, 0, 0, 0}, u64(0), u64(0), u32(ts), u64(dur), make([]byte, 80))
}

func mdhd(ts, dur uint32) []byte {
	return box("mdhd", []byte{0, 0, 0, 0}, u32(0), u32(0), u32(ts), u32(dur), make([]byte, 4))
}

func hdlr(h string) []byte {
	return box("hdlr", []byte{0, 0, 0, 0}, u32(0), []byte(h), make([]byte, 12), []byte("x\x00"))
}

func visual(format string, w, h uint16) []byte {
	body := make([]byte, 78)
	binary.BigEndian.PutUint16(body[24:], w)
	binary.BigEndian.PutUint16(body[26:], h)
	return box(format, body)
}

func mp4a(objectType byte) []byte {
	es := []byte{3, 0x80, 0x80, 0x80, 18, 0, 1, 0, 4, 13, objectType, 0x15}
	es = append(es, make([]byte, 11)...)
	return box("mp4a", make([]byte, 28), box("esds", []byte{0, 0, 0, 0}, es))
}

func stsd(entry []byte) []byte {
	return box("stsd", []byte{0, 0, 0, 0}, u32(1), entry)
}

func trak(id uint32, handler string, entry []byte, ts, dur uint32) []byte {
	tkhd := box("tkhd", []byte{0, 0, 0, 3}, u32(0), u32(0), u32(id), make([]byte, 68))
	return box("trak", tkhd, box("mdia", mdhd(ts, dur), hdlr(handler),
		box("minf", box("vmhd", make([]byte, 12)), box("stbl", stsd(entry), box("stts", make([]byte, 8))))))
}

func movie() []byte {
	return box("moov", mvhdV1(1000, 2500),
		trak(1, "vide", visual("hvc1", 1920, 1080), 90000, 225000),
		trak(2, "soun", mp4a(0x40), 48000, 120000),
		trak(3, "tmcd", box("tmcd", make([]byte, 20)), 30000, 75000))
}

func TestReadMoovAtEndWithLargeMdat(t *testing.T) {
	file := bytes.Join([][]byte{
		box("ftyp", []byte("qt  "), u32(0), []byte("qt  ")),
		box("wide"),
		largeBox("mdat", make([]byte, 1000)),
		movie(),
	}, nil)
	m, err := Read(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	if m.MajorBrand != "qt  " || m.Seconds() != 2.5 || len(m.Tracks) != 3 {
		t.Fatalf("movie %+v", m)
	}
	v, a, d := m.Tracks[0], m.Tracks[1], m.Tracks[2]
	if v.ID != 1 || !v.Enabled || v.Handler != "vide" || v.Format != "hvc1" || v.Width != 1920 || v.Height != 1080 || v.Seconds() != 2.5 {
		t.Errorf("video %+v", v)
	}
	if a.Handler != "soun" || a.Format != "mp4a" || a.ObjectType != 0x40 || a.Seconds() != 2.5 {
		t.Errorf("audio %+v", a)
	}
	if d.Handler != "tmcd" || d.Format != "tmcd" || d.SampleEntries != 1 {
		t.Errorf("timecode %+v", d)
	}
}

func TestReadMdatToEndOfFile(t *testing.T) {
	// A last box of size 0 runs to the end of the file.
	mdat := append(u32(0), "mdat"...)
	file := bytes.Join([][]byte{box("ftyp", []byte("isom"), u32(0)), movie(), mdat, make([]byte, 100)}, nil)
	if _, err := Read(bytes.NewReader(file), int64(len(file))); err != nil {
		t.Fatal(err)
	}
}

func TestReadRefuses(t *testing.T) {
	ftyp := box("ftyp", []byte("isom"), u32(0))
	overrun := box("moov", mvhdV1(1000, 1))
	binary.BigEndian.PutUint32(overrun, uint32(len(overrun)+100)) // claims more than the file has
	childOverrun := movie()
	binary.BigEndian.PutUint32(childOverrun[8:], 1<<20) // mvhd claims more than moov
	for _, c := range []struct {
		name string
		file []byte
		want error
	}{
		{"text", []byte("This is not a video.\nIt is text.\n"), ErrNotISOBMFF},
		{"empty", nil, ErrUnsupported},
		{"unknown first box", box("abcd", make([]byte, 8)), ErrNotISOBMFF},
		{"no moov", bytes.Join([][]byte{ftyp, box("mdat", make([]byte, 50))}, nil), ErrUnsupported},
		{"moov past the end", bytes.Join([][]byte{ftyp, overrun}, nil), ErrUnsupported},
		{"child past its parent", bytes.Join([][]byte{ftyp, childOverrun}, nil), ErrUnsupported},
		{"fragmented", bytes.Join([][]byte{ftyp, box("moov", mvhdV1(1000, 0), box("mvex")), box("moof")}, nil), ErrUnsupported},
		{"binary box type", bytes.Join([][]byte{ftyp, box("\x00\x01\x02\x03", make([]byte, 8))}, nil), ErrUnsupported},
		{"two moov", bytes.Join([][]byte{ftyp, movie(), movie()}, nil), ErrUnsupported},
		{"short box size", bytes.Join([][]byte{ftyp, {0, 0, 0, 4, 'f', 'r', 'e', 'e'}}, nil), ErrUnsupported},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.file), int64(len(c.file)))
			if err == nil {
				t.Fatal("no error")
			}
			if c.want != nil && !errors.Is(err, c.want) && len(c.file) > 0 {
				t.Errorf("error %v, want %v", err, c.want)
			}
		})
	}
}

// FuzzRead: no input makes Read panic or loop.
func FuzzRead(f *testing.F) {
	f.Add(bytes.Join([][]byte{box("ftyp", []byte("isom"), u32(0)), movie(), box("mdat", make([]byte, 10))}, nil))
	f.Add(box("moov", mvhdV1(1000, 1), trak(1, "soun", mp4a(0x40), 48000, 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Read(bytes.NewReader(b), int64(len(b)))
	})
}
