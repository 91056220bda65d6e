package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Spool segment layout (all integers little endian):
//
//	file   = magic(8) frame*
//	frame  = length(4) crc(4) flags(1) unix_nanos(8) payload(length)
//
// crc is CRC-32C (Castagnoli) over flags, unix_nanos and payload. length
// counts the payload only. A frame is valid when its length is at most
// MaxRecordBytes and its checksum matches.
const (
	segmentMagic     = "LKSPOOL1"
	frameHeaderBytes = 17
	// MaxRecordBytes bounds one spooled record's payload (16 MiB); a
	// larger length field marks corruption.
	MaxRecordBytes = 16 << 20

	flagLive byte = 1 << 0
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrBadSegment reports a spool segment that does not start with the
// segment magic.
var ErrBadSegment = errors.New("not a lookout spool segment (bad magic)")

// SegmentFrame is one valid frame found in a segment.
type SegmentFrame struct {
	// Offset is where the frame starts in the segment file.
	Offset int64
	// Size is the whole frame's size in bytes, header included.
	Size int
	// Live marks a record of a live source (droppable when the spool is full).
	Live bool
	// UnixNanos is when the record was spooled.
	UnixNanos int64
	// Payload is the record as JSON; it aliases the parsed buffer.
	Payload []byte
}

// SegmentDamage describes bytes of a segment that hold no valid frame.
type SegmentDamage struct {
	// Offset and Length locate the damaged bytes.
	Offset, Length int64
	// Torn is true when the damage runs to the end of the segment (an
	// interrupted append), false for garbage followed by valid frames.
	Torn bool
}

func (d SegmentDamage) String() string {
	if d.Torn {
		return fmt.Sprintf("torn tail: %d bytes at offset %d", d.Length, d.Offset)
	}
	return fmt.Sprintf("corrupt: %d bytes at offset %d skipped", d.Length, d.Offset)
}

// appendFrame appends one encoded frame to dst.
func appendFrame(dst []byte, live bool, unixNanos int64, payload []byte) []byte {
	var hdr [frameHeaderBytes]byte
	binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(payload)))
	if live {
		hdr[8] = flagLive
	}
	binary.LittleEndian.PutUint64(hdr[9:17], uint64(unixNanos))
	crc := crc32.Update(0, castagnoli, hdr[8:17])
	crc = crc32.Update(crc, castagnoli, payload)
	binary.LittleEndian.PutUint32(hdr[4:8], crc)
	dst = append(dst, hdr[:]...)
	return append(dst, payload...)
}

// frameAt decodes the frame at data[off:]. ok is false when no valid frame
// starts there; short is true when the bytes end before the frame would.
func frameAt(data []byte, off int) (f SegmentFrame, ok, short bool) {
	if len(data)-off < frameHeaderBytes {
		return f, false, true
	}
	n := binary.LittleEndian.Uint32(data[off : off+4])
	if n > MaxRecordBytes {
		return f, false, false
	}
	end := off + frameHeaderBytes + int(n)
	if end > len(data) {
		return f, false, true
	}
	want := binary.LittleEndian.Uint32(data[off+4 : off+8])
	if crc32.Checksum(data[off+8:end], castagnoli) != want {
		return f, false, false
	}
	return SegmentFrame{
		Offset:    int64(off),
		Size:      end - off,
		Live:      data[off+8]&flagLive != 0,
		UnixNanos: int64(binary.LittleEndian.Uint64(data[off+9 : off+17])),
		Payload:   data[off+frameHeaderBytes : end],
	}, true, false
}

// ParseSegment reads every valid frame of a segment file's contents.
// Damage never stops it: a run of bytes that holds no valid frame is
// reported in damage and skipped by searching for the next offset where a
// valid frame starts; damage that reaches the end is a torn tail. The only
// error is ErrBadSegment, for data that does not begin with the magic.
func ParseSegment(data []byte) (frames []SegmentFrame, damage []SegmentDamage, err error) {
	if len(data) < len(segmentMagic) || string(data[:len(segmentMagic)]) != segmentMagic {
		return nil, nil, ErrBadSegment
	}
	off := len(segmentMagic)
	for off < len(data) {
		f, ok, short := frameAt(data, off)
		if ok {
			frames = append(frames, f)
			off += f.Size
			continue
		}
		if short && !anyFrameAfter(data, off+1) {
			damage = append(damage, SegmentDamage{Offset: int64(off), Length: int64(len(data) - off), Torn: true})
			break
		}
		// Resynchronise: the next offset where a valid frame starts.
		next := off + 1
		for ; next < len(data); next++ {
			if _, ok, _ := frameAt(data, next); ok {
				break
			}
		}
		d := SegmentDamage{Offset: int64(off), Length: int64(next - off), Torn: next >= len(data)}
		damage = append(damage, d)
		off = next
	}
	return frames, damage, nil
}

// anyFrameAfter reports whether a valid frame starts anywhere at or after off.
func anyFrameAfter(data []byte, off int) bool {
	for ; off+frameHeaderBytes <= len(data); off++ {
		if _, ok, _ := frameAt(data, off); ok {
			return true
		}
	}
	return false
}
