package sink

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics receives delivery counts. Every field is optional; nil callbacks
// are skipped. Callbacks must be cheap and must not block.
type Metrics struct {
	// Delivered counts records acknowledged by the broker, per source.
	Delivered func(sourceID string, n int)
	// Failed counts records the broker did not acknowledge, per source
	// (behind a spool they are spooled, not lost).
	Failed func(sourceID string, n int)
	// Spooled counts records written to the spool, per source.
	Spooled func(sourceID string, n int)
	// Dropped counts records dropped by a full spool's DropOldest policy.
	Dropped func(sourceID string, n int)
	// Rejected counts records the broker refused for good (too large,
	// invalid); the spool moves them to rejected.jsonl.
	Rejected func(sourceID string, n int)
}

func (m Metrics) rejected(src string, n int) {
	if m.Rejected != nil && n > 0 {
		m.Rejected(src, n)
	}
}

func (m Metrics) delivered(src string, n int) {
	if m.Delivered != nil && n > 0 {
		m.Delivered(src, n)
	}
}

func (m Metrics) failed(src string, n int) {
	if m.Failed != nil && n > 0 {
		m.Failed(src, n)
	}
}

func (m Metrics) spooled(src string, n int) {
	if m.Spooled != nil && n > 0 {
		m.Spooled(src, n)
	}
}

func (m Metrics) dropped(src string, n int) {
	if m.Dropped != nil && n > 0 {
		m.Dropped(src, n)
	}
}

// NewPromMetrics registers lookout_sink_{delivered,failed,spooled,dropped,rejected}_total
// counters, labelled by sink and source, on reg and returns callbacks that
// feed them.
func NewPromMetrics(reg prometheus.Registerer, sinkName string) (Metrics, error) {
	mk := func(name, help string) (*prometheus.CounterVec, error) {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_sink_" + name + "_total", Help: help,
			ConstLabels: prometheus.Labels{"sink": sinkName},
		}, []string{"source"})
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register sink metric %s: %w", name, err)
		}
		return c, nil
	}
	d, err := mk("delivered", "Records acknowledged by the sink.")
	if err != nil {
		return Metrics{}, err
	}
	f, err := mk("failed", "Records a delivery attempt failed for (spooled and retried behind a spool).")
	if err != nil {
		return Metrics{}, err
	}
	s, err := mk("spooled", "Records written to the disk spool.")
	if err != nil {
		return Metrics{}, err
	}
	dr, err := mk("dropped", "Records dropped because the spool was full (live sources only).")
	if err != nil {
		return Metrics{}, err
	}
	rj, err := mk("rejected", "Records the broker refused for good (too large, invalid), kept in the spool's rejected.jsonl.")
	if err != nil {
		return Metrics{}, err
	}
	add := func(c *prometheus.CounterVec) func(string, int) {
		return func(src string, n int) { c.WithLabelValues(src).Add(float64(n)) }
	}
	return Metrics{Delivered: add(d), Failed: add(f), Spooled: add(s), Dropped: add(dr), Rejected: add(rj)}, nil
}
