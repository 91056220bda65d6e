package pipeline

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"lookout/ingest"
)

// AddSource adds a source; open is called to open it, and again for each
// reopen the pipeline owns (see the package doc). Before Run the source
// starts when Run starts; while Run runs it starts at once, leaving the
// other sources undisturbed. It fails for an empty or duplicate ID and once
// shutdown has begun.
func (p *Pipeline) AddSource(spec SourceSpec, open func(ctx context.Context) (ingest.Source, error)) error {
	return p.addSource(spec, open, "")
}

func (p *Pipeline) addSource(spec SourceSpec, open openFunc, version string) error {
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
	r := p.newRunner(spec.clone(), open, version)
	p.sources[spec.ID] = r
	p.active++
	if p.state == stateRunning {
		p.startSourceLocked(r)
	}
	return nil
}

// newRunner builds the runner and queue of one source.
func (p *Pipeline) newRunner(spec SourceSpec, open openFunc, version string) *sourceRunner {
	info := &sourceInfo{spec: spec, log: p.log.With().Str("source", spec.ID).Logger()}
	q := newFrameQueue(spec.Live, p.cfg.QueueSize, p.batcher.wake, func(n int) { p.m.QueueDepth(spec.ID, n) }, p.drop.overflow)
	return newSourceRunner(p.hardCtx, info, version, open, q, runnerConfig{
		backoffMin: p.cfg.RestartBackoffMin, backoffMax: p.cfg.RestartBackoffMax, jitter: p.cfg.RestartJitter,
		received:  func() { p.m.FrameReceived(spec.ID) },
		restarted: func() { p.m.SourceRestarted(spec.ID) },
		drop:      p.drop,
	})
}

// startSourceLocked starts r and hands its queue to the batcher. p.mu must
// be held.
func (p *Pipeline) startSourceLocked(r *sourceRunner) {
	p.batcher.add(r.queue)
	p.runners.Add(1)
	r.start(p.srcCtx, func(err error) {
		defer p.runners.Done()
		p.sourceEnded(err)
	})
}

// sourceEnded records the end of a runner and, with ExitWhenSourcesDone,
// stops the pipeline after the last one.
func (p *Pipeline) sourceEnded(err error) {
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

func (p *Pipeline) sourceErrors() []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]error(nil), p.sourceErr...)
}

// RemoveSource stops the source with id, waits until its runner closed it,
// and discards its queued frames (counted in lookout_source_frames_dropped_total
// with reason removed). Frames already batched are still captioned and
// delivered. Other sources are undisturbed.
func (p *Pipeline) RemoveSource(id string) error {
	p.mu.Lock()
	r, ok := p.sources[id]
	if !ok {
		p.mu.Unlock()
		return fmt.Errorf("pipeline: no source %q to remove", id)
	}
	delete(p.sources, id)
	if !r.started() {
		p.active--
	}
	p.mu.Unlock()

	r.stop()
	p.drop.discardAll(r.queue, "removed")
	p.batcher.remove(r.queue)
	p.m.SourceRemoved(id)
	r.info.log.Info().Msg("source removed")
	return nil
}

// Sources returns the current sources, sorted by ID.
func (p *Pipeline) Sources() []SourceState {
	p.mu.Lock()
	runners := make([]*sourceRunner, 0, len(p.sources))
	for _, r := range p.sources {
		runners = append(runners, r)
	}
	p.mu.Unlock()
	out := make([]SourceState, 0, len(runners))
	for _, r := range runners {
		out = append(out, r.snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
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
