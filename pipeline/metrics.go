package pipeline

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gocv.io/x/gocv"

	"lookout/inference"
	"lookout/ingest"
	"lookout/sink"
)

// Metrics are the pipeline's Prometheus collectors. All names start with
// lookout_. Labels: source (a SourceSpec.ID), sink (see New), stage
// (queue, preprocess, encode, decode), kind (caption, gap), reason.
type Metrics struct {
	// FramesReceived counts sampled frames that reached the pipeline, per
	// source (lookout_source_frames_received_total).
	FramesReceived *prometheus.CounterVec
	// FramesDropped counts frames discarded before captioning, per source and
	// reason: overflow (live queue full, oldest dropped), removed (queued when
	// the source was removed), killed (queued at a hard stop)
	// (lookout_source_frames_dropped_total).
	FramesDropped *prometheus.CounterVec
	// SourceRestarts counts reopens by the pipeline after a source returned
	// an error, per source (lookout_source_restarts_total). A live source
	// reconnects inside its reader (ingest.Reconnecting) instead, so a
	// camera outage leaves it at 0: outages are counted by the reader
	// (lookout_source_outages_total) and shown by lookout_source_up.
	SourceRestarts *prometheus.CounterVec
	// QueueDepth is the number of frames waiting in a source's queue
	// (lookout_source_queue_depth).
	QueueDepth *prometheus.GaugeVec
	// CaptionFailures counts frames the captioner failed on, even when
	// retried alone; they give no record (lookout_caption_failures_total).
	CaptionFailures *prometheus.CounterVec
	// BatchSize is the number of frames per Caption call (lookout_batch_size).
	BatchSize prometheus.Histogram
	// StageLatency is the time a frame spent in each stage
	// (lookout_stage_latency_seconds{stage}).
	StageLatency *prometheus.HistogramVec
	// CaptionLatency is capture time to the moment every sink accepted the
	// frame's record (lookout_caption_latency_seconds).
	CaptionLatency prometheus.Histogram
	// WorkersBusy is the number of Caption calls in flight
	// (lookout_workers_busy).
	WorkersBusy prometheus.Gauge
	// SinkWritten and SinkFailed count records per sink whose Write attempt
	// succeeded or failed; failed writes are retried
	// (lookout_sink_written_total, lookout_sink_write_failed_total).
	SinkWritten *prometheus.CounterVec
	SinkFailed  *prometheus.CounterVec
	// SinkWriteSeconds is the duration of one Write call per sink
	// (lookout_sink_write_seconds).
	SinkWriteSeconds *prometheus.HistogramVec
	// Records counts records delivered to every sink, per kind
	// (lookout_records_total).
	Records *prometheus.CounterVec
	// RecordsSuppressed counts caption records a source's emit policy
	// (changes) kept back, per source (lookout_records_suppressed_total).
	RecordsSuppressed *prometheus.CounterVec

	// states serves lookout_source_up{source} and
	// lookout_source_state{source,state} from the sources of the pipeline
	// built with these metrics (the last one, if several).
	states *sourceStates
}

// NewMetrics creates the pipeline's collectors, unregistered: whoever
// serves them registers Collectors() (the service does, beside every other
// lookout_ collector, in internal/service/metrics.go).
func NewMetrics() *Metrics {
	latency := prometheus.ExponentialBuckets(0.001, 2, 16) // 1ms .. ~33s
	m := &Metrics{
		FramesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_source_frames_received_total",
			Help: "Sampled frames that reached the pipeline.",
		}, []string{"source"}),
		FramesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_source_frames_dropped_total",
			Help: "Frames discarded before captioning (overflow: live queue full; removed; killed).",
		}, []string{"source", "reason"}),
		SourceRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_source_restarts_total",
			Help: "Reopens of a source by the pipeline after it returned an error; a live source's reconnects after an outage are counted in lookout_source_outages_total instead.",
		}, []string{"source"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_source_queue_depth",
			Help: "Frames waiting in the source's queue.",
		}, []string{"source"}),
		CaptionFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_caption_failures_total",
			Help: "Frames the captioner failed on (no record produced).",
		}, []string{"source"}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lookout_batch_size",
			Help:    "Frames per Caption call.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64},
		}),
		StageLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lookout_stage_latency_seconds",
			Help:    "Time a frame spent in a stage (queue, preprocess, encode, decode).",
			Buckets: latency,
		}, []string{"stage"}),
		CaptionLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lookout_caption_latency_seconds",
			Help:    "Capture time to delivery of the caption record to every sink.",
			Buckets: latency,
		}),
		WorkersBusy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lookout_workers_busy",
			Help: "Caption calls in flight.",
		}),
		SinkWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_sink_written_total",
			Help: "Records a sink accepted as durable.",
		}, []string{"sink"}),
		SinkFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_sink_write_failed_total",
			Help: "Records in sink writes that failed (they are retried).",
		}, []string{"sink"}),
		SinkWriteSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lookout_sink_write_seconds",
			Help:    "Duration of one sink Write call.",
			Buckets: latency,
		}, []string{"sink"}),
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_records_total",
			Help: "Records delivered to every sink.",
		}, []string{"kind"}),
		RecordsSuppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_records_suppressed_total",
			Help: "Caption records not published because nothing changed (sources[].emit: changes).",
		}, []string{"source"}),
	}
	m.states = newSourceStates()
	return m
}

// Collectors lists every collector of m, the source-state gauges
// (lookout_source_up, lookout_source_state) included, for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.FramesReceived, m.FramesDropped, m.SourceRestarts, m.QueueDepth,
		m.CaptionFailures, m.BatchSize, m.StageLatency, m.CaptionLatency,
		m.WorkersBusy, m.SinkWritten, m.SinkFailed, m.SinkWriteSeconds, m.Records, m.RecordsSuppressed,
		m.states,
	}
}

// forgetSource deletes the per-source gauge of a removed source; its
// counters stay so that rates remain correct.
func (m *Metrics) forgetSource(id string) {
	m.QueueDepth.DeleteLabelValues(id)
}

// sourceStates is a collector that reads the sources' states at each
// scrape, so that the gauges always agree with Sources and /readyz, and a
// removed source's series vanish with it.
type sourceStates struct {
	up, state *prometheus.Desc
	list      atomic.Pointer[func() []SourceState]
}

func newSourceStates() *sourceStates {
	return &sourceStates{
		up: prometheus.NewDesc("lookout_source_up",
			"1 while the source delivers frames (state running), 0 while it is opening, reconnecting, backing off, failed or ended.",
			[]string{"source"}, nil),
		state: prometheus.NewDesc("lookout_source_state",
			"1 for the source's current state, 0 for the others (pending, opening, running, reconnecting, backoff, done, failed, stopped).",
			[]string{"source", "state"}, nil),
	}
}

func (c *sourceStates) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.state
}

func (c *sourceStates) Collect(ch chan<- prometheus.Metric) {
	list := c.list.Load()
	if list == nil {
		return
	}
	for _, s := range (*list)() {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, one(s.State == StateRunning), s.ID)
		for _, st := range SourceStates {
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, one(s.State == st), s.ID, st)
		}
	}
}

func one(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// The decorators below add metrics around the stages, so that sources,
// captioners and sinks stay free of them.

// meteredCaptioner observes batch sizes, stage latencies and busy workers.
type meteredCaptioner struct {
	inference.Captioner
	m *Metrics
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
	c.m.BatchSize.Observe(float64(len(images)))
	c.m.WorkersBusy.Inc()
	defer c.m.WorkersBusy.Dec()
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
		pre := c.m.StageLatency.WithLabelValues("preprocess")
		enc := c.m.StageLatency.WithLabelValues("encode")
		dec := c.m.StageLatency.WithLabelValues("decode")
		for _, r := range res {
			pre.Observe(r.Timings.Preprocess.Seconds())
			enc.Observe(r.Timings.Encode.Seconds())
			dec.Observe(r.Timings.Decode.Seconds())
		}
	}
	return res, err
}

// meteredSink counts written and failed records of one sink.
type meteredSink struct {
	sink.Sink
	written, failed prometheus.Counter
	seconds         prometheus.Observer
}

var _ sink.Sink = meteredSink{}

func newMeteredSink(s sink.Sink, name string, m *Metrics) meteredSink {
	return meteredSink{
		Sink:    s,
		written: m.SinkWritten.WithLabelValues(name),
		failed:  m.SinkFailed.WithLabelValues(name),
		seconds: m.SinkWriteSeconds.WithLabelValues(name),
	}
}

func (s meteredSink) Write(ctx context.Context, recs []sink.Record) error {
	start := time.Now()
	err := s.Sink.Write(ctx, recs)
	s.seconds.Observe(time.Since(start).Seconds())
	if err != nil {
		s.failed.Add(float64(len(recs)))
		return err
	}
	s.written.Add(float64(len(recs)))
	return nil
}

// meteredSource counts the frames a source delivers.
type meteredSource struct {
	ingest.Source
	received prometheus.Counter
}

var _ ingest.Source = meteredSource{}

func (s meteredSource) Next(ctx context.Context) (ingest.Frame, error) {
	f, err := s.Source.Next(ctx)
	if err == nil {
		s.received.Inc()
	}
	return f, err
}
