package spool

import (
	"bytes"
	"hash/crc32"
	"testing"
)

func segmentOf(frames ...[]byte) []byte {
	b := []byte(segmentMagic)
	for i, p := range frames {
		b = appendFrame(b, i%2 == 1, int64(i)*1e9, p)
	}
	return b
}

func FuzzParseSegment(f *testing.F) {
	good := segmentOf([]byte(`{"source_id":"a"}`), []byte(`{"source_id":"b"}`), nil)
	f.Add(good)
	f.Add(good[:len(good)-3])                                                                  // torn tail
	f.Add(append(append([]byte{}, good[:30]...), append([]byte("garbage!"), good[30:]...)...)) // garbage in the middle
	f.Add([]byte(segmentMagic))
	f.Add([]byte("LKSPOOL"))
	f.Add(append([]byte(segmentMagic), 0xff, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, data []byte) {
		frames, damage, err := ParseSegment(data)
		if err != nil {
			if err != ErrBadSegment {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		// Frames and damage tile the data after the magic, in order.
		covered := int64(len(segmentMagic))
		fi, di := 0, 0
		for fi < len(frames) || di < len(damage) {
			if fi < len(frames) && frames[fi].Offset == covered {
				fr := frames[fi]
				if len(fr.Payload) != fr.Size-frameHeaderBytes {
					t.Fatalf("frame %d: payload %d bytes, size %d", fi, len(fr.Payload), fr.Size)
				}
				if crc32.Checksum(data[fr.Offset+8:fr.Offset+int64(fr.Size)], castagnoli) != leUint32(data[fr.Offset+4:]) {
					t.Fatalf("frame %d has a bad checksum", fi)
				}
				covered += int64(fr.Size)
				fi++
				continue
			}
			if di < len(damage) && damage[di].Offset == covered && damage[di].Length > 0 {
				covered += damage[di].Length
				di++
				continue
			}
			t.Fatalf("gap or overlap at offset %d", covered)
		}
		if covered != int64(len(data)) {
			t.Fatalf("covered %d of %d bytes", covered, len(data))
		}
		// Re-encoding the frames gives a segment that parses without damage.
		var payloads [][]byte
		re := []byte(segmentMagic)
		for _, fr := range frames {
			payloads = append(payloads, fr.Payload)
			re = appendFrame(re, fr.Live, fr.UnixNanos, fr.Payload)
		}
		frames2, damage2, err := ParseSegment(re)
		if err != nil || len(damage2) != 0 || len(frames2) != len(frames) {
			t.Fatalf("re-encoded: %d frames, %d damage, err %v", len(frames2), len(damage2), err)
		}
		for i := range frames2 {
			if !bytes.Equal(frames2[i].Payload, payloads[i]) {
				t.Fatalf("frame %d payload changed", i)
			}
		}
	})
}

func leUint32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
