package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"lookout/ingest"
	"lookout/internal/logthrottle"
)

// queued is one sampled frame waiting to be captioned.
type queued struct {
	frame    ingest.Frame
	src      *sourceInfo
	enqueued time.Time
	// run names the opening of a live source the frame came from (empty
	// for replays); it keeps live record ids unique across restarts.
	run string
}

var errQueueClosed = errors.New("source queue closed")

// sourceInfo is what the stages after the queue know of a frame's source;
// it does not change while the source exists.
type sourceInfo struct {
	spec SourceSpec
	log  zerolog.Logger
}

// losses counts what a Kill cost, for Run's error. Each stage that gives
// up a frame or a record at a Kill adds to it.
type losses struct {
	uncaptioned atomic.Int64 // frames discarded or whose Caption call was cut off
	undelivered atomic.Int64 // records not written to every sink
}

// dropper releases frames that will not be captioned and counts them in
// lookout_source_frames_dropped_total by reason (overflow, removed,
// killed); killed frames are also losses.
type dropper struct {
	// release closes a frame's image. It is read at each call, so that tests
	// can count releases through Pipeline.release.
	release func(*ingest.Frame)
	m       Metrics
	lost    *losses
	// limit and interval: overflow logs once per interval per source.
	limit    *logthrottle.Throttle
	interval time.Duration
}

// overflow discards a live frame pushed out of a full queue (the queue's
// onDrop) and logs once per interval per source.
func (d dropper) overflow(it queued) {
	d.discard(it, "overflow")
	if ok, held := d.limit.Allow("drop/" + it.src.spec.ID); ok {
		it.src.log.Warn().Int("dropped", held+1).Int64("interval_ms", d.interval.Milliseconds()).
			Msg("live source queue full: dropping oldest frames (captioning is slower than the source)")
	}
}

// discard releases it and counts it under reason.
func (d dropper) discard(it queued, reason string) {
	d.release(&it.frame)
	d.m.FramesDropped(it.src.spec.ID, reason, 1)
	if reason == "killed" {
		d.lost.uncaptioned.Add(1)
	}
}

// discardAll drains q and discards what it held.
func (d dropper) discardAll(q *frameQueue, reason string) {
	for _, it := range q.drain() {
		d.discard(it, reason)
	}
}

// frameQueue is one source's bounded FIFO of sampled frames. One goroutine
// (the source's runner) pushes; the batcher pops. Policy when full: a live
// queue drops its oldest frame (onDrop releases and counts it), a replay
// queue blocks the pusher until there is room, so nothing is lost.
type frameQueue struct {
	live   bool
	size   int
	wake   chan<- struct{} // the batcher's wakeup, capacity 1
	onDrop func(queued)
	depth  func(n int) // Metrics.QueueDepth of the queue's source

	mu     sync.Mutex
	buf    []queued
	closed bool
	space  chan struct{} // capacity 1: signalled when a frame leaves
}

func newFrameQueue(live bool, size int, wake chan<- struct{}, depth func(n int), onDrop func(queued)) *frameQueue {
	return &frameQueue{
		live:   live,
		size:   size,
		wake:   wake,
		onDrop: onDrop,
		depth:  depth,
		buf:    make([]queued, 0, size),
		space:  make(chan struct{}, 1),
	}
}

// push appends it. It fails with errQueueClosed once the queue is closed and
// with ctx's error when ctx ends while a replay waits for room; on failure
// the caller still owns it.
func (q *frameQueue) push(ctx context.Context, it queued) error {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return errQueueClosed
		}
		var dropped queued
		var drop bool
		if len(q.buf) >= q.size {
			if !q.live {
				q.mu.Unlock()
				select {
				case <-q.space:
					continue
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			dropped, drop = q.buf[0], true
			copy(q.buf, q.buf[1:])
			q.buf = q.buf[:len(q.buf)-1]
		}
		q.buf = append(q.buf, it)
		q.depth(len(q.buf))
		q.mu.Unlock()
		if drop {
			q.onDrop(dropped)
		}
		signal(q.wake)
		return nil
	}
}

// pop takes the oldest frame without blocking.
func (q *frameQueue) pop() (queued, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.buf) == 0 {
		return queued{}, false
	}
	it := q.buf[0]
	copy(q.buf, q.buf[1:])
	q.buf[len(q.buf)-1] = queued{}
	q.buf = q.buf[:len(q.buf)-1]
	q.depth(len(q.buf))
	signal(q.space)
	return it, true
}

// close refuses further pushes; queued frames stay for pop or drain. It
// wakes the batcher, which forgets a queue once it is closed and empty.
func (q *frameQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	signal(q.space)
	signal(q.wake)
}

// drain closes the queue and removes every queued frame.
func (q *frameQueue) drain() []queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	out := q.buf
	q.buf = nil
	q.depth(0)
	return out
}

// finished reports whether the queue is closed and empty.
func (q *frameQueue) finished() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed && len(q.buf) == 0
}

func (q *frameQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.buf)
}

// signal does a non-blocking send on a capacity-1 channel.
func signal(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
