package pipeline

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"gocv.io/x/gocv"

	"lookout/sink"
)

// Config tunes a Pipeline. The zero value is usable: every zero field takes
// the default stated in its comment. Call Validate to report bad values with
// the field's name; New applies defaults and Run refuses an invalid Config.
type Config struct {
	// MaxBatch is the most frames captioned in one Caption call, taken from
	// all sources together. Default 8.
	MaxBatch int
	// MaxWait is how long a batch that is not yet full waits for more frames;
	// the timer starts when the batch's first frame is taken. Default 50ms.
	MaxWait time.Duration
	// Workers is the number of inference workers, that is concurrent Caption
	// calls. Default 1.
	Workers int
	// QueueSize bounds each source's queue of sampled frames. When it is
	// full, a live source drops its oldest queued frame (counted in
	// lookout_source_frames_dropped_total) and a replay blocks. Default 4.
	QueueSize int

	// SinkTimeout bounds one Write or Flush call on one sink; a call that
	// takes longer counts as failed and the write is retried. Default 10s.
	SinkTimeout time.Duration
	// SinkRetryMin and SinkRetryMax bound the exponential backoff between
	// retries of a failed sink write. A failed write is retried until it
	// succeeds or the pipeline is killed: records are never dropped.
	// Defaults 100ms and 5s.
	SinkRetryMin time.Duration
	SinkRetryMax time.Duration

	// RestartBackoffMin and RestartBackoffMax bound the exponential backoff
	// between reopens of a failed source by the pipeline (not the reconnects
	// of a live source's own reader, see the package doc). The backoff starts again from
	// RestartBackoffMin once the source delivers a frame. Defaults 500ms and
	// 30s.
	RestartBackoffMin time.Duration
	RestartBackoffMax time.Duration
	// RestartJitter is the fraction of each backoff delay that is random
	// (a delay d becomes a value in [d*(1-RestartJitter), d]), so that sources
	// failing together do not reconnect in lockstep. Must be in [0, 1).
	// Default 0.2; 0 means the default (use a tiny value such as 1e-9 for
	// practically none).
	RestartJitter float64

	// LogInterval is the least time between two log lines about the same
	// recurring problem (drops of one source, failures of one sink).
	// Default 5s.
	LogInterval time.Duration

	// SourceGrace is how long a source may be down (reconnecting, or
	// backing off between reopens) before it counts against readiness:
	// Ready fails when every source that has not ended is failed or down
	// for longer than this. Default 10s.
	SourceGrace time.Duration

	// ExitWhenSourcesDone makes Run shut down gracefully, as if its context
	// were cancelled, once no source is left running: each ended (end of
	// input, or a replay's fatal error) or was removed. Run then returns at
	// once when no source was added before it. For one-shot replays such as
	// `lookout caption`. Default false: Run serves until its context ends.
	ExitWhenSourcesDone bool

	// OnDelivered, when set, is called once per captioned frame after every
	// sink accepted its records (Write returned nil), in per-source order of
	// PTS. Calls come from one goroutine, one at a time; the hook must not
	// block for long, since delivery waits for it. Meant for the checkpoints
	// of resumable replays.
	OnDelivered func(sourceID string, ptsMillis int64)

	// OnCaptioned, when set, sees each caption record with its frame before
	// the frame is released (the annotated-video sink draws on it). img is
	// only valid during the call. Calls come from the inference workers: in
	// per-source order with one worker, possibly interleaved with several.
	OnCaptioned func(rec sink.Record, img gocv.Mat)

	// Derive, when set, sees every record the workers produce (captions
	// and gaps), in per-source order of pts, before the source's Emit
	// policy decides whether to publish it: a record emit: changes
	// suppresses is still seen. The records it returns (the rules'
	// alerts) are published right after it, to every sink, and acknowledged
	// with it. Calls come from the deliverer, one at a time; the hook must
	// not block for long.
	Derive func(rec sink.Record) []sink.Record
}

// Defaults of Config's fields.
const (
	DefaultMaxBatch          = 8
	DefaultMaxWait           = 50 * time.Millisecond
	DefaultWorkers           = 1
	DefaultQueueSize         = 4
	DefaultSinkTimeout       = 10 * time.Second
	DefaultSinkRetryMin      = 100 * time.Millisecond
	DefaultSinkRetryMax      = 5 * time.Second
	DefaultRestartBackoffMin = 500 * time.Millisecond
	DefaultRestartBackoffMax = 30 * time.Second
	DefaultRestartJitter     = 0.2
	DefaultLogInterval       = 5 * time.Second
	DefaultSourceGrace       = 10 * time.Second
	// DefaultHeartbeat is Emit.Heartbeat's value where a caller leaves it
	// unset (the service, lookout caption); 0 itself means no heartbeats.
	DefaultHeartbeat = time.Minute
)

// Validate reports every invalid field of c, naming it. Zero values are
// valid (they select the defaults).
func (c Config) Validate() error {
	var errs []error
	neg := func(name string, v int64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("pipeline config: %s must not be negative (0 selects the default), got %d", name, v))
		}
	}
	negDur := func(name string, v time.Duration) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("pipeline config: %s must not be negative (0 selects the default), got %s", name, v))
		}
	}
	neg("MaxBatch", int64(c.MaxBatch))
	negDur("MaxWait", c.MaxWait)
	neg("Workers", int64(c.Workers))
	neg("QueueSize", int64(c.QueueSize))
	negDur("SinkTimeout", c.SinkTimeout)
	negDur("SinkRetryMin", c.SinkRetryMin)
	negDur("SinkRetryMax", c.SinkRetryMax)
	negDur("RestartBackoffMin", c.RestartBackoffMin)
	negDur("RestartBackoffMax", c.RestartBackoffMax)
	negDur("LogInterval", c.LogInterval)
	negDur("SourceGrace", c.SourceGrace)
	if c.RestartJitter < 0 || c.RestartJitter >= 1 {
		errs = append(errs, fmt.Errorf("pipeline config: RestartJitter must be in [0, 1), got %g", c.RestartJitter))
	}
	d := c.withDefaults()
	if c.SinkRetryMin >= 0 && c.SinkRetryMax >= 0 && d.SinkRetryMin > d.SinkRetryMax {
		errs = append(errs, fmt.Errorf("pipeline config: SinkRetryMin (%s) must not exceed SinkRetryMax (%s)", d.SinkRetryMin, d.SinkRetryMax))
	}
	if c.RestartBackoffMin >= 0 && c.RestartBackoffMax >= 0 && d.RestartBackoffMin > d.RestartBackoffMax {
		errs = append(errs, fmt.Errorf("pipeline config: RestartBackoffMin (%s) must not exceed RestartBackoffMax (%s)", d.RestartBackoffMin, d.RestartBackoffMax))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.SinkTimeout == 0 {
		c.SinkTimeout = DefaultSinkTimeout
	}
	if c.SinkRetryMin == 0 {
		c.SinkRetryMin = DefaultSinkRetryMin
	}
	if c.SinkRetryMax == 0 {
		c.SinkRetryMax = DefaultSinkRetryMax
	}
	if c.RestartBackoffMin == 0 {
		c.RestartBackoffMin = DefaultRestartBackoffMin
	}
	if c.RestartBackoffMax == 0 {
		c.RestartBackoffMax = DefaultRestartBackoffMax
	}
	if c.RestartJitter == 0 {
		c.RestartJitter = DefaultRestartJitter
	}
	if c.LogInterval == 0 {
		c.LogInterval = DefaultLogInterval
	}
	if c.SourceGrace == 0 {
		c.SourceGrace = DefaultSourceGrace
	}
	return c
}

// SourceSpec describes one source to the pipeline. Sampling happens in the
// source itself (package ingest): every frame it returns is captioned.
type SourceSpec struct {
	// ID names the source in records, logs and metric labels. Required and
	// unique among running sources; it must not contain secrets.
	ID string
	// Labels are copied into every record of the source.
	Labels map[string]string
	// Live selects the queue policy and the failure policy. Live sources
	// (rtsp, device, synth) drop their oldest queued frame when the queue is
	// full and are reopened after any failure: by their reader when it
	// reconnects by itself (ingest.Reconnecting; the pipeline then never
	// reopens it, and an error the reader returns ends the source as
	// failed), else by the pipeline. Replays (Live false) block when the
	// queue is full, losing nothing, and end for good on a fatal (not
	// ErrTransient) error, which Run then reports: a corrupt file fails the
	// same way on every reopen. See the package doc for who restarts what.
	Live bool
	// Emit says which caption records are published. Default: every one.
	Emit Emit
	// Task is the Florence-2 task this source's frames run ("" = the
	// model's default); AddSource refuses a task the captioner does not run.
	Task string
}

// Emit is a source's publishing policy (sources[].emit).
type Emit struct {
	// Changes publishes a caption record only when its caption differs
	// from the source's last published caption record (attributes ride
	// along); the record then carries the caption it replaces and how long
	// that held (PrevCaption, HeldMillis). Default false: every record.
	Changes bool
	// Heartbeat, with Changes, publishes a heartbeat record repeating the
	// current state when nothing was published for this long of stream
	// time, so a quiet camera can be told from a dead one. 0: none.
	Heartbeat time.Duration
}

func (s SourceSpec) validate() error {
	if s.ID == "" {
		return errors.New("pipeline: source ID is empty: give every source a unique id")
	}
	return nil
}

func (s SourceSpec) clone() SourceSpec {
	s.Labels = maps.Clone(s.Labels)
	return s
}
