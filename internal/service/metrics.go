package service

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lookout/ingest"
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
