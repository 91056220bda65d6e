package pipeline

import (
	"context"
	"fmt"
	"time"

	"gocv.io/x/gocv"

	"lookout/inference"
	"lookout/ingest"
	"lookout/sink"
)

// Metrics records what the pipeline does, one method per event, so that
// the pipeline holds no Prometheus collectors: the service implements it
// (internal/service/metrics.go, which registers every lookout_ collector
// and documents the metric names), and New falls back to NopMetrics, so
// tests and `lookout caption` need nothing. Labels: source (a
// SourceSpec.ID), sink (see New), stage (queue, preprocess, encode,
// decode), kind (caption, gap), reason (overflow, removed, killed). The
// sources' states (lookout_source_up, lookout_source_state) are read from
// Pipeline.Sources, not recorded.
type Metrics interface {
	// FrameReceived: a sampled frame reached the pipeline.
	FrameReceived(source string)
	// FramesDropped: n frames discarded before captioning, by reason.
	FramesDropped(source, reason string, n int)
	// SourceRestarted: the pipeline reopened a source after an error.
	SourceRestarted(source string)
	// QueueDepth: frames now waiting in a source's queue.
	QueueDepth(source string, depth int)
	// SourceRemoved: a source left; per-source gauges go, counters stay.
	SourceRemoved(source string)
	// CaptionFailed: the captioner failed on a frame, even alone.
	CaptionFailed(source string)
	// BatchFormed: a Caption call of size frames starts.
	BatchFormed(size int)
	// StageLatency: time one frame spent in stage.
	StageLatency(stage string, d time.Duration)
	// CaptionLatency: capture to delivery of the frame's record to every sink.
	CaptionLatency(d time.Duration)
	// WorkersBusy: Caption calls in flight changed by delta (+1, -1).
	WorkersBusy(delta int)
	// SinkWrite: one Write of records to sink took d and returned err.
	SinkWrite(sink string, records int, d time.Duration, err error)
	// RecordsEmitted: n records of kind delivered to every sink.
	RecordsEmitted(kind string, n int)
	// RecordSuppressed: a source's emit policy (changes) kept a record back.
	RecordSuppressed(source string)
}

// NopMetrics records nothing.
type NopMetrics struct{}

var _ Metrics = NopMetrics{}

func (NopMetrics) FrameReceived(string)                        {}
func (NopMetrics) FramesDropped(string, string, int)           {}
func (NopMetrics) SourceRestarted(string)                      {}
func (NopMetrics) QueueDepth(string, int)                      {}
func (NopMetrics) SourceRemoved(string)                        {}
func (NopMetrics) CaptionFailed(string)                        {}
func (NopMetrics) BatchFormed(int)                             {}
func (NopMetrics) StageLatency(string, time.Duration)          {}
func (NopMetrics) CaptionLatency(time.Duration)                {}
func (NopMetrics) WorkersBusy(int)                             {}
func (NopMetrics) SinkWrite(string, int, time.Duration, error) {}
func (NopMetrics) RecordsEmitted(string, int)                  {}
func (NopMetrics) RecordSuppressed(string)                     {}

// The decorators below add metrics around the stages, so that sources,
// captioners and sinks stay free of them.

// meteredCaptioner observes batch sizes, stage latencies and busy workers.
type meteredCaptioner struct {
	inference.Captioner
	m Metrics
}

var _ inference.TaskCaptioner = meteredCaptioner{}

func (c meteredCaptioner) Caption(ctx context.Context, images []gocv.Mat) ([]inference.Result, error) {
	return c.CaptionTask(ctx, images, "", nil)
}

// SupportsTask passes the question to the captioner (false when it has no tasks).
func (c meteredCaptioner) SupportsTask(task string) bool {
	tc, ok := c.Captioner.(inference.TaskCaptioner)
	return ok && tc.SupportsTask(task)
}

// CaptionTask runs task ("" = a plain Caption) with the same metrics.
func (c meteredCaptioner) CaptionTask(ctx context.Context, images []gocv.Mat, task string, over *inference.GenerationOptions) ([]inference.Result, error) {
	c.m.BatchFormed(len(images))
	c.m.WorkersBusy(1)
	defer c.m.WorkersBusy(-1)
	var res []inference.Result
	var err error
	if tc, ok := c.Captioner.(inference.TaskCaptioner); ok && (task != "" || over != nil) {
		res, err = tc.CaptionTask(ctx, images, task, over)
	} else if task != "" {
		err = fmt.Errorf("captioner %s does not run task %s", c.Name(), task)
	} else {
		res, err = c.Captioner.Caption(ctx, images)
	}
	if err == nil {
		for _, r := range res {
			c.m.StageLatency("preprocess", r.Timings.Preprocess)
			c.m.StageLatency("encode", r.Timings.Encode)
			c.m.StageLatency("decode", r.Timings.Decode)
		}
	}
	return res, err
}

// meteredSink times and counts the writes of one sink.
type meteredSink struct {
	sink.Sink
	name string
	m    Metrics
}

var _ sink.Sink = meteredSink{}

func newMeteredSink(s sink.Sink, name string, m Metrics) meteredSink {
	return meteredSink{Sink: s, name: name, m: m}
}

func (s meteredSink) Write(ctx context.Context, recs []sink.Record) error {
	start := time.Now()
	err := s.Sink.Write(ctx, recs)
	s.m.SinkWrite(s.name, len(recs), time.Since(start), err)
	return err
}

// meteredSource counts the frames a source delivers.
type meteredSource struct {
	ingest.Source
	received func()
}

var _ ingest.Source = meteredSource{}

func (s meteredSource) Next(ctx context.Context) (ingest.Frame, error) {
	f, err := s.Source.Next(ctx)
	if err == nil {
		s.received()
	}
	return f, err
}
