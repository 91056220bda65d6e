// Package pipeline carries sampled frames from sources to sinks: a
// supervisor runs the sources (restarting failed ones with backoff), a
// bounded queue per source feeds a cross-source batcher, inference workers
// caption the batches, and a single deliverer hands the records to every
// sink in per-source order.
//
// Edges and their policies:
//   - source -> queue: one bounded queue per source (Config.QueueSize). Live
//     sources drop the oldest queued frame and count it; replays block, so
//     nothing is lost.
//   - queues -> batcher: round robin over the sources, up to Config.MaxBatch
//     frames or Config.MaxWait after the batch's first frame.
//   - batcher -> workers: unbuffered; while every worker is busy the batcher
//     holds one batch (topping it up to MaxBatch) and the queues fill.
//   - workers -> deliverer: batches carry a sequence number and a reorder
//     buffer releases them in batcher order. Since the batcher takes each
//     source's frames in queue order, batcher order is per-source order, and
//     every worker stays busy even with a single source (a per-source limit
//     of one batch in flight would idle all but one worker on a replay).
//   - deliverer -> sinks: each Write is bounded by Config.SinkTimeout; a
//     failed write is counted, logged once per interval and retried with
//     backoff until it succeeds, so a sink that stays down stops the
//     pipeline (live sources then drop, replays wait) instead of losing
//     records.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"lookout/inference"
	"lookout/ingest"
	"lookout/sink"
)

// Pipeline runs sources, batcher, workers and deliverer. Create it with New,
// add sources, then call Run once. AddSource, RemoveSource, Sources, Ready,
// Stop and Kill are safe for concurrent use, also while Run runs.
type Pipeline struct {
	cfg    Config
	cfgErr error
	capt   inference.Captioner
	model  string
	digest string
	sinks  []*sinkSlot
	log    zerolog.Logger
	m      *Metrics
	limit  *rateLimit
	// emitter applies the sources' emit policies; the deliverer owns it.
	emitter *emitter
	// release closes a frame's image; tests count calls through it.
	release func(*ingest.Frame)

	wake chan struct{} // batcher wakeup, capacity 1

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
	sources   map[string]*sourceEntry
	queues    []*frameQueue // the batcher's round-robin list
	rr        int
	active    int // sources whose runner has not ended
	sourceErr []error
	runners   sync.WaitGroup

	workersUp       atomic.Int32
	captionFailed   atomic.Bool // the last Caption call failed for every frame
	undelivered     atomic.Int64
	captionFailures atomic.Int64
	uncaptioned     atomic.Int64
}

type runState int

const (
	stateNew runState = iota
	stateRunning
	stateDraining
	stateDone
)

// sinkSlot is one sink with its health.
type sinkSlot struct {
	name string
	s    sink.Sink // metered
	raw  sink.Sink // as given to New
	mu   sync.Mutex
	err  error // last write error, nil once a write succeeded
}

func (s *sinkSlot) setErr(err error) (wasDown bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wasDown = s.err != nil
	s.err = err
	return wasDown
}

func (s *sinkSlot) down() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Namer is implemented by sinks that name themselves in metric labels and
// logs (every sink of package sink does: kafka, jsonl). Other sinks are
// named sink0, sink1, ... by their position in New's slice. A name already
// taken gets a number: jsonl, jsonl2.
type Namer interface {
	Name() string
}

// KindFilter is implemented by sinks that take only some kinds of record
// (alerts to a topic of their own): the pipeline writes them only those, so
// their metrics count what they hold, and does not call Write when a
// delivery holds none.
type KindFilter interface {
	Accepts(kind string) bool
}

// Readier is implemented by sinks that know their own health (a broker that
// is down). Ready reports their errors.
type Readier interface {
	Ready() error
}

// New builds a pipeline that captions with captioner and delivers to sinks.
// cfg's zero fields take their defaults; an invalid cfg (see
// Config.Validate) makes Run fail. m may be nil (metrics are then kept but
// not registered anywhere). The pipeline neither closes the captioner nor
// the sinks: the caller does after Run returned.
func New(cfg Config, captioner inference.Captioner, sinks []sink.Sink, log zerolog.Logger, m *Metrics) *Pipeline {
	if m == nil {
		m, _ = NewMetrics(nil) // cannot fail without a registerer
	}
	p := &Pipeline{
		cfg:     cfg.withDefaults(),
		cfgErr:  cfg.Validate(),
		log:     log.With().Str("component", "pipeline").Logger(),
		m:       m,
		release: func(f *ingest.Frame) { _ = f.Close() },
		wake:    make(chan struct{}, 1),
		stopCh:  make(chan struct{}),
		drainCh: make(chan struct{}),
		sources: map[string]*sourceEntry{},
		emitter: newEmitter(),
	}
	p.limit = newRateLimit(p.cfg.LogInterval)
	sources := p.Sources
	m.states.list.Store(&sources)
	p.hardCtx, p.hardCancel = context.WithCancel(context.Background())
	p.srcCtx, p.srcCancel = context.WithCancel(context.Background())
	if captioner != nil {
		p.capt = meteredCaptioner{Captioner: captioner, m: m}
		p.model, p.digest = captioner.Name(), captioner.Digest()
	}
	used := map[string]bool{}
	for i, s := range sinks {
		name := fmt.Sprintf("sink%d", i)
		if n, ok := s.(Namer); ok && n.Name() != "" {
			name = n.Name()
		}
		// Two sinks of one kind (two JSONL files) must not share a label.
		for base, k := name, 2; used[name]; k++ {
			name = fmt.Sprintf("%s%d", base, k)
		}
		used[name] = true
		p.sinks = append(p.sinks, &sinkSlot{name: name, s: newMeteredSink(s, name, m), raw: s})
	}
	return p
}

// AddSource adds a source; open is called (again after each failure) to open
// it. Before Run the source starts when Run starts; while Run runs it starts
// at once, leaving the other sources undisturbed. It fails for an empty or
// duplicate ID and once shutdown has begun.
func (p *Pipeline) AddSource(spec SourceSpec, open func(ctx context.Context) (ingest.Source, error)) error {
	return p.addSource(spec, open, "")
}

func (p *Pipeline) addSource(spec SourceSpec, open func(ctx context.Context) (ingest.Source, error), version string) error {
	if err := spec.validate(); err != nil {
		return err
	}
	if err := p.checkTask(spec); err != nil {
		return err
	}
	if open == nil {
		return fmt.Errorf("pipeline: source %q has no open function", spec.ID)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state >= stateDraining {
		return fmt.Errorf("pipeline: cannot add source %q: the pipeline is shutting down", spec.ID)
	}
	if _, ok := p.sources[spec.ID]; ok {
		return fmt.Errorf("pipeline: source %q already exists: remove it first or pick another id", spec.ID)
	}
	e := p.newSourceEntry(spec.clone(), open)
	e.version = version
	p.sources[spec.ID] = e
	p.active++
	if p.state == stateRunning {
		p.startSourceLocked(e)
	}
	return nil
}

// RemoveSource stops the source with id, waits until its runner closed it,
// and discards its queued frames (counted in lookout_source_frames_dropped_total
// with reason removed). Frames already batched are still captioned and
// delivered. Other sources are undisturbed.
func (p *Pipeline) RemoveSource(id string) error {
	p.mu.Lock()
	e, ok := p.sources[id]
	if !ok {
		p.mu.Unlock()
		return fmt.Errorf("pipeline: no source %q to remove", id)
	}
	delete(p.sources, id)
	started := e.cancel != nil
	if !started {
		p.active--
	}
	p.mu.Unlock()

	e.removed.Store(true)
	e.pushCancel()
	if started {
		e.cancel()
		<-e.done
	}
	for _, it := range e.queue.drain() {
		p.discard(it, "removed")
	}
	p.mu.Lock()
	p.removeQueueLocked(e.queue)
	p.mu.Unlock()
	p.m.forgetSource(id)
	e.log.Info().Msg("source removed")
	return nil
}

// SourceState is a snapshot of one source for status pages.
type SourceState struct {
	ID     string
	Live   bool
	Labels map[string]string
	// Version is the one given to Reconcile, empty for AddSource.
	Version string
	// State is one of pending (Run not started), opening (until the first
	// frame), running (frames flow), reconnecting (a live source's reader
	// lost the stream, or never had it, and is reopening it), backoff
	// (waiting for the pipeline to reopen it after a failure), done (end of
	// input), failed (a replay's fatal error, see LastError) and stopped (at
	// shutdown). See the State constants.
	State string
	// DownSince is when the current outage or failure began: set while
	// reconnecting, failed, or backing off or opening after a failure.
	DownSince time.Time
	// Restarts counts reopens by the pipeline (lookout_source_restarts_total);
	// a live source's reconnects inside its reader are not among them.
	Restarts int
	// LastError is the last failure, empty if none. For an RTSP source it
	// says which failure it is where the server tells: no connection, 404
	// (wrong path) or 401 (credentials).
	LastError  string
	QueueDepth int
}

// Summary is one line for status pages: id, state, for how long the source
// has been down, and its last failure while down or failed.
func (s SourceState) Summary(now time.Time) string {
	line := "source " + s.ID + " " + s.State
	if !s.DownSince.IsZero() {
		line += " for " + now.Sub(s.DownSince).Round(time.Second).String()
		if s.LastError != "" {
			line += ": " + s.LastError
		}
	}
	return line
}

// SourcesSummary lists every source's Summary, one per line, for /readyz.
func (p *Pipeline) SourcesSummary() string {
	var b strings.Builder
	now := time.Now()
	for _, s := range p.Sources() {
		b.WriteString(s.Summary(now))
		b.WriteByte('\n')
	}
	return b.String()
}

// sourcesDown reports an error when sources exist and every one that has
// not ended (done or stopped) is failed or down for at least grace. With
// no sources, or only ended ones, it reports nil: sources may be added
// over HTTP, and a finished replay is not a fault.
func sourcesDown(states []SourceState, grace time.Duration, now time.Time) error {
	var down []string
	for _, s := range states {
		switch {
		case s.State == StateDone || s.State == StateStopped:
			continue
		case s.State == StateFailed:
			down = append(down, s.ID+" failed")
		case !s.DownSince.IsZero() && now.Sub(s.DownSince) >= grace:
			down = append(down, fmt.Sprintf("%s %s for %s", s.ID, s.State, now.Sub(s.DownSince).Round(time.Second)))
		default:
			return nil
		}
	}
	if len(down) == 0 {
		return nil
	}
	return fmt.Errorf("pipeline: every source is down: %s", strings.Join(down, ", "))
}

// Sources returns the current sources, sorted by ID.
func (p *Pipeline) Sources() []SourceState {
	p.mu.Lock()
	entries := make([]*sourceEntry, 0, len(p.sources))
	for _, e := range p.sources {
		entries = append(entries, e)
	}
	p.mu.Unlock()
	out := make([]SourceState, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
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
	if p.workersUp.Load() == 0 {
		return errors.New("pipeline: no inference worker is running")
	}
	if p.captionFailed.Load() {
		return fmt.Errorf("pipeline: captioner %s failed on its last batch: see the logs", p.model)
	}
	for _, s := range p.sinks {
		if err := s.down(); err != nil {
			return fmt.Errorf("pipeline: sink %s is down: %w", s.name, err)
		}
		if r, ok := s.raw.(Readier); ok {
			if err := r.Ready(); err != nil {
				return fmt.Errorf("pipeline: sink %s is not ready: %w", s.name, err)
			}
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
// called once. It returns the joined errors of replays that failed fatally,
// of the final flushes, of a Kill that lost frames or records, and, with
// ExitWhenSourcesDone, of frames the captioner failed on; nil after a clean
// shutdown.
func (p *Pipeline) Run(ctx context.Context) error {
	if p.cfgErr != nil {
		return p.cfgErr
	}
	if p.capt == nil {
		return errors.New("pipeline: no captioner: pass one to New")
	}
	if len(p.sinks) == 0 {
		return errors.New("pipeline: no sink: pass at least one to New")
	}
	p.mu.Lock()
	if p.state != stateNew {
		p.mu.Unlock()
		return errors.New("pipeline: Run called more than once: build a new Pipeline")
	}
	p.state = stateRunning
	for _, e := range p.sources {
		p.startSourceLocked(e)
	}
	noSources := p.active == 0
	p.mu.Unlock()
	if noSources && p.cfg.ExitWhenSourcesDone {
		p.Stop()
	}
	p.log.Info().Int("workers", p.cfg.Workers).Int("max_batch", p.cfg.MaxBatch).
		Int64("max_wait_ms", p.cfg.MaxWait.Milliseconds()).Int("sinks", len(p.sinks)).Msg("pipeline started")

	var wg sync.WaitGroup
	work := make(chan *batch)
	done := make(chan *doneBatch)
	wg.Go(func() { p.shutdownWhenDone(ctx) })
	wg.Go(func() { p.batcher(work) })
	var workers sync.WaitGroup
	for range p.cfg.Workers {
		p.workersUp.Add(1)
		workers.Go(func() {
			defer p.workersUp.Add(-1)
			p.worker(work, done)
		})
	}
	wg.Go(func() {
		workers.Wait()
		close(done)
	})
	var deliverErr error
	wg.Go(func() { deliverErr = p.deliver(done) })
	wg.Wait()

	// Anything still queued is lost only after a Kill.
	p.mu.Lock()
	queues := p.queues
	p.queues = nil
	p.state = stateDone
	p.mu.Unlock()
	for _, q := range queues {
		for _, it := range q.drain() {
			p.discard(it, "killed")
		}
	}

	errs := append([]error(nil), p.sourceErrors()...)
	if deliverErr != nil {
		errs = append(errs, deliverErr)
	}
	if p.hardCtx.Err() == nil {
		errs = append(errs, p.flushSinks())
	}
	if n := p.captionFailures.Load(); n > 0 && p.cfg.ExitWhenSourcesDone {
		errs = append(errs, fmt.Errorf("pipeline: %d frames could not be captioned and have no record: see the log", n))
	}
	if p.hardCtx.Err() != nil {
		if lost, unsent := p.uncaptioned.Load(), p.undelivered.Load(); lost > 0 || unsent > 0 {
			errs = append(errs, fmt.Errorf("pipeline killed: %d frames not captioned, %d records not delivered", lost, unsent))
		}
	}
	p.hardCancel()
	p.srcCancel()
	err := errors.Join(errs...)
	p.log.Info().Err(err).Msg("pipeline stopped")
	return err
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
	p.mu.Lock()
	for _, q := range p.queues {
		q.close()
	}
	p.mu.Unlock()
	close(p.drainCh)
	signal(p.wake)
}

func (p *Pipeline) sourceErrors() []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]error(nil), p.sourceErr...)
}

// flushSinks flushes every sink, each bounded by SinkTimeout.
func (p *Pipeline) flushSinks() error {
	errs := make([]error, len(p.sinks))
	var wg sync.WaitGroup
	for i, s := range p.sinks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(p.hardCtx, p.cfg.SinkTimeout)
			defer cancel()
			if err := s.s.Flush(ctx); err != nil {
				errs[i] = fmt.Errorf("flush sink %s: %w", s.name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// discard releases a frame that will not be captioned and counts it.
func (p *Pipeline) discard(it queued, reason string) {
	p.release(&it.frame)
	p.m.FramesDropped.WithLabelValues(it.src.spec.ID, reason).Inc()
	if reason == "killed" {
		p.uncaptioned.Add(1)
	}
}

// removeQueueLocked takes q out of the batcher's list. p.mu must be held.
func (p *Pipeline) removeQueueLocked(q *frameQueue) {
	qs := make([]*frameQueue, 0, len(p.queues))
	for _, x := range p.queues {
		if x != q {
			qs = append(qs, x)
		}
	}
	p.queues = qs
}

// elapsedMillis converts a duration to fractional milliseconds.
func elapsedMillis(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}
