package ingest

import (
	"context"
	"fmt"
	"math"
	"time"

	"lookout/internal/retry"
)

// SampleConfig says which frames of a source are worth captioning. Set
// Every or FPS, not both; with neither, every frame passes.
type SampleConfig struct {
	// Every is the sampling interval, e.g. 1 s.
	Every time.Duration
	// FPS is the sampling rate in frames per second (Every = 1/FPS).
	FPS float64
}

// Interval returns the sampling interval (0: every frame) or an error
// naming the bad field.
func (c SampleConfig) Interval() (time.Duration, error) {
	switch {
	case c.Every < 0:
		return 0, fmt.Errorf("sampling every=%s: must not be negative", c.Every)
	case math.IsNaN(c.FPS) || math.IsInf(c.FPS, 0) || c.FPS < 0 || c.FPS > 1000:
		return 0, fmt.Errorf("sampling fps=%v: must be in (0, 1000]", c.FPS)
	case c.Every > 0 && c.FPS > 0:
		return 0, fmt.Errorf("sampling: set every (%s) or fps (%v), not both", c.Every, c.FPS)
	case c.FPS > 0:
		return time.Duration(float64(time.Second) / c.FPS), nil
	}
	return c.Every, nil
}

// Sampler passes on only the frames worth captioning; it is itself a Source.
//
// Replays (Live false) are sampled by PTS so that every run picks the same
// frames: with interval D it takes the first frame whose PTS reaches the
// next multiple of D, then waits for the multiple after that frame's PTS. A
// 60 s 30 fps file at 1 s gives exactly the frames at PTS 0, 1, ..., 59 s.
//
// Live sources are sampled by wall clock: at each tick (the first at once)
// it takes the newest frame the source holds, so a slow consumer never sees
// stale frames; frames replaced in between count as stale.
//
// Unsampled frames are released at once. A Gap mark on a frame that is not
// sampled moves to the next sampled frame. Counts go to Metrics.
type Sampler struct {
	src      Source
	interval time.Duration
	m        Metrics
	id       string

	next       time.Duration // replay: PTS the next sample must reach
	tick       time.Time     // live: wall time of the next tick
	lastSeq    int64
	haveSeq    bool
	pendingGap bool
	gapDur     time.Duration
}

var _ Source = (*Sampler)(nil)

// NewSampler samples src per cfg; id names the source in metrics; m may be
// nil.
func NewSampler(src Source, id string, cfg SampleConfig, m Metrics) (*Sampler, error) {
	d, err := cfg.Interval()
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", id, err)
	}
	if m == nil {
		m = NopMetrics{}
	}
	return &Sampler{src: src, interval: d, m: m, id: id}, nil
}

// Health reports the wrapped source's outage state; a source that does not
// report one counts as up.
func (s *Sampler) Health() Health { return healthOf(s.src) }

var _ HealthReporter = (*Sampler)(nil)

// Live reports the wrapped source's liveness.
func (s *Sampler) Live() bool { return s.src.Live() }

// Close closes the wrapped source.
func (s *Sampler) Close() error { return s.src.Close() }

// Next returns the next sampled frame.
func (s *Sampler) Next(ctx context.Context) (Frame, error) {
	if s.src.Live() && s.interval > 0 {
		return s.nextLive(ctx)
	}
	for {
		f, err := s.src.Next(ctx)
		if err != nil {
			return Frame{}, err
		}
		s.countRead(f, false)
		if s.interval == 0 || f.PTS >= s.next {
			if s.interval > 0 {
				s.next = (f.PTS/s.interval + 1) * s.interval
			}
			return s.emit(f), nil
		}
		s.hold(f)
		_ = f.Close()
	}
}

func (s *Sampler) nextLive(ctx context.Context) (Frame, error) {
	first := s.tick.IsZero()
	if !first {
		if err := retry.Sleep(ctx, time.Until(s.tick)); err != nil {
			return Frame{}, err
		}
	}
	f, err := s.src.Next(ctx)
	if err != nil {
		return Frame{}, err
	}
	if first {
		// The grid starts at the first frame, not at the first call: a
		// connect that took most of an interval must not make the second
		// sample follow the first at once.
		s.tick = time.Now()
	}
	s.countRead(f, true)
	// Next tick on the grid after now; ticks missed by a slow consumer are
	// skipped, not made up.
	s.tick = s.tick.Add(s.interval)
	if behind := time.Since(s.tick); behind > 0 {
		s.tick = s.tick.Add((behind/s.interval + 1) * s.interval)
	}
	return s.emit(f), nil
}

// countRead counts the frames decoded up to f from the gap in Seq.
func (s *Sampler) countRead(f Frame, live bool) {
	n := int64(1)
	if s.haveSeq && f.Seq > s.lastSeq {
		n = f.Seq - s.lastSeq
	} else if !s.haveSeq && live && f.Seq > 0 {
		n = f.Seq + 1
	}
	s.haveSeq, s.lastSeq = true, f.Seq
	s.m.FramesRead(s.id, int(n))
	if live && n > 1 {
		s.m.FramesStale(s.id, int(n-1))
	}
}

func (s *Sampler) hold(f Frame) {
	if f.Gap {
		s.pendingGap = true
		s.gapDur += f.GapDuration
	}
}

func (s *Sampler) emit(f Frame) Frame {
	if s.pendingGap {
		f.Gap = true
		f.GapDuration += s.gapDur
		s.pendingGap, s.gapDur = false, 0
	}
	s.m.FrameSampled(s.id)
	return f
}

// Source returns the wrapped source (for a FileSource's progress, say).
func (s *Sampler) Source() Source { return s.src }

// ResumeAfter makes a replay's sampler continue as if every sample up to pts
// had been taken: the next sample is the first frame at or after the next
// interval boundary past pts, so a resumed replay samples the same frames
// as an uninterrupted one (lead: added for checkpoint resume).
func (s *Sampler) ResumeAfter(pts time.Duration) {
	if s.interval > 0 {
		s.next = (pts/s.interval + 1) * s.interval
	}
}
