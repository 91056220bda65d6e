package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"lookout/internal/logthrottle"
	"lookout/internal/retry"
	"lookout/sink"
)

// deliverer is the last stage: it receives captioned batches from the
// workers, puts them back into batcher order (which is per-source order,
// see the package doc), lets Config.Derive see each record (what it
// returns, the rules' alerts, follows the record), applies the sources'
// emit policies and writes the records to every sink (a KindFilter sink
// only its kinds). Batches that are ready together are written in
// one call per sink. A frame is acknowledged (OnDelivered, the latency
// metric) only after every sink accepted its records, or when its policy
// published nothing. A failed write is retried with backoff until it
// succeeds or hard ends: records are never dropped.
type deliverer struct {
	sinks   []*sinkSlot
	emitter *emitter
	// derive is Config.Derive: it sees every record before the emit policy,
	// and what it returns is published right after the record.
	derive func(rec sink.Record) []sink.Record
	// onDelivered is Config.OnDelivered.
	onDelivered func(sourceID string, ptsMillis int64)
	timeout     time.Duration // one Write or Flush, Config.SinkTimeout
	retryMin    time.Duration
	retryMax    time.Duration
	log         zerolog.Logger
	limit       *logthrottle.Throttle
	m           Metrics
	lost        *losses
}

// run delivers what arrives on in until in is closed and everything was
// delivered, or hard ends; then it counts what it still holds as
// undelivered. It fails only when a write is cut off by hard.
func (d *deliverer) run(hard context.Context, in <-chan *doneBatch) error {
	pending := map[uint64]*doneBatch{}
	var next uint64
	for {
		select {
		case b, ok := <-in:
			if !ok {
				d.lose(pending, nil)
				return nil
			}
			pending[b.seq] = b
		case <-hard.Done():
			d.lose(pending, nil)
			return nil
		}
		var ready []*doneBatch
		for b, ok := pending[next]; ok; b, ok = pending[next] {
			delete(pending, next)
			next++
			ready = append(ready, b)
		}
		recs, acks := d.publish(ready)
		if err := d.deliver(hard, recs, acks); err != nil {
			d.lose(pending, recs)
			return err
		}
	}
}

// lose counts the records of pending and recs as undelivered.
func (d *deliverer) lose(pending map[uint64]*doneBatch, recs []sink.Record) {
	n := len(recs)
	for _, b := range pending {
		n += len(b.recs)
	}
	d.lost.undelivered.Add(int64(n))
}

// publish applies the derive hook and the emit policies to the batches'
// records, in order, and returns the records to write and the frames to
// acknowledge after.
func (d *deliverer) publish(batches []*doneBatch) ([]sink.Record, []ack) {
	var recs []sink.Record
	var acks []ack
	for _, b := range batches {
		for i, r := range b.recs {
			var derived []sink.Record
			if d.derive != nil {
				derived = d.derive(r)
			}
			if r, ok := d.emitter.filter(r, b.emits[i]); ok {
				recs = append(recs, r)
			} else {
				d.m.RecordSuppressed(r.SourceID)
			}
			recs = append(recs, derived...)
		}
		acks = append(acks, b.acks...)
	}
	return recs, acks
}

// deliver writes recs to every sink, then acknowledges acks.
func (d *deliverer) deliver(hard context.Context, recs []sink.Record, acks []ack) error {
	if len(recs) > 0 {
		now := time.Now()
		for i := range recs {
			if t := recs[i].CaptureTime; !t.IsZero() {
				recs[i].LatencyMillis.Total = elapsedMillis(now.Sub(t))
			}
		}
		if err := d.writeAll(hard, recs); err != nil {
			return err
		}
		for _, r := range recs {
			d.m.RecordsEmitted(r.Kind, 1)
		}
	}
	delivered := time.Now()
	for _, a := range acks { // suppressed records move checkpoints too
		d.m.CaptionLatency(delivered.Sub(a.captured))
		if d.onDelivered != nil {
			d.onDelivered(a.source, a.pts)
		}
	}
	return nil
}

// writeAll writes recs to every sink, concurrently, each until it succeeds;
// a KindFilter sink gets only its kinds, and no write without them. It
// fails only when hard ends.
func (d *deliverer) writeAll(hard context.Context, recs []sink.Record) error {
	copied := len(d.sinks) > 1 // a sink may reorder or trim its slice
	return d.eachSink(func(s *sinkSlot) error {
		if own := s.own(recs, copied); len(own) > 0 {
			return d.writeSink(hard, s, own)
		}
		return nil
	})
}

// eachSink calls fn for every sink, concurrently, and joins the errors.
func (d *deliverer) eachSink(fn func(*sinkSlot) error) error {
	if len(d.sinks) == 1 {
		return fn(d.sinks[0])
	}
	errs := make([]error, len(d.sinks))
	var wg sync.WaitGroup
	for i, s := range d.sinks {
		wg.Go(func() { errs[i] = fn(s) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// writeSink writes recs to one sink, each attempt bounded by timeout,
// retrying failures with backoff until success or hard ends. Failures are
// counted (by the metered sink), logged once per LogInterval and reported
// by Ready until a write succeeds.
func (d *deliverer) writeSink(hard context.Context, s *sinkSlot, recs []sink.Record) error {
	bo := retry.New(retry.Policy{Min: d.retryMin, Max: d.retryMax, Jitter: DefaultRestartJitter, Below: true})
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(hard, d.timeout)
		err := s.s.Write(ctx, recs)
		cancel()
		if err == nil {
			if s.setErr(nil) {
				d.limit.Forget("sink/" + s.name)
				d.log.Info().Str("sink", s.name).Int("attempts", attempt).Msg("sink recovered")
			}
			return nil
		}
		if hard.Err() != nil {
			return fmt.Errorf("sink %s: %d records not written at kill: %w", s.name, len(recs), err)
		}
		s.setErr(err)
		delay := bo.Next()
		if ok, held := d.limit.Allow("sink/" + s.name); ok {
			d.log.Error().Err(err).Str("sink", s.name).Int("records", len(recs)).Int("attempt", attempt).
				Int("failures_held_back", held).Int64("retry_in_ms", delay.Milliseconds()).
				Msg("sink write failed; retrying (records are kept, the pipeline waits)")
		}
		if retry.Sleep(hard, delay) != nil {
			return fmt.Errorf("sink %s: %d records not written at kill: %w", s.name, len(recs), err)
		}
	}
}

// flush flushes every sink, each bounded by timeout.
func (d *deliverer) flush(hard context.Context) error {
	return d.eachSink(func(s *sinkSlot) error {
		ctx, cancel := context.WithTimeout(hard, d.timeout)
		defer cancel()
		if err := s.s.Flush(ctx); err != nil {
			return fmt.Errorf("flush sink %s: %w", s.name, err)
		}
		return nil
	})
}
