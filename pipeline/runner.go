package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"lookout/ingest"
	"lookout/internal/retry"
)

// openFunc opens a source once; the runner calls it again for each reopen
// it owns (see the package doc).
type openFunc = func(ctx context.Context) (ingest.Source, error)

// sourceRunner is the first stage, one per source: a goroutine that opens
// the source, moves its frames into the source's queue (whose policy is
// the source's: live drops the oldest, a replay blocks) and, where the
// runner owns restarts, reopens the source after a failure with backoff.
// It keeps the source's state for Sources and readiness.
type sourceRunner struct {
	info    *sourceInfo
	version string
	open    openFunc
	queue   *frameQueue
	cfg     runnerConfig

	// cancel ends the runner's context; set when it starts.
	cancel context.CancelFunc
	done   chan struct{} // closed when the runner ended
	// pushCtx bounds a replay's wait for room in its queue. It outlives the
	// runner's context at a graceful shutdown, so that a frame already read
	// is queued and captioned; it ends on remove (removed set) and Kill.
	pushCtx    context.Context
	pushCancel context.CancelFunc
	removed    atomic.Bool

	state sourceState
}

// runnerConfig is what a source runner needs from the pipeline.
type runnerConfig struct {
	backoffMin, backoffMax time.Duration
	jitter                 float64
	received, restarted    func() // Metrics.FrameReceived, SourceRestarted of this source
	drop                   dropper
}

// newSourceRunner prepares a runner for info's source, feeding queue.
// hard ends on Kill: it cuts off a replay's wait for room in its queue.
func newSourceRunner(hard context.Context, info *sourceInfo, version string, open openFunc, queue *frameQueue, cfg runnerConfig) *sourceRunner {
	r := &sourceRunner{info: info, version: version, open: open, queue: queue, cfg: cfg, done: make(chan struct{})}
	r.state.state = StatePending
	r.pushCtx, r.pushCancel = context.WithCancel(hard)
	return r
}

// start runs the source until it ends or ctx ends, then closes its queue
// and calls ended with the fatal error that ended it, if any.
func (r *sourceRunner) start(ctx context.Context, ended func(error)) {
	ctx, r.cancel = context.WithCancel(ctx)
	go func() {
		defer close(r.done)
		defer r.cancel()
		defer r.pushCancel()
		err := r.run(ctx)
		r.queue.close()
		ended(err)
	}()
}

// started reports whether start was called.
func (r *sourceRunner) started() bool { return r.cancel != nil }

// stop ends a started runner for good and waits for it: a replay blocked
// on its full queue gives up the frame it holds (counted as removed).
func (r *sourceRunner) stop() {
	r.removed.Store(true)
	r.pushCancel()
	if r.started() {
		r.cancel()
		<-r.done
	}
}

// snapshot is the source's state for Sources.
func (r *sourceRunner) snapshot() SourceState {
	s := SourceState{
		ID:         r.info.spec.ID,
		Version:    r.version,
		Live:       r.info.spec.Live,
		Labels:     maps.Clone(r.info.spec.Labels),
		QueueDepth: r.queue.len(),
	}
	r.state.fill(&s)
	return s
}

// run opens the source and reads it until the input ends, ctx ends, or a
// failure the runner does not retry (see reopens), which it returns.
func (r *sourceRunner) run(ctx context.Context) error {
	bo := retry.New(retry.Policy{Min: r.cfg.backoffMin, Max: r.cfg.backoffMax, Jitter: r.cfg.jitter, Below: true})
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			delay := bo.Next()
			r.state.set(StateBackoff, nil)
			r.info.log.Info().Int64("delay_ms", delay.Milliseconds()).Int("attempt", attempt).Msg("reopening source after backoff")
			if retry.Sleep(ctx, delay) != nil {
				r.state.set(StateStopped, nil)
				return nil
			}
			r.cfg.restarted()
			r.state.restarted()
		}
		r.state.set(StateOpening, nil)
		reconnects, err := r.once(ctx, bo)
		switch {
		case err == nil:
			r.state.set(StateDone, nil)
			r.info.log.Info().Msg("source ended")
			return nil
		case ctx.Err() != nil:
			r.state.set(StateStopped, nil)
			return nil
		}
		if !r.reopens(err, reconnects) {
			return err
		}
	}
}

// once opens the source and reads it to its end (nil) or failure. It
// reports whether the source reconnects by itself.
func (r *sourceRunner) once(ctx context.Context, bo *retry.Backoff) (reconnects bool, err error) {
	id := r.info.spec.ID
	src, err := r.open(ctx)
	if err != nil {
		return false, fmt.Errorf("source %s: open: %w", id, err)
	}
	if h, ok := src.(ingest.HealthReporter); ok {
		reconnects = h.Health().Reconnects
	}
	r.state.watch(src)
	err = r.read(ctx, meteredSource{Source: src, received: r.cfg.received}, bo, newRun(r.info.spec.Live))
	r.state.watch(nil)
	if cerr := src.Close(); cerr != nil {
		r.info.log.Warn().Err(cerr).Msg("closing source failed")
	}
	if err != nil {
		err = fmt.Errorf("source %s: %w", id, err)
	}
	return reconnects, err
}

// reopens decides, and logs, whether the runner reopens its source after
// err. It owns restarts of replays and of live sources that do not
// reconnect by themselves: a replay is reopened only after ErrTransient (a
// corrupt file fails the same way on every reopen), a bare live source
// after any failure. A live source that reconnects by itself
// (ingest.Reconnecting, see ingest.Health.Reconnects) already retried
// everything a reopen may cure, so the runner never reopens it: what it
// returns ends it as failed.
func (r *sourceRunner) reopens(err error, reconnects bool) bool {
	live := r.info.spec.Live
	switch {
	case live && reconnects:
		r.state.set(StateFailed, err)
		r.info.log.Error().Err(err).Msg("live source failed with an error its reader does not retry; not reopening it (fix it, then reload or re-add the source)")
		return false
	case !live && !errors.Is(err, ingest.ErrTransient):
		r.state.set(StateFailed, err)
		r.info.log.Error().Err(err).Msg("replay failed; not retrying (the same input would fail again)")
		return false
	}
	r.state.set(StateBackoff, err)
	r.info.log.Warn().Err(err).Msg("source failed; will reopen")
	return true
}

// read pushes src's frames into the queue until src fails or ends (nil on
// ErrEndOfInput). The backoff is reset by the first frame. Every frame is
// tagged with run (see newRun).
func (r *sourceRunner) read(ctx context.Context, src ingest.Source, bo *retry.Backoff, run string) error {
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
			r.state.flowing()
			first = false
		}
		f.SourceID = r.info.spec.ID
		it := queued{frame: f, src: r.info, enqueued: time.Now(), run: run}
		if err := r.queue.push(r.pushCtx, it); err != nil {
			reason := "killed"
			if r.removed.Load() {
				reason = "removed"
			}
			r.cfg.drop.discard(it, reason)
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
