// Package pipeline carries sampled frames from sources to sinks through four
// stages, each a type that owns its goroutines and state and talks to its
// neighbours only over the edges below:
//
//   - sourceRunner (runner.go), one per source: opens it, moves its frames
//     into its queue, reopens it after failures where it owns restarts
//     (below), and keeps its state for Sources and Ready.
//   - batcher (batcher.go): forms cross-source batches from the queues.
//   - workerPool (worker.go): captions batches, Config.Workers at a time.
//   - deliverer (deliver.go): per-source order, the Derive hook (rules),
//     emit policy, sinks, acks.
//
// Pipeline itself keeps the lifecycle (Run, Stop, Kill, Ready) and the
// source registry (AddSource, RemoveSource, Reconcile, Sources); it wires
// the stages and owns nothing they do.
//
// Edges and their policies:
//   - source -> queue: one bounded queue per source (Config.QueueSize). Live
//     sources drop the oldest queued frame and count it; replays block, so
//     nothing is lost.
//   - queues -> batcher: round robin over the sources, starting at the next
//     source each time, up to Config.MaxBatch frames or Config.MaxWait
//     after the batch's first frame.
//   - batcher -> workers: unbuffered; while every worker is busy the batcher
//     holds one batch (topping it up to MaxBatch) and the queues fill.
//   - workers -> deliverer: batches carry a sequence number and a reorder
//     buffer releases them in batcher order. Since the batcher takes each
//     source's frames in queue order, batcher order is per-source order, and
//     every worker stays busy even with a single source (a per-source limit
//     of one batch in flight would idle all but one worker on a replay).
//     A failed Caption call is retried frame by frame; a frame that still
//     fails is counted and logged and gives no record.
//   - deliverer -> sinks: each Write is bounded by Config.SinkTimeout; a
//     failed write is counted, logged once per interval and retried with
//     backoff until it succeeds, so a sink that stays down stops the
//     pipeline (live sources then drop, replays wait) instead of losing
//     records. OnDelivered follows only once every sink accepted.
//
// Who restarts a source: exactly one layer per source. A live source opened
// through ingest.Reconnecting (every live source of lookout run and
// lookout caption) is reconnected by its reader, never by the pipeline:
// the reader knows the transport (a stuck stream, failed reads), keeps one
// Seq and PTS numbering across reopens and marks the first frame after an
// outage as a gap, reports the outage (state reconnecting, outage metrics)
// while its Next waits, and retries a camera sooner (250 ms to 5 s) than a
// pipeline restart would (500 ms to 30 s). A pipeline restart would start a
// new run with PTS from 0 and hide the outage. What such a source still
// returns is an error no reopen cures (or its first open failing in a
// one-shot command), so the source ends as failed. The runner reopens,
// with Config.RestartBackoffMin..Max, only sources that cannot reopen
// themselves: a replay after an error wrapping ingest.ErrTransient, and a
// live source without a reader of its own (see ingest.Health.Reconnects)
// after any failure, as well as a live source whose open function failed (no
// reader exists yet); each reopen is a new run.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"lookout/inference"
	"lookout/ingest"
	"lookout/internal/logthrottle"
	"lookout/sink"
)

// Pipeline runs sources, batcher, workers and deliverer. Create it with New,
// add sources, then call Run once. AddSource, RemoveSource, Sources, Ready,
// Stop and Kill are safe for concurrent use, also while Run runs.
type Pipeline struct {
	cfg    Config
	cfgErr error
	model  string
	sinks  []*sinkSlot
	log    zerolog.Logger
	m      Metrics
	// release closes a frame's image; tests count calls through it.
	release func(*ingest.Frame)
	lost    *losses
	drop    dropper

	batcher   *batcher
	workers   *workerPool
	deliverer *deliverer

	// hardCtx ends on Kill: it aborts Caption calls, sink writes and waits.
	hardCtx    context.Context
	hardCancel context.CancelFunc
	// srcCtx is the parent of every source runner's context; it ends when
	// shutdown begins.
	srcCtx    context.Context
	srcCancel context.CancelFunc

	stopOnce sync.Once
	stopCh   chan struct{}
	drainCh  chan struct{} // closed once sources stopped and queues closed

	reconcileMu sync.Mutex

	mu        sync.Mutex
	state     runState
	sources   map[string]*sourceRunner
	active    int // sources whose runner has not ended
	sourceErr []error
	runners   sync.WaitGroup
}

type runState int

const (
	stateNew runState = iota
	stateRunning
	stateDraining
	stateDone
)

// New builds a pipeline that captions with captioner and delivers to sinks.
// cfg's zero fields take their defaults; an invalid cfg (see
// Config.Validate) makes Run fail. m may be nil (NopMetrics: nothing is
// recorded). The pipeline neither closes the captioner nor
// the sinks: the caller does after Run returned.
func New(cfg Config, captioner inference.Captioner, sinks []sink.Sink, log zerolog.Logger, m Metrics) *Pipeline {
	if m == nil {
		m = NopMetrics{}
	}
	p := &Pipeline{
		cfg:     cfg.withDefaults(),
		cfgErr:  cfg.Validate(),
		log:     log.With().Str("component", "pipeline").Logger(),
		m:       m,
		release: func(f *ingest.Frame) { _ = f.Close() },
		lost:    &losses{},
		stopCh:  make(chan struct{}),
		drainCh: make(chan struct{}),
		sources: map[string]*sourceRunner{},
		sinks:   newSinkSlots(sinks, m),
	}
	p.hardCtx, p.hardCancel = context.WithCancel(context.Background())
	p.srcCtx, p.srcCancel = context.WithCancel(context.Background())
	p.wire(captioner)
	return p
}

// wire builds the stages.
func (p *Pipeline) wire(captioner inference.Captioner) {
	c, m := p.cfg, p.m
	var capt inference.Captioner
	var digest string
	if captioner != nil {
		capt = meteredCaptioner{Captioner: captioner, m: m}
		p.model, digest = captioner.Name(), captioner.Digest()
	}
	limit := logthrottle.New(c.LogInterval)
	release := func(f *ingest.Frame) { p.release(f) }
	p.drop = dropper{release: release, m: m, lost: p.lost, limit: limit, interval: c.LogInterval}
	p.batcher = newBatcher(c.MaxBatch, c.MaxWait, p.drop)
	p.workers = &workerPool{n: c.Workers, capt: capt, records: recordMaker{model: p.model, digest: digest},
		onCaptioned: c.OnCaptioned, release: release, log: p.log, limit: limit,
		m: m, lost: p.lost}
	p.deliverer = &deliverer{sinks: p.sinks, emitter: newEmitter(), derive: c.Derive, onDelivered: c.OnDelivered,
		timeout: c.SinkTimeout, retryMin: c.SinkRetryMin, retryMax: c.SinkRetryMax, log: p.log, limit: limit,
		m: m, lost: p.lost}
}

// Stop begins a graceful shutdown, like cancelling Run's context: sources
// stop, queued frames are captioned, records delivered, sinks flushed.
func (p *Pipeline) Stop() {
	p.stopOnce.Do(func() { close(p.stopCh) })
}

// Kill stops at once: Caption calls and sink writes are cancelled, queued
// frames are discarded, and Run returns an error counting what was lost.
// Use it on a second interrupt. It returns without waiting; Run still waits
// for every goroutine (cgo calls are never abandoned mid-flight).
func (p *Pipeline) Kill() {
	p.hardCancel()
	p.srcCancel()
	p.Stop()
}

// Ready reports nil while Run serves, at least one inference worker is up,
// the last Caption call did not fail outright, no sink is down (its last
// write failed, or it implements Readier and reports an error), and not
// every source is down: with sources configured, at least one that has not
// ended must be running, opening, or down for less than
// Config.SourceGrace (no sources at all is ready: they may be added later).
// It reports an error before Run, during shutdown and after. For /readyz;
// SourcesSummary gives the per-source detail.
func (p *Pipeline) Ready() error {
	p.mu.Lock()
	state := p.state
	p.mu.Unlock()
	if state == stateNew || state == stateDone {
		return errors.New("pipeline: not running")
	}
	if p.workers.up.Load() == 0 {
		return errors.New("pipeline: no inference worker is running")
	}
	if p.workers.failedOutright.Load() {
		return fmt.Errorf("pipeline: captioner %s failed on its last batch: see the logs", p.model)
	}
	for _, s := range p.sinks {
		if err := s.ready(); err != nil {
			return err
		}
	}
	if state == stateDraining {
		return errors.New("pipeline: shutting down")
	}
	return sourcesDown(p.Sources(), p.cfg.SourceGrace, time.Now())
}

// Run serves until ctx ends or Stop is called (or, with
// Config.ExitWhenSourcesDone, every source has ended), then shuts down
// gracefully: sources stop, queued frames are captioned, records are
// delivered, sinks are flushed. Kill makes it stop at once. Run may be
// called once. It returns the joined errors of sources that failed for
// good (a replay's fatal error, a live source's error its reader does not
// retry), of the final flushes, of a Kill that lost frames or records,
// and, with ExitWhenSourcesDone, of frames the captioner failed on; nil
// after a clean shutdown.
func (p *Pipeline) Run(ctx context.Context) error {
	if err := p.begin(); err != nil {
		return err
	}
	p.log.Info().Int("workers", p.cfg.Workers).Int("max_batch", p.cfg.MaxBatch).
		Int64("max_wait_ms", p.cfg.MaxWait.Milliseconds()).Int("sinks", len(p.sinks)).Msg("pipeline started")

	var wg sync.WaitGroup
	work := make(chan *batch)
	done := make(chan *doneBatch)
	wg.Go(func() { p.shutdownWhenDone(ctx) })
	wg.Go(func() { p.batcher.run(p.drainCh, p.hardCtx.Done(), work) })
	wg.Go(func() { p.workers.run(p.hardCtx, work, done) })
	var deliverErr error
	wg.Go(func() { deliverErr = p.deliverer.run(p.hardCtx, done) })
	wg.Wait()

	err := p.finish(deliverErr)
	p.log.Info().Err(err).Msg("pipeline stopped")
	return err
}

// begin checks that Run can run and starts the sources added so far.
func (p *Pipeline) begin() error {
	switch {
	case p.cfgErr != nil:
		return p.cfgErr
	case p.workers.capt == nil:
		return errors.New("pipeline: no captioner: pass one to New")
	case len(p.sinks) == 0:
		return errors.New("pipeline: no sink: pass at least one to New")
	}
	p.mu.Lock()
	if p.state != stateNew {
		p.mu.Unlock()
		return errors.New("pipeline: Run called more than once: build a new Pipeline")
	}
	p.state = stateRunning
	for _, r := range p.sources {
		p.startSourceLocked(r)
	}
	noSources := p.active == 0
	p.mu.Unlock()
	if noSources && p.cfg.ExitWhenSourcesDone {
		p.Stop()
	}
	return nil
}

// finish ends Run once every stage has returned: it discards what a Kill
// left queued, flushes the sinks after a graceful shutdown and joins Run's
// errors.
func (p *Pipeline) finish(deliverErr error) error {
	p.mu.Lock()
	p.state = stateDone
	p.mu.Unlock()
	for _, q := range p.batcher.detach() {
		p.drop.discardAll(q, "killed") // anything still queued is lost only after a Kill
	}
	errs := p.sourceErrors()
	if deliverErr != nil {
		errs = append(errs, deliverErr)
	}
	if p.hardCtx.Err() == nil {
		errs = append(errs, p.deliverer.flush(p.hardCtx))
	}
	if n := p.workers.failed.Load(); n > 0 && p.cfg.ExitWhenSourcesDone {
		errs = append(errs, fmt.Errorf("pipeline: %d frames could not be captioned and have no record: see the log", n))
	}
	if p.hardCtx.Err() != nil {
		if lost, unsent := p.lost.uncaptioned.Load(), p.lost.undelivered.Load(); lost > 0 || unsent > 0 {
			errs = append(errs, fmt.Errorf("pipeline killed: %d frames not captioned, %d records not delivered", lost, unsent))
		}
	}
	p.hardCancel()
	p.srcCancel()
	return errors.Join(errs...)
}

// shutdownWhenDone waits for the end of ctx, Stop or Kill, stops every
// source runner, closes the queues and lets the batcher drain them.
func (p *Pipeline) shutdownWhenDone(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-p.stopCh:
	case <-p.hardCtx.Done():
	}
	p.log.Info().Msg("shutting down: stopping sources, captioning queued frames")
	p.mu.Lock()
	p.state = stateDraining
	p.mu.Unlock()
	p.srcCancel()
	p.runners.Wait()
	p.batcher.closeQueues()
	close(p.drainCh)
}
