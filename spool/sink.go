package spool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"lookout/internal/retry"
	"lookout/sink"
)

// Producer is what a Sink needs of a broker client (sink.KafkaSink is
// one): send messages in order and say which were not acknowledged.
type Producer interface {
	// Name labels the producer in metrics and logs.
	Name() string
	// Produce sends msgs and waits for the broker's acknowledgement. On
	// failure the error is, or wraps, a *sink.DeliveryError listing the
	// messages not acknowledged and those refused for good; any other error
	// means none was acknowledged.
	Produce(ctx context.Context, msgs []sink.Message) error
	// MaxBatch is the most messages per Produce that reach each partition
	// in one request, so that a failure cannot let a later message of a
	// source overtake an earlier one.
	MaxBatch() int
	// AttemptTimeout is the longest one Produce may take with the client's
	// own retries.
	AttemptTimeout() time.Duration
	Close() error
}

// Metrics receives a Sink's counts per source. Implementations must be
// cheap and must not block; the service's feed Prometheus.
type Metrics interface {
	// Spooled counts records written to the spool.
	Spooled(sourceID string, n int)
	// Dropped counts records dropped by a full spool's DropOldest policy.
	Dropped(sourceID string, n int)
	// Rejected counts records the broker refused for good; they are in
	// rejected.jsonl in the spool directory.
	Rejected(sourceID string, n int)
}

type nopMetrics struct{}

func (nopMetrics) Spooled(string, int)  {}
func (nopMetrics) Dropped(string, int)  {}
func (nopMetrics) Rejected(string, int) {}

// Defaults of SinkConfig.
const (
	DefaultRetryInterval    = 250 * time.Millisecond
	DefaultMaxRetryInterval = 5 * time.Second
	DefaultCloseTimeout     = 10 * time.Second
)

// SinkConfig configures a Sink.
type SinkConfig struct {
	// Spool configures the disk spool. Spool.Dir is required; Spool.Logger
	// is replaced by Logger with component=spool.
	Spool Config
	// Policy picks the full-spool policy of a source's records. Default:
	// Block for every source (nothing lost). Live sources should use
	// DropOldest.
	Policy func(sourceID string) FullPolicy
	// SendTimeout bounds one delivery attempt, direct or replayed. It is
	// raised to the producer's AttemptTimeout, because returning earlier
	// would leave the client holding a batch that it writes later, out of
	// order. Default: that minimum.
	SendTimeout time.Duration
	// RetryInterval is the first pause between replay attempts while the
	// broker is down; it doubles up to MaxRetryInterval (a retry.Backoff
	// without jitter). Defaults DefaultRetryInterval and
	// DefaultMaxRetryInterval.
	RetryInterval, MaxRetryInterval time.Duration
	// ReplayBatch is the most records per replay attempt. Default and
	// maximum: the producer's MaxBatch, so that each partition gets at
	// most one produce request per attempt and a failure cannot let later
	// records of a source overtake earlier ones.
	ReplayBatch int
	// CloseTimeout bounds how long Close tries to empty the spool into
	// Kafka; what remains is kept on disk for the next start. Default 10s.
	CloseTimeout time.Duration
	// Metrics receives spooled, dropped and rejected counts. Default: none.
	Metrics Metrics
	// Logger receives broker state changes (with component=kafka) and
	// spool reports (with component=spool). Give it no component field:
	// zerolog would write the key twice in one line.
	Logger zerolog.Logger
}

// State is a snapshot for /readyz and metrics.
type State struct {
	// BrokerUp is false from a failed delivery until the next acknowledged one.
	BrokerUp bool
	// SpoolRecords and SpoolBytes count unsent records on disk.
	SpoolRecords int
	SpoolBytes   int64
	// OldestUnsentAge is how long the oldest unsent record has waited (0
	// when the spool is empty).
	OldestUnsentAge time.Duration
	// Dropped counts records dropped by a full spool since start.
	Dropped int64
	// Damaged counts damaged byte runs found in the spool since start.
	Damaged int64
	// Rejected counts records the broker refused for good since start; they
	// are in rejected.jsonl in the spool directory.
	Rejected int64
	// LastError is the last delivery error, or "".
	LastError string
}

// Sink puts a disk spool between the pipeline and a Producer (the Kafka
// sink).
//
// Write sends directly while the spool is empty. When the broker does not
// acknowledge, the unacknowledged records are appended to the spool
// (fsync'd) and Write returns nil: the records are durable. While the spool
// holds anything, new records are appended behind it rather than sent, so
// each source's records reach Kafka in the order written. A background
// replayer sends spooled records in order as soon as the broker answers,
// and trims what was acknowledged. Delivery is at-least-once: a record may
// arrive twice (same Record.ID) after a retry or a crash, never zero
// times unless the spool was full under the DropOldest policy (counted).
// Safe for concurrent use; concurrent Writes are serialised.
type Sink struct {
	cfg   SinkConfig
	p     Producer
	spool *Spool
	log   zerolog.Logger

	writeMu sync.Mutex
	closed  bool

	up       atomic.Bool
	rejected atomic.Int64
	lastErr  atomic.Value // string
	kick     chan struct{}
	runCtx   context.Context
	stop     context.CancelFunc
	done     chan struct{}
}

var _ sink.Sink = (*Sink)(nil)

// NewSink opens the spool and starts the replayer, which sends any
// records left by a previous run. The Sink owns p and closes it.
func NewSink(p Producer, cfg SinkConfig) (*Sink, error) {
	if p == nil {
		return nil, errors.New("spooling sink: no producer given")
	}
	cfg.SendTimeout = max(cfg.SendTimeout, p.AttemptTimeout())
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.MaxRetryInterval <= 0 {
		cfg.MaxRetryInterval = DefaultMaxRetryInterval
	}
	if cfg.ReplayBatch <= 0 || cfg.ReplayBatch > p.MaxBatch() {
		cfg.ReplayBatch = p.MaxBatch()
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	if cfg.Policy == nil {
		cfg.Policy = func(string) FullPolicy { return Block }
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	sc := cfg.Spool
	sc.Logger = cfg.Logger.With().Str("component", "spool").Logger()
	userDrop := sc.OnDrop
	sc.OnDrop = func(src string) {
		cfg.Metrics.Dropped(src, 1)
		if userDrop != nil {
			userDrop(src)
		}
	}
	sp, err := Open(sc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sink{cfg: cfg, p: p, spool: sp, log: cfg.Logger.With().Str("component", "kafka").Logger(), kick: make(chan struct{}, 1),
		runCtx: ctx, stop: cancel, done: make(chan struct{})}
	s.up.Store(true)
	s.lastErr.Store("")
	go s.replay()
	s.wake()
	return s, nil
}

// Name is the sink's label in metrics and logs: the producer's.
func (s *Sink) Name() string { return s.p.Name() }

// Write delivers recs with each source's configured full-spool policy.
func (s *Sink) Write(ctx context.Context, recs []sink.Record) error {
	return s.write(ctx, recs, s.cfg.Policy)
}

// WritePolicy delivers recs with one full-spool policy for all of them.
func (s *Sink) WritePolicy(ctx context.Context, recs []sink.Record, p FullPolicy) error {
	return s.write(ctx, recs, func(string) FullPolicy { return p })
}

func (s *Sink) write(ctx context.Context, recs []sink.Record, policy func(string) FullPolicy) error {
	if len(recs) == 0 {
		return nil
	}
	payloads := make([][]byte, len(recs))
	for i, r := range recs {
		b, err := sink.Encode(r)
		if err != nil {
			return fmt.Errorf("spooling sink: %w", err)
		}
		payloads[i] = b
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.closed {
		return sink.ErrClosed
	}
	var pending []int
	if s.spool.Len() == 0 {
		if pending = s.sendDirect(ctx, recs, payloads); len(pending) == 0 {
			return nil
		}
	} else {
		pending = make([]int, len(recs))
		for i := range pending {
			pending[i] = i
		}
	}
	// Append in order, grouping consecutive records that share a policy.
	for start := 0; start < len(pending); {
		p := policy(recs[pending[start]].SourceID)
		end := start + 1
		for end < len(pending) && policy(recs[pending[end]].SourceID) == p {
			end++
		}
		items := make([]Item, 0, end-start)
		for _, i := range pending[start:end] {
			items = append(items, Item{SourceID: recs[i].SourceID, Live: p == DropOldest, Payload: payloads[i]})
		}
		_, err := s.spool.Append(ctx, items, p)
		for src, n := range countItems(items) {
			s.cfg.Metrics.Spooled(src, n)
		}
		if err != nil {
			s.wake()
			return fmt.Errorf("spooling sink: %w", err)
		}
		start = end
	}
	s.wake()
	return nil
}

// sendDirect sends recs in chunks of at most MaxBatch records, so that
// each partition gets one produce request per chunk, and returns the
// indexes of the records to spool: after a failure, the failed records and
// every later chunk, in order.
func (s *Sink) sendDirect(ctx context.Context, recs []sink.Record, payloads [][]byte) (pending []int) {
	bs := s.p.MaxBatch()
	for start := 0; start < len(recs); start += bs {
		end := min(start+bs, len(recs))
		msgs := make([]sink.Message, 0, end-start)
		for i := start; i < end; i++ {
			msgs = append(msgs, sink.Message{SourceID: recs[i].SourceID, ID: recs[i].ID, Value: payloads[i]})
		}
		sctx, cancel := context.WithTimeout(ctx, s.cfg.SendTimeout)
		err := s.p.Produce(sctx, msgs)
		cancel()
		if err == nil {
			s.setUp()
			continue
		}
		s.setDown(err)
		for _, i := range sink.FailedIndexes(err, len(msgs)) {
			pending = append(pending, start+i)
		}
		for i := end; i < len(recs); i++ {
			pending = append(pending, i)
		}
		break
	}
	return pending
}

func countItems(items []Item) map[string]int {
	m := map[string]int{}
	for _, it := range items {
		m[it.SourceID]++
	}
	return m
}

func (s *Sink) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Sink) setUp() {
	if !s.up.Swap(true) {
		s.log.Info().Msg("kafka broker acknowledges again; replaying the spool")
	}
}

func (s *Sink) setDown(err error) {
	s.lastErr.Store(err.Error())
	if s.up.Swap(false) {
		s.log.Warn().Err(err).Msg("kafka broker does not acknowledge; spooling records to disk")
	}
}

// replay sends spooled records in order until the sink is closed.
func (s *Sink) replay() {
	defer close(s.done)
	bo := retry.New(retry.Policy{Min: s.cfg.RetryInterval, Max: s.cfg.MaxRetryInterval})
	for {
		select {
		case <-s.runCtx.Done():
			return
		case <-s.kick:
		}
		for s.spool.Len() > 0 && s.runCtx.Err() == nil {
			entries, err := s.spool.Peek(s.cfg.ReplayBatch)
			if err != nil {
				s.log.Error().Err(err).Msg("spool read failed; retrying")
			}
			if len(entries) == 0 {
				s.spool.Release()
				if err != nil && retry.Sleep(s.runCtx, bo.Next()) != nil {
					return
				}
				continue
			}
			msgs := make([]sink.Message, len(entries))
			for i, e := range entries {
				msgs[i] = entryMessage(e)
			}
			ctx, cancel := context.WithTimeout(s.runCtx, s.cfg.SendTimeout)
			err = s.p.Produce(ctx, msgs)
			cancel()
			if err == nil {
				s.spool.Ack(entries)
				s.setUp()
				bo.Reset()
				continue
			}
			// Acknowledge the delivered prefix only, so order is kept.
			failed := sink.FailedIndexes(err, len(entries))
			first := 0
			if len(failed) > 0 {
				first = failed[0]
			}
			if first > 0 {
				s.spool.Ack(entries[:first])
			} else {
				s.spool.Release()
			}
			if isPermanentAt(err, first) {
				// The broker refused the record for good, perhaps only as
				// part of a batch: try it alone before setting it aside.
				if s.sendAlone(entries[first]) {
					continue
				}
			}
			s.setDown(err)
			if retry.Sleep(s.runCtx, bo.Next()) != nil {
				return
			}
		}
	}
}

// entryMessage is the message of a spooled record.
func entryMessage(e Entry) sink.Message {
	id, _ := payloadKeys(e.Payload)
	return sink.Message{SourceID: e.SourceID, ID: id, Value: e.Payload}
}

// State returns broker state and spool figures.
func (s *Sink) State() State {
	st := s.spool.Stats()
	out := State{BrokerUp: s.up.Load(), SpoolRecords: st.Records, SpoolBytes: st.Bytes,
		Dropped: st.Dropped, Damaged: st.Damaged, Rejected: s.rejected.Load(), LastError: s.lastErr.Load().(string)}
	if !st.OldestUnsent.IsZero() {
		out.OldestUnsentAge = time.Since(st.OldestUnsent)
	}
	return out
}

// Flush waits until the spool is empty (every record acknowledged by the
// broker) or ctx ends.
func (s *Sink) Flush(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		n := s.spool.Len()
		if n == 0 {
			return nil
		}
		s.wake()
		select {
		case <-ctx.Done():
			return fmt.Errorf("spooling sink: %d records still spooled: %w", n, ctx.Err())
		case <-s.done:
			return fmt.Errorf("spooling sink: closed with %d records spooled", n)
		case <-t.C:
		}
	}
}

// Close stops accepting writes, tries for up to CloseTimeout to deliver
// what is spooled, stops the replayer and closes the spool and the producer
// (the Kafka sink). Records still spooled stay on disk and are sent by the next
// Sink opened on the same directory.
func (s *Sink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CloseTimeout)
	defer cancel()
	return s.CloseContext(ctx)
}

// CloseContext is Close with the time for emptying the spool bounded by ctx
// instead of CloseTimeout: a cancelled ctx closes at once (on a second
// interrupt); what is unsent stays on disk for the next start.
func (s *Sink) CloseContext(ctx context.Context) error {
	s.writeMu.Lock()
	if s.closed {
		s.writeMu.Unlock()
		return nil
	}
	s.closed = true
	s.writeMu.Unlock()
	if err := s.Flush(ctx); err != nil {
		s.log.Warn().Int("records", s.spool.Len()).Str("dir", s.cfg.Spool.Dir).
			Msg("closing with records still spooled; they are sent on the next start")
	}
	s.stop()
	<-s.done
	return errors.Join(s.spool.Close(), s.p.Close())
}
