package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"lookout/ingest"
)

// sourceEntry is one source under supervision.
type sourceEntry struct {
	spec    SourceSpec
	version string
	open    func(ctx context.Context) (ingest.Source, error)
	queue   *frameQueue
	log     zerolog.Logger

	cancel context.CancelFunc // set when the runner starts
	done   chan struct{}      // closed when the runner ended
	// pushCtx bounds a replay's wait for room in its queue. It outlives the
	// runner's context at a graceful shutdown, so that a frame already read
	// is queued and captioned; it ends on RemoveSource (removed set) and Kill.
	pushCtx    context.Context
	pushCancel context.CancelFunc
	removed    atomic.Bool

	mu       sync.Mutex
	state    string
	restarts int
	lastErr  error
	// downSince is when the failures since the last frame began (zero
	// while frames flow): the pipeline's own reopen cycle.
	downSince time.Time
	// health is the open source's outage state, when it reports one: a
	// Reconnecting's Next blocks through outages, so only it knows.
	health ingest.HealthReporter
}

// Source states, see SourceState.State.
const (
	StatePending      = "pending"
	StateOpening      = "opening"
	StateRunning      = "running"
	StateReconnecting = "reconnecting"
	StateBackoff      = "backoff"
	StateDone         = "done"
	StateFailed       = "failed"
	StateStopped      = "stopped"
)

// SourceStates lists every source state, for lookout_source_state.
var SourceStates = []string{StatePending, StateOpening, StateRunning, StateReconnecting,
	StateBackoff, StateDone, StateFailed, StateStopped}

func (p *Pipeline) newSourceEntry(spec SourceSpec, open func(ctx context.Context) (ingest.Source, error)) *sourceEntry {
	e := &sourceEntry{
		spec:  spec,
		open:  open,
		log:   p.log.With().Str("source", spec.ID).Logger(),
		done:  make(chan struct{}),
		state: StatePending,
	}
	e.pushCtx, e.pushCancel = context.WithCancel(p.hardCtx)
	e.queue = newFrameQueue(spec.Live, p.cfg.QueueSize, p.wake, p.m.QueueDepth.WithLabelValues(spec.ID), p.dropOldest)
	return e
}

// set records a state; a failure (err set) starts the down time unless it
// already runs.
func (e *sourceEntry) set(state string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.state = state
	if err != nil {
		e.lastErr = err
		if e.downSince.IsZero() {
			e.downSince = time.Now()
		}
	}
}

// flowing marks the first frame of an open source: running, not down.
func (e *sourceEntry) flowing() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.state = StateRunning
	e.downSince = time.Time{}
}

// watch makes src's outage state (if it reports one) part of the source's
// state until the next watch; nil stops it.
func (e *sourceEntry) watch(src ingest.Source) {
	h, _ := src.(ingest.HealthReporter)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.health != nil && h == nil {
		// Keep the closing source's last failure: it is newer than ours.
		if err := e.health.Health().LastErr; err != nil {
			e.lastErr = err
		}
	}
	e.health = h
}

func (e *sourceEntry) snapshot() SourceState {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := SourceState{
		ID:         e.spec.ID,
		Version:    e.version,
		Live:       e.spec.Live,
		Labels:     maps.Clone(e.spec.Labels),
		State:      e.state,
		DownSince:  e.downSince,
		Restarts:   e.restarts,
		QueueDepth: e.queue.len(),
	}
	lastErr := e.lastErr
	if e.health != nil && (e.state == StateOpening || e.state == StateRunning) {
		h := e.health.Health()
		if h.Down {
			s.State, s.DownSince = StateReconnecting, h.Since
		}
		if h.LastErr != nil {
			lastErr = h.LastErr // newer: the open source failed after anything recorded here
		}
	}
	switch s.State {
	case StateOpening, StateReconnecting, StateBackoff, StateFailed:
	default:
		s.DownSince = time.Time{}
	}
	if lastErr != nil {
		s.LastError = lastErr.Error()
	}
	return s
}

// dropOldest releases a live frame pushed out of a full queue, counts it and
// logs once per LogInterval per source.
func (p *Pipeline) dropOldest(it queued) {
	p.release(&it.frame)
	id := it.src.spec.ID
	p.m.FramesDropped.WithLabelValues(id, "overflow").Inc()
	if ok, held := p.limit.allow("drop/" + id); ok {
		it.src.log.Warn().Int("dropped", held+1).Int64("interval_ms", p.cfg.LogInterval.Milliseconds()).
			Msg("live source queue full: dropping oldest frames (captioning is slower than the source)")
	}
}

// startSourceLocked starts e's runner. p.mu must be held.
func (p *Pipeline) startSourceLocked(e *sourceEntry) {
	ctx, cancel := context.WithCancel(p.srcCtx)
	e.cancel = cancel
	p.queues = append(p.queues, e.queue)
	p.runners.Add(1)
	go func() {
		defer p.runners.Done()
		defer close(e.done)
		defer cancel()
		defer e.pushCancel()
		err := p.runSource(ctx, e)
		e.queue.close()
		signal(p.wake)
		p.sourceEnded(e, err)
	}()
}

// sourceEnded records the end of a runner and, with ExitWhenSourcesDone,
// stops the pipeline after the last one.
func (p *Pipeline) sourceEnded(e *sourceEntry, err error) {
	p.mu.Lock()
	if err != nil {
		p.sourceErr = append(p.sourceErr, err)
	}
	// A removed source was already uncounted by RemoveSource only if it had
	// not started; a started one is uncounted here.
	p.active--
	last := p.active == 0
	p.mu.Unlock()
	if last && p.cfg.ExitWhenSourcesDone {
		p.log.Info().Msg("every source has ended")
		p.Stop()
	}
}

// runSource opens e and moves its frames into its queue until the input
// ends, ctx ends, or (for a replay) a fatal error occurs, which it returns.
// Other failures reopen the source after a backoff.
func (p *Pipeline) runSource(ctx context.Context, e *sourceEntry) error {
	bo := newBackoff(p.cfg.RestartBackoffMin, p.cfg.RestartBackoffMax, p.cfg.RestartJitter)
	received := p.m.FramesReceived.WithLabelValues(e.spec.ID)
	restarts := p.m.SourceRestarts.WithLabelValues(e.spec.ID)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			delay := bo.Next()
			e.set(StateBackoff, nil)
			e.log.Info().Int64("delay_ms", delay.Milliseconds()).Int("attempt", attempt).Msg("reopening source after backoff")
			if !sleep(ctx, delay) {
				e.set(StateStopped, nil)
				return nil
			}
			restarts.Inc()
			e.mu.Lock()
			e.restarts++
			e.mu.Unlock()
		}
		e.set(StateOpening, nil)
		src, err := e.open(ctx)
		if err != nil {
			if ctx.Err() != nil {
				e.set(StateStopped, nil)
				return nil
			}
			err = fmt.Errorf("source %s: open: %w", e.spec.ID, err)
			if p.fatal(e, err) {
				return err
			}
			continue
		}
		e.watch(src)
		err = p.readSource(ctx, e, meteredSource{Source: src, received: received}, bo, newRun(e.spec.Live))
		e.watch(nil)
		if cerr := src.Close(); cerr != nil {
			e.log.Warn().Err(cerr).Msg("closing source failed")
		}
		switch {
		case err == nil:
			e.set(StateDone, nil)
			e.log.Info().Msg("source ended")
			return nil
		case ctx.Err() != nil:
			e.set(StateStopped, nil)
			return nil
		}
		err = fmt.Errorf("source %s: %w", e.spec.ID, err)
		if p.fatal(e, err) {
			return err
		}
	}
}

// fatal logs a source failure and reports whether it ends the source for
// good: replays end on errors that are not ErrTransient; live sources retry.
func (p *Pipeline) fatal(e *sourceEntry, err error) bool {
	if !e.spec.Live && !errors.Is(err, ingest.ErrTransient) {
		e.set(StateFailed, err)
		e.log.Error().Err(err).Msg("replay failed; not retrying (the same input would fail again)")
		return true
	}
	e.set(StateBackoff, err)
	e.log.Warn().Err(err).Msg("source failed; will reopen")
	return false
}

// readSource pushes src's frames into e's queue until src fails or ends
// (nil on ErrEndOfInput). The backoff is reset by the first frame. Every
// frame is tagged with run (see newRun).
func (p *Pipeline) readSource(ctx context.Context, e *sourceEntry, src ingest.Source, bo *backoff, run string) error {
	first := true
	for {
		f, err := src.Next(ctx)
		if err != nil {
			if errors.Is(err, ingest.ErrEndOfInput) {
				return nil
			}
			return fmt.Errorf("next frame: %w", err)
		}
		if first {
			bo.Reset()
			e.flowing()
			first = false
		}
		f.SourceID = e.spec.ID
		it := queued{frame: f, src: e, enqueued: time.Now(), run: run}
		if err := e.queue.push(e.pushCtx, it); err != nil {
			reason := "killed"
			if e.removed.Load() {
				reason = "removed"
			}
			p.discard(it, reason)
			return err
		}
	}
}

// newRun names one opening of a source. A live source's PTS starts again at
// 0 each time it is opened (a restart, a reload, a new process), so its
// records carry a run (a UUIDv7: unique, ordered by start time) that is part
// of their id; a replay's PTS is its position in the file, so replays have
// no run and their ids stay the same on every replay.
func newRun(live bool) string {
	if !live {
		return ""
	}
	return uuid.Must(uuid.NewV7()).String()
}
