// Package spool keeps Kafka records on disk while the broker does not
// acknowledge them: a bounded, append-only, CRC-checked log of segment
// files (Spool), and a sink.Sink (Sink) that sends through a Producer
// directly while the spool is empty and replays the spool in order
// otherwise. It knows the broker only through Producer.
package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// FullPolicy says what a spool append does when the spool is full.
type FullPolicy int

const (
	// Block waits until replay frees room or the context ends (file
	// replays: nothing is lost).
	Block FullPolicy = iota
	// DropOldest drops the oldest unsent records of live sources to make
	// room, counting them; when no live record is left to drop, the new
	// record itself is dropped and counted (live sources).
	DropOldest
)

func (p FullPolicy) String() string {
	if p == DropOldest {
		return "drop-oldest"
	}
	return "block"
}

// DefaultMaxBytes is Config.MaxBytes's default: 1 GiB of unsent records.
const DefaultMaxBytes = 1 << 30

// Config configures a Spool.
type Config struct {
	// Dir holds the segment files; created when missing. Required.
	Dir string
	// MaxBytes bounds the bytes of unsent records. Default 1 GiB.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment file is started.
	// Default MaxBytes/16, clamped to [64 KiB, 64 MiB].
	SegmentBytes int64
	// Logger receives damage reports and drops. Default: none.
	Logger zerolog.Logger
	// OnDrop, when set, is called for each record dropped by DropOldest,
	// with its source id.
	OnDrop func(sourceID string)
}

// Item is one record to spool.
type Item struct {
	SourceID string
	// Live marks a record of a live source: DropOldest may drop it later.
	Live    bool
	Payload []byte
}

// Entry is an unsent record read back from the spool.
type Entry struct {
	SourceID string
	Payload  []byte
	// Spooled is when the record was appended.
	Spooled time.Time
	seq     uint64
}

// Stats is a snapshot of a spool's state.
type Stats struct {
	// Records and Bytes count unsent records (frames, headers included).
	Records int
	Bytes   int64
	// DiskBytes is the size of the segment files, sent or dropped records
	// that share a segment with unsent ones included.
	DiskBytes int64
	// OldestUnsent is the append time of the oldest unsent record (zero
	// when empty).
	OldestUnsent time.Time
	// Dropped counts records dropped by DropOldest since Open.
	Dropped int64
	// Damaged counts damaged byte runs found since Open.
	Damaged int64
}

// ErrClosed is returned by appends after Close.
var ErrClosed = errors.New("spool is closed")

type spoolEntry struct {
	seq     uint64 // monotonically increasing, never reused within a process
	seg     uint64 // segment id
	off     int64
	size    int
	source  string
	live    bool
	dropped bool
	at      int64
}

type segment struct {
	id      uint64
	f       *os.File
	size    int64
	pending int // entries of this segment not yet sent or dropped
}

// Spool is a bounded, append-only, checksummed log of records on disk:
// records are appended in order, read back in order, and trimmed once
// acknowledged. Appends are durable (fsync) when Append returns. A crash
// loses nothing that was appended; records acknowledged shortly before a
// crash may be read back again (at-least-once). Safe for concurrent use.
//
// Restart: Open scans every segment, skipping damaged bytes (reported, never
// fatal), and appends go to a new segment. A cursor file records how far
// the oldest segment has been acknowledged.
type Spool struct {
	cfg Config
	log zerolog.Logger

	mu       sync.Mutex
	space    chan struct{} // closed and replaced when room is freed
	segs     []*segment    // oldest first; the last one takes appends
	entries  []spoolEntry  // unsent (and dropped, not yet trimmed), oldest first
	inflight int           // leading entries handed out by Peek
	nextSeq  uint64
	bytes    int64
	disk     int64
	dropped  int64
	damaged  int64
	closed   bool
	head     bool // the last segment accepts appends
}

const cursorFile = "cursor"

// Open opens or creates the spool in cfg.Dir and loads the unsent
// records of existing segments.
func Open(cfg Config) (*Spool, error) {
	if cfg.Dir == "" {
		return nil, errors.New("spool: directory is not set: set the data directory in the config")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = min(max(cfg.MaxBytes/16, 64<<10), 64<<20)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", cfg.Dir, err)
	}
	s := &Spool{cfg: cfg, log: cfg.Logger, space: make(chan struct{})}
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

func segName(id uint64) string { return fmt.Sprintf("%020d.seg", id) }

func (s *Spool) load() error {
	names, err := filepath.Glob(filepath.Join(s.cfg.Dir, "*.seg"))
	if err != nil {
		return fmt.Errorf("spool: list %s: %w", s.cfg.Dir, err)
	}
	var ids []uint64
	for _, n := range names {
		id, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(n), ".seg"), 10, 64)
		if err != nil {
			s.log.Warn().Str("file", n).Msg("spool: ignoring a file with a non-numeric segment name")
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	curSeg, curOff := s.readCursor()
	for _, id := range ids {
		path := filepath.Join(s.cfg.Dir, segName(id))
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("spool: read segment %s: %w", path, err)
		}
		frames, damage, err := ParseSegment(data)
		if err != nil {
			s.damaged++
			s.log.Error().Str("segment", path).Int("bytes", len(data)).Msg("spool: segment has no valid header; moving it aside as .bad")
			_ = os.Rename(path, path+".bad")
			continue
		}
		for _, d := range damage {
			s.damaged++
			s.log.Error().Str("segment", path).Int64("offset", d.Offset).Int64("bytes", d.Length).Bool("torn", d.Torn).
				Msg("spool: damaged bytes skipped; records in them are lost")
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("spool: open segment %s: %w", path, err)
		}
		seg := &segment{id: id, f: f, size: int64(len(data))}
		for _, fr := range frames {
			if id < curSeg || (id == curSeg && fr.Offset < curOff) {
				continue // acknowledged before the restart
			}
			_, src := payloadKeys(fr.Payload)
			s.entries = append(s.entries, spoolEntry{seq: s.nextSeq, seg: id, off: fr.Offset, size: fr.Size, source: src, live: fr.Live, at: fr.UnixNanos})
			s.nextSeq++
			s.bytes += int64(fr.Size)
			seg.pending++
		}
		s.disk += seg.size
		if seg.pending == 0 {
			_ = f.Close()
			_ = os.Remove(path)
			s.disk -= seg.size
			continue
		}
		s.segs = append(s.segs, seg)
	}
	if len(s.entries) > 0 {
		s.log.Info().Int("records", len(s.entries)).Int64("bytes", s.bytes).Str("dir", s.cfg.Dir).Msg("spool: unsent records found")
	}
	return nil
}

// payloadKeys reads the id and source id of a spooled record; they only
// label logs, metrics and message headers, so a payload that is not a
// record yields "".
func payloadKeys(p []byte) (id, sourceID string) {
	var r struct {
		ID       string `json:"id"`
		SourceID string `json:"source_id"`
	}
	_ = json.Unmarshal(p, &r)
	return r.ID, r.SourceID
}

func (s *Spool) readCursor() (uint64, int64) {
	b, err := os.ReadFile(filepath.Join(s.cfg.Dir, cursorFile))
	if err != nil {
		return 0, 0
	}
	var seg uint64
	var off int64
	if _, err := fmt.Sscanf(string(b), "%d %d", &seg, &off); err != nil {
		s.log.Warn().Str("dir", s.cfg.Dir).Msg("spool: unreadable cursor file ignored; acknowledged records may be sent again")
		return 0, 0
	}
	return seg, off
}

// writeCursor records that everything before (seg, off) is acknowledged.
// Written atomically; not fsync'd: losing it only causes duplicates.
func (s *Spool) writeCursor(seg uint64, off int64) {
	tmp := filepath.Join(s.cfg.Dir, cursorFile+".tmp")
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %d\n", seg, off)), 0o640); err != nil {
		s.log.Warn().Err(err).Msg("spool: cursor not written; acknowledged records may be sent again after a restart")
		return
	}
	_ = os.Rename(tmp, filepath.Join(s.cfg.Dir, cursorFile))
}

// Peek returns up to n of the oldest unsent records, reading them from disk
// and checking their checksums. They stay in the spool until Ack. Records
// whose bytes went bad on disk since they were appended are reported,
// dropped and counted in Damaged. Peek must not be called again before Ack
// (one replayer).
func (s *Spool) Peek(n int) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Entry
	i := 0
	for ; i < len(s.entries) && len(out) < n; i++ {
		e := &s.entries[i]
		if e.dropped {
			continue
		}
		seg := s.segFor(e.seg)
		buf := make([]byte, e.size)
		_, err := seg.f.ReadAt(buf, e.off)
		if err != nil && !errors.Is(err, io.EOF) {
			s.inflight = i
			return out, fmt.Errorf("spool: read %s at %d: %w", seg.f.Name(), e.off, err)
		}
		fr, ok, _ := frameAt(buf, 0)
		if !ok || fr.Size != e.size {
			s.damaged++
			s.log.Error().Str("segment", seg.f.Name()).Int64("offset", e.off).Msg("spool: record failed its checksum on read-back; skipped")
			e.dropped = true
			s.bytes -= int64(e.size)
			seg.pending--
			continue
		}
		out = append(out, Entry{SourceID: e.source, Payload: fr.Payload, Spooled: time.Unix(0, fr.UnixNanos), seq: e.seq})
	}
	s.inflight = i
	return out, nil
}

// Ack marks the records returned by the last Peek as delivered and trims
// segments that hold nothing unsent.
func (s *Spool) Ack(acked []Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(acked) == 0 {
		s.inflight = 0
		return
	}
	last := acked[len(acked)-1].seq
	k := 0
	for ; k < len(s.entries) && s.entries[k].seq <= last; k++ {
		e := &s.entries[k]
		if !e.dropped {
			e.dropped = true
			s.bytes -= int64(e.size)
			s.segFor(e.seg).pending--
		}
	}
	s.inflight = 0
	s.trimLocked()
	if len(s.entries) > 0 {
		s.writeCursor(s.entries[0].seg, s.entries[0].off)
	} else if n := len(s.segs); n > 0 {
		s.writeCursor(s.segs[n-1].id, s.segs[n-1].size)
	}
}

// Release returns the records of the last Peek to the spool unsent.
func (s *Spool) Release() {
	s.mu.Lock()
	s.inflight = 0
	s.mu.Unlock()
}

// trimLocked pops finished entries off the front, deletes segments that
// hold nothing unsent and wakes blocked appenders.
func (s *Spool) trimLocked() {
	k := 0
	for k < len(s.entries) && s.entries[k].dropped {
		k++
	}
	if k > 0 {
		s.entries = s.entries[k:]
		s.inflight = max(0, s.inflight-k)
	}
	for len(s.segs) > 0 {
		g := s.segs[0]
		if g.pending > 0 || (len(s.segs) == 1 && s.head) {
			break
		}
		_ = g.f.Close()
		_ = os.Remove(g.f.Name())
		s.disk -= g.size
		s.segs = s.segs[1:]
	}
	close(s.space)
	s.space = make(chan struct{})
}

// Len is the number of unsent records, in flight ones included.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.entries {
		if !e.dropped {
			n++
		}
	}
	return n
}

// Stats returns a snapshot of the spool's state.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Bytes: s.bytes, DiskBytes: s.disk, Dropped: s.dropped, Damaged: s.damaged}
	for _, e := range s.entries {
		if e.dropped {
			continue
		}
		if st.Records == 0 {
			st.OldestUnsent = time.Unix(0, e.at)
		}
		st.Records++
	}
	return st
}

// Close closes the segment files; unsent records stay on disk for the next
// Open. Blocked appends return ErrClosed.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.space)
	s.space = make(chan struct{})
	return s.closeFiles()
}

func (s *Spool) closeFiles() error {
	var errs []error
	for _, g := range s.segs {
		if err := g.f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
