package spool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Append writes items durably, in order. Items whose policy is Block wait
// for room until ctx ends (then ctx's error is returned and the items not yet
// appended are not spooled). DropOldest items make room by dropping the
// oldest unsent live records not being replayed; if that is not enough
// the item itself is dropped. It returns how many items were dropped.
func (s *Spool) Append(ctx context.Context, items []Item, policy FullPolicy) (dropped int, err error) {
	now := time.Now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	var buf []byte
	var pend []spoolEntry
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		err := s.writeFrames(buf, pend)
		buf, pend = buf[:0], pend[:0]
		return err
	}
	for _, it := range items {
		if s.closed {
			return dropped, ErrClosed
		}
		if len(it.Payload) > MaxRecordBytes {
			return dropped, fmt.Errorf("spool: record of source %q is %d bytes, over the %d byte limit", it.SourceID, len(it.Payload), MaxRecordBytes)
		}
		size := int64(frameHeaderBytes + len(it.Payload))
		pendingBytes := int64(len(buf))
		for s.bytes+pendingBytes+size > s.cfg.MaxBytes && !s.closed {
			if policy == DropOldest {
				if !s.dropOldestLocked() {
					break
				}
				continue
			}
			// Block: make what we have durable, then wait for room.
			if err := flush(); err != nil {
				return dropped, err
			}
			pendingBytes = 0
			if s.bytes+size <= s.cfg.MaxBytes || (s.bytes == 0 && len(s.entries) == 0) {
				break
			}
			ch := s.space
			s.mu.Unlock()
			select {
			case <-ch:
				s.mu.Lock()
			case <-ctx.Done():
				s.mu.Lock()
				return dropped, fmt.Errorf("spool full (%d of %d bytes) while waiting for room: %w", s.bytes, s.cfg.MaxBytes, ctx.Err())
			}
		}
		if s.closed {
			return dropped, ErrClosed
		}
		if policy == DropOldest && s.bytes+int64(len(buf))+size > s.cfg.MaxBytes {
			dropped++
			s.dropped++
			s.noteDrop(it.SourceID)
			continue
		}
		if len(buf) > 0 && s.needRotate(int64(len(buf))+size) {
			if err := flush(); err != nil {
				return dropped, err
			}
		}
		if len(buf) == 0 && s.needRotate(size) {
			if err := s.rotate(); err != nil {
				return dropped, err
			}
		}
		seg := s.segs[len(s.segs)-1]
		pend = append(pend, spoolEntry{seg: seg.id, off: seg.size + int64(len(buf)), size: int(size), source: it.SourceID, live: it.Live, at: now})
		buf = appendFrame(buf, it.Live, now, it.Payload)
	}
	return dropped, flush()
}

func (s *Spool) needRotate(extra int64) bool {
	if !s.head || len(s.segs) == 0 {
		return true
	}
	seg := s.segs[len(s.segs)-1]
	return seg.size > int64(len(segmentMagic)) && seg.size+extra > s.cfg.SegmentBytes
}

func (s *Spool) rotate() error {
	var id uint64 = 1
	if n := len(s.segs); n > 0 {
		id = s.segs[n-1].id + 1
	} else if cs, _ := s.readCursor(); cs >= id {
		id = cs + 1
	}
	path := filepath.Join(s.cfg.Dir, segName(id))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("spool: create segment %s: %w", path, err)
	}
	if _, err := f.Write([]byte(segmentMagic)); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("spool: write segment %s: %w", path, err)
	}
	if d, err := os.Open(s.cfg.Dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	s.segs = append(s.segs, &segment{id: id, f: f, size: int64(len(segmentMagic))})
	s.disk += int64(len(segmentMagic))
	s.head = true
	return nil
}

func (s *Spool) writeFrames(buf []byte, pend []spoolEntry) error {
	seg := s.segs[len(s.segs)-1]
	if _, err := seg.f.WriteAt(buf, seg.size); err != nil {
		// A partial write leaves a torn tail; start a new segment next time.
		s.head = false
		return fmt.Errorf("spool: append to %s: %w", seg.f.Name(), err)
	}
	if err := seg.f.Sync(); err != nil {
		s.head = false
		return fmt.Errorf("spool: fsync %s: %w", seg.f.Name(), err)
	}
	seg.size += int64(len(buf))
	s.disk += int64(len(buf))
	for _, e := range pend {
		e.seq = s.nextSeq
		s.nextSeq++
		s.entries = append(s.entries, e)
		s.bytes += int64(e.size)
		seg.pending++
	}
	return nil
}

// dropOldestLocked drops the oldest live entry that is not in flight.
func (s *Spool) dropOldestLocked() bool {
	for i := s.inflight; i < len(s.entries); i++ {
		e := &s.entries[i]
		if e.dropped || !e.live {
			continue
		}
		e.dropped = true
		s.bytes -= int64(e.size)
		s.dropped++
		s.noteDrop(e.source)
		s.segFor(e.seg).pending--
		s.trimLocked()
		return true
	}
	return false
}

func (s *Spool) noteDrop(src string) {
	if s.cfg.OnDrop != nil {
		s.cfg.OnDrop(src)
	}
}

func (s *Spool) segFor(id uint64) *segment {
	for _, g := range s.segs {
		if g.id == id {
			return g
		}
	}
	return &segment{} // unreachable: every entry's segment is open
}
