package service

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"lookout/ingest"
	"lookout/pipeline"
	"lookout/sink"
	"lookout/spool"
)

// Every Prometheus collector of lookout is registered here, on the
// service's one registry. Packages do not register anything: ingest, sink
// and spool declare small recorder interfaces (ingest.Metrics,
// sink.Metrics, spool.Metrics, pipeline.Metrics) that the types below
// implement. Metric names and labels are part of the
// interface (docs/RELIABILITY.md, the e2e tests): change them nowhere.

// newRegistry is the service's registry, with the Go runtime's and the
// process's collectors (go_*, process_*).
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// register registers cs on reg, naming the first that collides.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

// sourceMetrics feeds ingest's counts to Prometheus.
type sourceMetrics struct {
	read, sampled, stale, down, reconnects *prometheus.CounterVec
	keyframesOnly, keyInterval             *prometheus.GaugeVec
	gated                                  *prometheus.CounterVec
	// onGated, when set, also sees each gated frame (the view of now).
	onGated func(id string)
}

var (
	_ ingest.Metrics        = (*sourceMetrics)(nil)
	_ ingest.DecodeReporter = (*sourceMetrics)(nil)
	_ ingest.GateReporter   = (*sourceMetrics)(nil)
)

func newSourceMetrics(reg prometheus.Registerer) (*sourceMetrics, error) {
	vec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"source"})
	}
	m := &sourceMetrics{
		read:    vec("lookout_source_frames_read_total", "Frames decoded, sampled or not."),
		sampled: vec("lookout_source_frames_sampled_total", "Frames the sampler passed on for captioning."),
		stale:   vec("lookout_source_frames_stale_total", "Live frames replaced by a newer one before the sampling tick."),
		down: vec("lookout_source_outages_total",
			"Outages of a live source: a disconnect, a stuck stream or a failed first open; the reader reopens it by itself (lookout_source_up is 0 meanwhile, lookout_source_restarts_total does not count it)."),
		reconnects: vec("lookout_source_reconnects_total", "Reopens of a live source that ended an outage."),
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"source"})
	}
	m.keyframesOnly = gauge("lookout_source_decode_keyframes",
		"1 while a file or RTSP source decodes keyframes only (sources[].decode keyframes, or auto with a keyframe interval within the sampling interval), 0 while it decodes every frame.")
	m.keyInterval = gauge("lookout_source_keyframe_interval_seconds",
		"Keyframe interval measured when the source opened (decode: auto); absent when not measured.")
	m.gated = vec("lookout_frames_gated_total", "Sampled frames not captioned because they barely differed from the last captioned one (sources[].gate).")
	if err := register(reg, m.read, m.sampled, m.stale, m.down, m.reconnects, m.keyframesOnly, m.keyInterval, m.gated); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *sourceMetrics) FramesRead(id string, n int) { m.read.WithLabelValues(id).Add(float64(n)) }
func (m *sourceMetrics) FrameSampled(id string)      { m.sampled.WithLabelValues(id).Inc() }
func (m *sourceMetrics) FramesStale(id string, n int) {
	m.stale.WithLabelValues(id).Add(float64(n))
}
func (m *sourceMetrics) SourceDown(id string)  { m.down.WithLabelValues(id).Inc() }
func (m *sourceMetrics) Reconnected(id string) { m.reconnects.WithLabelValues(id).Inc() }

func (m *sourceMetrics) DecodeChosen(id string, keyframesOnly bool, interval time.Duration) {
	m.keyframesOnly.WithLabelValues(id).Set(b2f(keyframesOnly))
	if interval > 0 {
		m.keyInterval.WithLabelValues(id).Set(interval.Seconds())
	}
}

func (m *sourceMetrics) FrameGated(id string) {
	m.gated.WithLabelValues(id).Inc()
	if m.onGated != nil {
		m.onGated(id)
	}
}

// deliveryMetrics feeds the Kafka sink's and its spool's counts to
// Prometheus: lookout_sink_{delivered,failed,spooled,dropped,rejected}_total,
// labelled by sink and source. A count of 0 is not reported.
type deliveryMetrics struct {
	delivered, failed, spooled, dropped, rejected *prometheus.CounterVec
}

var (
	_ sink.Metrics  = (*deliveryMetrics)(nil)
	_ spool.Metrics = (*deliveryMetrics)(nil)
)

func newDeliveryMetrics(reg prometheus.Registerer, sinkName string) (*deliveryMetrics, error) {
	vec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_sink_" + name + "_total", Help: help,
			ConstLabels: prometheus.Labels{"sink": sinkName},
		}, []string{"source"})
	}
	m := &deliveryMetrics{
		delivered: vec("delivered", "Records acknowledged by the sink."),
		failed:    vec("failed", "Records a delivery attempt failed for (spooled and retried behind a spool)."),
		spooled:   vec("spooled", "Records written to the disk spool."),
		dropped:   vec("dropped", "Records dropped because the spool was full (live sources only)."),
		rejected:  vec("rejected", "Records the broker refused for good (too large, invalid), kept in the spool's rejected.jsonl."),
	}
	if err := register(reg, m.delivered, m.failed, m.spooled, m.dropped, m.rejected); err != nil {
		return nil, err
	}
	return m, nil
}

func addCount(c *prometheus.CounterVec, src string, n int) {
	if n > 0 {
		c.WithLabelValues(src).Add(float64(n))
	}
}

func (m *deliveryMetrics) Delivered(src string, n int) { addCount(m.delivered, src, n) }
func (m *deliveryMetrics) Failed(src string, n int)    { addCount(m.failed, src, n) }
func (m *deliveryMetrics) Spooled(src string, n int)   { addCount(m.spooled, src, n) }
func (m *deliveryMetrics) Dropped(src string, n int)   { addCount(m.dropped, src, n) }
func (m *deliveryMetrics) Rejected(src string, n int)  { addCount(m.rejected, src, n) }

// registerSpoolGauges registers the broker and spool gauges, read from
// state at each scrape.
func registerSpoolGauges(reg prometheus.Registerer, state func() spool.State) error {
	gauge := func(name, help string, f func(spool.State) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(state()) })
	}
	return register(reg,
		gauge("lookout_kafka_broker_up", "1 while the broker acknowledges records, 0 after a failed delivery.",
			func(st spool.State) float64 { return b2f(st.BrokerUp) }),
		gauge("lookout_spool_records", "Unsent records waiting in the disk spool.",
			func(st spool.State) float64 { return float64(st.SpoolRecords) }),
		gauge("lookout_spool_bytes", "Bytes of unsent records in the disk spool.",
			func(st spool.State) float64 { return float64(st.SpoolBytes) }),
		gauge("lookout_spool_oldest_unsent_seconds", "Age of the oldest unsent record (0 when the spool is empty).",
			func(st spool.State) float64 { return st.OldestUnsentAge.Seconds() }),
	)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// fleetMetrics are the cluster mode's (lookout_cluster_*).
type fleetMetrics struct {
	members, owned  prometheus.Gauge
	rebalances, bad prometheus.Counter
	rejected        prometheus.Counter
	handover        prometheus.Histogram
	inGroup         prometheus.Collector
}

func newFleetMetrics(reg prometheus.Registerer) (*fleetMetrics, error) {
	m := &fleetMetrics{
		members: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lookout_cluster_members", Help: "Members of the group at the last rebalance."}),
		owned:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "lookout_cluster_sources_owned", Help: "Catalogue sources assigned to this instance."}),
		rebalances: prometheus.NewCounter(prometheus.CounterOpts{Name: "lookout_cluster_rebalances_total",
			Help: "Group rebalances this instance took part in."}),
		bad: prometheus.NewCounter(prometheus.CounterOpts{Name: "lookout_cluster_catalogue_bad_records_total",
			Help: "Catalogue records skipped: not JSON, or not a valid source."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "lookout_cluster_sources_refused_total",
			Help: "Catalogue sources this instance refused to open (cluster.allow)."}),
		handover: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lookout_cluster_handover_seconds",
			Help:    "Time from the start of a rebalance (or of the join) to this instance's new assignment.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30}}),
	}
	if err := register(reg, m.members, m.owned, m.rebalances, m.bad, m.rejected, m.handover); err != nil {
		return nil, err
	}
	return m, nil
}

// registerInGroup registers lookout_cluster_in_group, read from inGroup at
// each scrape.
func registerInGroup(reg prometheus.Registerer, inGroup func() bool) (prometheus.Collector, error) {
	c := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lookout_cluster_in_group",
		Help: "1 while this instance holds a current assignment from the group."}, func() float64 { return b2f(inGroup()) })
	return c, register(reg, c)
}

// pipelineMetrics feeds the pipeline's events (pipeline.Metrics) to
// Prometheus. Labels: source (a source's id), sink (the pipeline's sink
// label), stage (queue, preprocess, encode, decode), kind (caption, gap),
// reason (overflow, removed, killed).
type pipelineMetrics struct {
	// received: lookout_source_frames_received_total; dropped:
	// lookout_source_frames_dropped_total{reason}; restarts:
	// lookout_source_restarts_total (a live source's reconnects are
	// lookout_source_outages_total instead); queueDepth:
	// lookout_source_queue_depth; captionFailures:
	// lookout_caption_failures_total.
	received, dropped, restarts *prometheus.CounterVec
	queueDepth                  *prometheus.GaugeVec
	captionFailures             *prometheus.CounterVec
	batchSize                   prometheus.Histogram
	stageLatency                *prometheus.HistogramVec
	captionLatency              prometheus.Histogram
	workersBusy                 prometheus.Gauge
	sinkWritten, sinkFailed     *prometheus.CounterVec
	sinkWriteSeconds            *prometheus.HistogramVec
	records, suppressed         *prometheus.CounterVec
	// states serves lookout_source_up and lookout_source_state from the
	// pipeline's sources (watch).
	states *sourceStates
}

var _ pipeline.Metrics = (*pipelineMetrics)(nil)

func newPipelineMetrics(reg prometheus.Registerer) (*pipelineMetrics, error) {
	latency := prometheus.ExponentialBuckets(0.001, 2, 16) // 1ms .. ~33s
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64) prometheus.HistogramOpts {
		return prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}
	}
	m := &pipelineMetrics{
		received: counter("lookout_source_frames_received_total", "Sampled frames that reached the pipeline.", "source"),
		dropped: counter("lookout_source_frames_dropped_total",
			"Frames discarded before captioning (overflow: live queue full; removed; killed).", "source", "reason"),
		restarts: counter("lookout_source_restarts_total",
			"Reopens of a source by the pipeline after it returned an error; a live source's reconnects after an outage are counted in lookout_source_outages_total instead.", "source"),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lookout_source_queue_depth",
			Help: "Frames waiting in the source's queue."}, []string{"source"}),
		captionFailures: counter("lookout_caption_failures_total", "Frames the captioner failed on (no record produced).", "source"),
		batchSize: prometheus.NewHistogram(histogram("lookout_batch_size", "Frames per Caption call.",
			[]float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64})),
		stageLatency: prometheus.NewHistogramVec(histogram("lookout_stage_latency_seconds",
			"Time a frame spent in a stage (queue, preprocess, encode, decode).", latency), []string{"stage"}),
		captionLatency: prometheus.NewHistogram(histogram("lookout_caption_latency_seconds",
			"Capture time to delivery of the caption record to every sink.", latency)),
		workersBusy: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lookout_workers_busy", Help: "Caption calls in flight."}),
		sinkWritten: counter("lookout_sink_written_total", "Records a sink accepted as durable.", "sink"),
		sinkFailed:  counter("lookout_sink_write_failed_total", "Records in sink writes that failed (they are retried).", "sink"),
		sinkWriteSeconds: prometheus.NewHistogramVec(histogram("lookout_sink_write_seconds",
			"Duration of one sink Write call.", latency), []string{"sink"}),
		records: counter("lookout_records_total", "Records delivered to every sink.", "kind"),
		suppressed: counter("lookout_records_suppressed_total",
			"Caption records not published because nothing changed (sources[].emit: changes).", "source"),
		states: newSourceStates(),
	}
	if err := register(reg, m.received, m.dropped, m.restarts, m.queueDepth, m.captionFailures, m.batchSize,
		m.stageLatency, m.captionLatency, m.workersBusy, m.sinkWritten, m.sinkFailed, m.sinkWriteSeconds,
		m.records, m.suppressed, m.states); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *pipelineMetrics) FrameReceived(src string) { m.received.WithLabelValues(src).Inc() }
func (m *pipelineMetrics) FramesDropped(src, reason string, n int) {
	m.dropped.WithLabelValues(src, reason).Add(float64(n))
}
func (m *pipelineMetrics) SourceRestarted(src string) { m.restarts.WithLabelValues(src).Inc() }
func (m *pipelineMetrics) QueueDepth(src string, depth int) {
	m.queueDepth.WithLabelValues(src).Set(float64(depth))
}

// SourceRemoved deletes the removed source's gauge; its counters stay so
// that rates remain correct.
func (m *pipelineMetrics) SourceRemoved(src string) { m.queueDepth.DeleteLabelValues(src) }
func (m *pipelineMetrics) CaptionFailed(src string) { m.captionFailures.WithLabelValues(src).Inc() }
func (m *pipelineMetrics) BatchFormed(size int)     { m.batchSize.Observe(float64(size)) }
func (m *pipelineMetrics) StageLatency(stage string, d time.Duration) {
	m.stageLatency.WithLabelValues(stage).Observe(d.Seconds())
}
func (m *pipelineMetrics) CaptionLatency(d time.Duration) { m.captionLatency.Observe(d.Seconds()) }
func (m *pipelineMetrics) WorkersBusy(delta int)          { m.workersBusy.Add(float64(delta)) }

// SinkWrite counts a write's records as written or failed (failed writes
// are retried) and times it.
func (m *pipelineMetrics) SinkWrite(name string, n int, d time.Duration, err error) {
	m.sinkWriteSeconds.WithLabelValues(name).Observe(d.Seconds())
	if err != nil {
		m.sinkFailed.WithLabelValues(name).Add(float64(n))
		return
	}
	m.sinkWritten.WithLabelValues(name).Add(float64(n))
}
func (m *pipelineMetrics) RecordsEmitted(kind string, n int) {
	m.records.WithLabelValues(kind).Add(float64(n))
}
func (m *pipelineMetrics) RecordSuppressed(src string) { m.suppressed.WithLabelValues(src).Inc() }

// watch makes lookout_source_up and lookout_source_state show list's
// sources (a pipeline's Sources; the last one watched, if several).
func (m *pipelineMetrics) watch(list func() []pipeline.SourceState) { m.states.list.Store(&list) }

// sourceStates is a collector that reads the sources' states at each
// scrape, so that the gauges always agree with Sources and /readyz, and a
// removed source's series vanish with it.
type sourceStates struct {
	up, state *prometheus.Desc
	list      atomic.Pointer[func() []pipeline.SourceState]
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
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, b2f(s.State == pipeline.StateRunning), s.ID)
		for _, st := range pipeline.SourceStates {
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, b2f(s.State == st), s.ID, st)
		}
	}
}
