package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"lookout/sink"
)

// isPermanentAt reports whether err says the broker refused message i for
// good.
func isPermanentAt(err error, i int) bool {
	var de *sink.DeliveryError
	if !errors.As(err, &de) {
		return false
	}
	for _, p := range de.Permanent {
		if p == i {
			return true
		}
	}
	return false
}

// sendAlone sends the oldest spooled record by itself. It returns true when
// the record left the spool: acknowledged, or refused for good and moved to
// rejected.jsonl in the spool directory.
func (s *Sink) sendAlone(e Entry) bool {
	one, err := s.spool.Peek(1)
	if err != nil || len(one) != 1 || one[0].seq != e.seq {
		s.spool.Release()
		return false
	}
	ctx, cancel := context.WithTimeout(s.runCtx, s.cfg.SendTimeout)
	err = s.p.Produce(ctx, []sink.Message{entryMessage(e)})
	cancel()
	switch {
	case err == nil:
		s.spool.Ack(one)
		s.setUp()
		return true
	case isPermanentAt(err, 0):
		if rerr := s.reject(e, err); rerr != nil {
			s.log.Error().Err(rerr).Msg("cannot set a refused record aside; it stays in the spool")
			s.spool.Release()
			return false
		}
		s.spool.Ack(one)
		s.rejected.Add(1)
		s.cfg.Metrics.Rejected(e.SourceID, 1)
		id, _ := payloadKeys(e.Payload)
		s.log.Error().Err(err).Str("source", e.SourceID).Str("id", id).
			Str("file", filepath.Join(s.cfg.Spool.Dir, RejectedFile)).
			Msg("kafka refused a record for good; moved it to the rejected file")
		return true
	}
	s.spool.Release()
	return false
}

// RejectedFile, in the spool directory, holds the records the broker
// refused for good, one JSON record per line.
const RejectedFile = "rejected.jsonl"

// reject appends a refused record to rejected.jsonl (fsync'd).
func (s *Sink) reject(e Entry, _ error) error {
	f, err := os.OpenFile(filepath.Join(s.cfg.Spool.Dir, RejectedFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open %s: %w", RejectedFile, err)
	}
	line := append(append([]byte{}, e.Payload...), '\n')
	if _, err := f.Write(line); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", RejectedFile, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("fsync %s: %w", RejectedFile, err)
	}
	return f.Close()
}
