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
}

func (p *Pipeline) newSourceEntry(spec SourceSpec, open func(ctx context.Context) (ingest.Source, error)) *sourceEntry {
	e := &sourceEntry{
		spec:  spec,
		open:  open,
		log:   p.log.With().Str("source", spec.ID).Logger(),
		done:  make(chan struct{}),
		state: "pending",
	}
	e.pushCtx, e.pushCancel = context.WithCancel(p.hardCtx)
	e.queue = newFrameQueue(spec.Live, p.cfg.QueueSize, p.wake, p.m.QueueDepth.WithLabelValues(spec.ID), p.dropOldest)
	return e
}

func (e *sourceEntry) set(state string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.state = state
	if err != nil {
		e.lastErr = err
	}
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
		Restarts:   e.restarts,
		QueueDepth: e.queue.len(),
	}
	if e.lastErr != nil {
		s.LastError = e.lastErr.Error()
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
		it.src.log.Warn().Int("dropped", held+1).Dur("interval", p.cfg.LogInterval).
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
			e.set("backoff", nil)
			e.log.Info().Dur("delay", delay).Int("attempt", attempt).Msg("reopening source after backoff")
			if !sleep(ctx, delay) {
				e.set("stopped", nil)
				return nil
			}
			restarts.Inc()
			e.mu.Lock()
			e.restarts++
			e.mu.Unlock()
		}
		e.set("opening", nil)
		src, err := e.open(ctx)
		if err != nil {
			if ctx.Err() != nil {
				e.set("stopped", nil)
				return nil
			}
			err = fmt.Errorf("source %s: open: %w", e.spec.ID, err)
			if p.fatal(e, err) {
				return err
			}
			continue
		}
		e.set("running", nil)
		err = p.readSource(ctx, e, meteredSource{Source: src, received: received}, bo, newRun(e.spec.Live))
		if cerr := src.Close(); cerr != nil {
			e.log.Warn().Err(cerr).Msg("closing source failed")
		}
		switch {
		case err == nil:
			e.set("done", nil)
			e.log.Info().Msg("source ended")
			return nil
		case ctx.Err() != nil:
			e.set("stopped", nil)
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
		e.set("failed", err)
		e.log.Error().Err(err).Msg("replay failed; not retrying (the same input would fail again)")
		return true
	}
	e.set("backoff", err)
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
