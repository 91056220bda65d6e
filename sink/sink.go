package sink

import (
	"context"
	"errors"
)

// Sink accepts records. Write returns nil only once every record is durable
// (acknowledged by the broker, written to the spool or to the file), so
// callers may advance checkpoints when it returns. Sinks are safe for
// concurrent use unless stated otherwise.
type Sink interface {
	Write(ctx context.Context, recs []Record) error
	Flush(ctx context.Context) error
	Close() error
}

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("sink is closed")

// Metrics receives delivery counts per source. Implementations must be
// cheap and must not block; the service's feed Prometheus.
type Metrics interface {
	// Delivered counts records acknowledged by the broker.
	Delivered(sourceID string, n int)
	// Failed counts records the broker did not acknowledge (behind a spool
	// they are spooled, not lost).
	Failed(sourceID string, n int)
}

type nopMetrics struct{}

func (nopMetrics) Delivered(string, int) {}
func (nopMetrics) Failed(string, int)    {}
