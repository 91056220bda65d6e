package ingest

import "sync/atomic"

// Metrics receives a source's counts. Implementations must be safe for
// concurrent use and must not block; the pipeline wires them to Prometheus.
// Every method gets the source id (never an unredacted URI).
type Metrics interface {
	// FramesRead counts decoded frames (n may exceed 1 when a live source
	// replaced frames nobody took).
	FramesRead(source string, n int)
	// FrameSampled counts a frame the Sampler passed on.
	FrameSampled(source string)
	// FramesStale counts live frames replaced by a newer one before the
	// Sampler's tick: decoded, never captioned.
	FramesStale(source string, n int)
	// SourceDown counts outages: a live source failed and will be reopened.
	SourceDown(source string)
	// Reconnected counts successful reopens after an outage.
	Reconnected(source string)
}

// NopMetrics discards every count.
type NopMetrics struct{}

// The NopMetrics methods do nothing.
func (NopMetrics) FramesRead(string, int)  {}
func (NopMetrics) FrameSampled(string)     {}
func (NopMetrics) FramesStale(string, int) {}
func (NopMetrics) SourceDown(string)       {}
func (NopMetrics) Reconnected(string)      {}

// Counters is a Metrics that keeps totals over all sources in memory, for
// tests and simple tools.
type Counters struct {
	Read, Sampled, Stale, Down, Reconnects atomic.Int64
}

// The Counters methods add to the totals.
func (c *Counters) FramesRead(_ string, n int)  { c.Read.Add(int64(n)) }
func (c *Counters) FrameSampled(string)         { c.Sampled.Add(1) }
func (c *Counters) FramesStale(_ string, n int) { c.Stale.Add(int64(n)) }
func (c *Counters) SourceDown(string)           { c.Down.Add(1) }
func (c *Counters) Reconnected(string)          { c.Reconnects.Add(1) }

var (
	_ Metrics = NopMetrics{}
	_ Metrics = (*Counters)(nil)
)
