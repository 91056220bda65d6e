package service

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lookout/ingest"
	"lookout/sink"
	"lookout/spool"
)

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
	for _, c := range []prometheus.Collector{m.read, m.sampled, m.stale, m.down, m.reconnects, m.keyframesOnly, m.keyInterval, m.gated} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
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
	for _, c := range []prometheus.Collector{m.delivered, m.failed, m.spooled, m.dropped, m.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register sink metrics: %w", err)
		}
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
	for _, c := range []prometheus.Collector{
		gauge("lookout_kafka_broker_up", "1 while the broker acknowledges records, 0 after a failed delivery.",
			func(st spool.State) float64 { return b2f(st.BrokerUp) }),
		gauge("lookout_spool_records", "Unsent records waiting in the disk spool.",
			func(st spool.State) float64 { return float64(st.SpoolRecords) }),
		gauge("lookout_spool_bytes", "Bytes of unsent records in the disk spool.",
			func(st spool.State) float64 { return float64(st.SpoolBytes) }),
		gauge("lookout_spool_oldest_unsent_seconds", "Age of the oldest unsent record (0 when the spool is empty).",
			func(st spool.State) float64 { return st.OldestUnsentAge.Seconds() }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
