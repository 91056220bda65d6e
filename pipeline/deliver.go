package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"lookout/sink"
)

// deliver receives captioned batches, puts them back into batcher order and
// writes them to every sink. Batches that are ready together are written in
// one call per sink. It returns when in is closed and everything was
// delivered, or on Kill with an error counting undelivered records.
func (p *Pipeline) deliver(in <-chan *doneBatch) error {
	pending := map[uint64]*doneBatch{}
	var next uint64
	hard := p.hardCtx.Done()
	for {
		select {
		case d, ok := <-in:
			if !ok {
				for _, d := range pending {
					p.undelivered.Add(int64(len(d.recs)))
				}
				return nil
			}
			pending[d.seq] = d
		case <-hard:
			for _, d := range pending {
				p.undelivered.Add(int64(len(d.recs)))
			}
			return nil
		}
		var recs []sink.Record
		var acks []ack
		for {
			d, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			for i, r := range d.recs {
				var derived []sink.Record
				if p.cfg.Derive != nil {
					derived = p.cfg.Derive(r)
				}
				if r, publish := p.emitter.filter(r, d.emits[i]); publish {
					recs = append(recs, r)
				} else {
					p.m.RecordsSuppressed.WithLabelValues(r.SourceID).Inc()
				}
				recs = append(recs, derived...)
			}
			acks = append(acks, d.acks...)
		}
		if len(recs) == 0 {
			p.ackAll(acks) // suppressed records still move checkpoints
			continue
		}
		now := time.Now()
		for i := range recs {
			t := recs[i].CaptureTime
			if !t.IsZero() {
				recs[i].LatencyMillis.Total = elapsedMillis(now.Sub(t))
			}
		}
		if err := p.writeAll(recs); err != nil {
			p.undelivered.Add(int64(len(recs)))
			for _, d := range pending {
				p.undelivered.Add(int64(len(d.recs)))
			}
			return err
		}
		for _, r := range recs {
			p.m.Records.WithLabelValues(r.Kind).Inc()
		}
		p.ackAll(acks)
	}
}

// ackAll reports frames whose records every sink has (or that published
// nothing): latency, and OnDelivered (checkpoints, progress).
func (p *Pipeline) ackAll(acks []ack) {
	delivered := time.Now()
	for _, a := range acks {
		p.m.CaptionLatency.Observe(delivered.Sub(a.captured).Seconds())
		if p.cfg.OnDelivered != nil {
			p.cfg.OnDelivered(a.source, a.pts)
		}
	}
}

// writeAll writes recs to every sink, concurrently, each until it succeeds.
// It fails only on Kill.
func (p *Pipeline) writeAll(recs []sink.Record) error {
	if len(p.sinks) == 1 {
		if own := p.sinks[0].own(recs, false); len(own) > 0 {
			return p.writeSink(p.sinks[0], own)
		}
		return nil
	}
	errs := make([]error, len(p.sinks))
	var wg sync.WaitGroup
	for i, s := range p.sinks {
		own := s.own(recs, true) // a sink may reorder or trim its slice
		if len(own) == 0 {
			continue
		}
		wg.Go(func() { errs[i] = p.writeSink(s, own) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// own returns the records of recs the sink takes: those of the kinds it
// accepts when it is a KindFilter, else all of them (a copy when asked).
func (s *sinkSlot) own(recs []sink.Record, copied bool) []sink.Record {
	f, ok := s.raw.(KindFilter)
	if !ok {
		if copied {
			return append([]sink.Record(nil), recs...)
		}
		return recs
	}
	var out []sink.Record
	for _, r := range recs {
		if f.Accepts(r.Kind) {
			out = append(out, r)
		}
	}
	return out
}

// writeSink writes recs to one sink, each attempt bounded by SinkTimeout,
// retrying failures with backoff until success or Kill. Failures are
// counted (by the metered sink), logged once per LogInterval and reported
// by Ready until a write succeeds.
func (p *Pipeline) writeSink(s *sinkSlot, recs []sink.Record) error {
	bo := newBackoff(p.cfg.SinkRetryMin, p.cfg.SinkRetryMax, DefaultRestartJitter)
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(p.hardCtx, p.cfg.SinkTimeout)
		err := s.s.Write(ctx, recs)
		cancel()
		if err == nil {
			if s.setErr(nil) {
				p.limit.forget("sink/" + s.name)
				p.log.Info().Str("sink", s.name).Int("attempts", attempt).Msg("sink recovered")
			}
			return nil
		}
		if p.hardCtx.Err() != nil {
			return fmt.Errorf("sink %s: %d records not written at kill: %w", s.name, len(recs), err)
		}
		s.setErr(err)
		delay := bo.Next()
		if ok, held := p.limit.allow("sink/" + s.name); ok {
			p.log.Error().Err(err).Str("sink", s.name).Int("records", len(recs)).Int("attempt", attempt).
				Int("failures_held_back", held).Int64("retry_in_ms", delay.Milliseconds()).
				Msg("sink write failed; retrying (records are kept, the pipeline waits)")
		}
		if !sleep(p.hardCtx, delay) {
			return fmt.Errorf("sink %s: %d records not written at kill: %w", s.name, len(recs), err)
		}
	}
}
