package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"lookout/internal/retry"
)

// Defaults of ReconnectConfig.
const (
	DefaultMinBackoff = 250 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
	DefaultJitter     = 0.2
	DefaultStuckAfter = 10 * time.Second
)

// Opener opens a source once; errors a retry may cure wrap ErrTransient.
type Opener func(ctx context.Context) (Source, error)

// ReconnectConfig tunes a Reconnecting source. The zero value uses the
// defaults.
type ReconnectConfig struct {
	// MinBackoff is the wait before the second reopen attempt of an outage
	// (the first is immediate); each further failure doubles it. Default 250 ms.
	MinBackoff time.Duration
	// MaxBackoff caps the wait between attempts. Default 5 s.
	MaxBackoff time.Duration
	// Jitter spreads each wait uniformly by ±Jitter of itself, so that many
	// cameras behind one failed switch do not reconnect in lockstep.
	// Default 0.2; a negative value disables it.
	Jitter float64
	// StuckAfter: no new frame for this long counts as a failure and the
	// source is reopened. Default 10 s; a negative value disables it.
	StuckAfter time.Duration
	// FailFirstOpen returns an error from Next when the very first open
	// fails, instead of retrying (for one-shot commands). Default false.
	FailFirstOpen bool
	// Metrics receives outages and reconnects. Default: none.
	Metrics Metrics
	// Logger receives outage and recovery messages. Default: none.
	Logger zerolog.Logger
}

func (c ReconnectConfig) withDefaults() ReconnectConfig {
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.Jitter == 0 {
		c.Jitter = DefaultJitter // negative stays negative: withDefaults must be idempotent
	}
	c.Jitter = min(c.Jitter, 1)
	if c.StuckAfter == 0 {
		c.StuckAfter = DefaultStuckAfter
	}
	if c.Metrics == nil {
		c.Metrics = NopMetrics{}
	}
	return c
}

// policy is the reopen backoff: doubling from MinBackoff to MaxBackoff,
// spread by ±Jitter.
func (c ReconnectConfig) policy() retry.Policy {
	return retry.Policy{Min: c.MinBackoff, Max: c.MaxBackoff, Jitter: c.Jitter}
}

// Health is the outage state of a source that hides outages behind a
// blocking Next (see HealthReporter).
type Health struct {
	// Down is set while the source is in an outage: it failed, or has not
	// opened yet after a failed first attempt, and is being reopened.
	Down bool
	// Since is when the outage began; zero while up.
	Since time.Time
	// LastErr is the newest failure: the latest failed reopen while down,
	// the last outage's after recovery, nil if the source never failed. It
	// says which failure it is where the protocol tells (RTSP: no
	// connection, 404 for a wrong path, 401 for credentials).
	LastErr error
	// Reconnects is set by sources that reopen themselves after outages
	// (Reconnecting, and a Sampler or Gate around one): a supervisor must
	// leave reopening them to the source, since whatever error such a source
	// still returns is one a reopen would not cure.
	Reconnects bool
}

// HealthReporter is implemented by sources whose Next blocks through
// outages (Reconnecting, and a Sampler around one), so that a supervisor
// can show that a source is down while Next waits. Health is safe to call
// from any goroutine.
type HealthReporter interface {
	Health() Health
}

var _ HealthReporter = (*Reconnecting)(nil)

// healthOf is src's outage state; a source that does not report one counts
// as up. Wrappers (Sampler, Gate) pass their source's on with it.
func healthOf(src Source) Health {
	if h, ok := src.(HealthReporter); ok {
		return h.Health()
	}
	return Health{}
}

// Reconnecting keeps a live source going across outages. It opens the
// source on the first Next; when the source fails with an error wrapping
// ErrTransient, or gives no frame for StuckAfter, it closes it and reopens
// it with exponential backoff and jitter, for as long as ctx lives.
//
// Frames keep one numbering across reopens: Seq and PTS only grow, and the
// PTS advances by the wall time of the outage. The first frame after an
// outage has Gap set and GapDuration = its capture time minus that of the
// last frame before. Fatal errors (not ErrTransient) and ErrEndOfInput are
// returned as they are.
//
// Close may be called from another goroutine while Next waits: Next then
// returns an error.
type Reconnecting struct {
	id   string
	open Opener
	cfg  ReconnectConfig
	log  zerolog.Logger
	bo   *retry.Backoff // owned by Next

	closeCtx    context.Context
	closeCancel context.CancelFunc

	mu     sync.Mutex
	cur    Source
	closed bool

	// Owned by Next.
	opened    bool
	attempts  int
	down      bool
	downSince time.Time
	lastErr   error
	rebase    bool
	haveLast  bool
	seqBase   int64
	ptsBase   time.Duration
	lastSeq   int64
	lastPTS   time.Duration
	lastWall  time.Time
}

var _ Source = (*Reconnecting)(nil)

// NewReconnecting wraps the source that open opens; id names it in frames,
// logs and metrics.
func NewReconnecting(id string, open Opener, cfg ReconnectConfig) *Reconnecting {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Reconnecting{
		id: id, open: open, cfg: cfg, bo: retry.New(cfg.policy()),
		log:      cfg.Logger.With().Str("source", id).Logger(),
		closeCtx: ctx, closeCancel: cancel,
	}
}

// Live reports true: Reconnecting is for live sources.
func (r *Reconnecting) Live() bool { return true }

// Down reports whether the source is in an outage, and since when.
func (r *Reconnecting) Down() (bool, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.down, r.downSince
}

// Health reports the outage state; safe to call from any goroutine.
func (r *Reconnecting) Health() Health {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := Health{Down: r.down, LastErr: r.lastErr, Reconnects: true}
	if r.down {
		h.Since = r.downSince
	}
	return h
}

func (r *Reconnecting) errClosed() error { return fmt.Errorf("source %q: source is closed", r.id) }

// Next returns the next frame, reopening the source as needed.
func (r *Reconnecting) Next(ctx context.Context) (Frame, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.closeCtx, cancel)
	defer stop()
	for {
		r.mu.Lock()
		cur, closed := r.cur, r.closed
		r.mu.Unlock()
		if closed {
			return Frame{}, r.errClosed()
		}
		if err := ctx.Err(); err != nil {
			return Frame{}, err
		}
		if cur == nil {
			if err := r.reopen(ctx); err != nil {
				if r.closeCtx.Err() != nil {
					return Frame{}, r.errClosed()
				}
				return Frame{}, err
			}
			continue
		}
		sctx, scancel := ctx, context.CancelFunc(func() {})
		if r.cfg.StuckAfter > 0 {
			sctx, scancel = context.WithTimeout(ctx, r.cfg.StuckAfter)
		}
		f, err := cur.Next(sctx)
		stuck := sctx.Err() != nil && ctx.Err() == nil
		scancel()
		if err == nil {
			return r.emit(f), nil
		}
		if ctx.Err() != nil {
			if r.closeCtx.Err() != nil {
				return Frame{}, r.errClosed()
			}
			return Frame{}, ctx.Err()
		}
		if stuck {
			err = fmt.Errorf("source %q: %w: no frame for %s (stuck stream)", r.id, ErrTransient, r.cfg.StuckAfter)
		}
		if !errors.Is(err, ErrTransient) {
			return Frame{}, err
		}
		r.markDown(err) // before drop: closing may wait for a read in flight
		r.drop(cur)
	}
}

// reopen makes one open attempt, after the backoff the attempts so far ask
// for. It returns nil when the caller should loop (opened, or failed
// transiently) and an error when Next must return it.
func (r *Reconnecting) reopen(ctx context.Context) error {
	if err := retry.Sleep(ctx, r.delay()); err != nil {
		return err
	}
	src, err := r.open(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, ErrTransient) || (!r.opened && r.cfg.FailFirstOpen) {
			return err
		}
		r.attempts++
		switch {
		case r.markDown(err): // a new outage: logged there
		case r.attempts&(r.attempts-1) == 0: // 1, 2, 4, 8, ...: no log flood
			r.log.Warn().Err(err).Int("attempts", r.attempts).Int64("down_for_ms", time.Since(r.downSince).Milliseconds()).
				Msg("source still down; retrying")
		default:
			r.log.Debug().Err(err).Int("attempts", r.attempts).Msg("reopen failed")
		}
		return nil
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = src.Close()
		return r.errClosed()
	}
	r.cur = src
	wasDown := r.down
	r.down = false
	r.mu.Unlock()
	if wasDown && r.opened {
		r.cfg.Metrics.Reconnected(r.id)
		r.log.Info().Int("attempts", r.attempts+1).Int64("down_for_ms", time.Since(r.downSince).Milliseconds()).Msg("source reconnected")
	} else if wasDown {
		r.log.Info().Int("attempts", r.attempts+1).Msg("source opened")
	}
	r.rebase = r.haveLast
	r.attempts = 0
	r.bo.Reset()
	r.opened = true
	return nil
}

// delay is the wait before the next open attempt: none for the first of an
// outage, then the backoff's.
func (r *Reconnecting) delay() time.Duration {
	if r.attempts == 0 {
		return 0
	}
	return r.bo.Next()
}

// markDown records err as the newest failure and, at the start of an
// outage, counts and logs it; it reports whether the outage began now.
func (r *Reconnecting) markDown(err error) bool {
	r.mu.Lock()
	already := r.down
	r.lastErr = err
	if !already {
		r.down, r.downSince = true, time.Now()
	}
	r.mu.Unlock()
	if already {
		return false
	}
	r.cfg.Metrics.SourceDown(r.id)
	r.log.Warn().Err(err).Msg("source down; reconnecting")
	return true
}

func (r *Reconnecting) drop(cur Source) {
	r.mu.Lock()
	if r.cur == cur {
		r.cur = nil
	}
	r.mu.Unlock()
	_ = cur.Close()
}

// emit renumbers f into the wrapper's continuous Seq and PTS and marks the
// first frame after an outage.
func (r *Reconnecting) emit(f Frame) Frame {
	if r.rebase {
		r.rebase = false
		gap := f.CaptureTime.Sub(r.lastWall)
		r.seqBase = r.lastSeq + 1 - f.Seq
		r.ptsBase = r.lastPTS + max(gap, time.Microsecond) - f.PTS
		f.Gap, f.GapDuration = true, gap
	}
	f.SourceID = r.id
	f.Seq += r.seqBase
	f.PTS += r.ptsBase
	if r.haveLast && f.PTS <= r.lastPTS {
		f.PTS = r.lastPTS + time.Microsecond
	}
	if r.haveLast && f.Seq <= r.lastSeq {
		f.Seq = r.lastSeq + 1
	}
	r.haveLast = true
	r.lastSeq, r.lastPTS, r.lastWall = f.Seq, f.PTS, f.CaptureTime
	return f
}

// Close closes the current source and makes Next return. It is safe to
// call more than once.
func (r *Reconnecting) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	cur := r.cur
	r.cur = nil
	r.mu.Unlock()
	r.closeCancel()
	if cur != nil {
		return cur.Close()
	}
	return nil
}
