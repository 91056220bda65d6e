package ingest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"
)

// grabber produces the frames of a live source. grab blocks until a frame is
// decoded into dst, or fails; it may return early with ok false when stop is
// closed. It is only ever called from the live reader goroutine, and release
// is called by that goroutine after its last grab.
type grabber interface {
	grab(stop <-chan struct{}, dst *gocv.Mat) (g grabbed)
	release()
}

// lazyGrabber decodes without converting (advance) and converts only the
// frames somebody waits for (retrieve, the frame advanced to last): a camera
// sampled once a second pays the BGR conversion and the copy once a second,
// not 30 times.
type lazyGrabber interface {
	grabber
	advance(stop <-chan struct{}) grabbed
	retrieve(dst *gocv.Mat) bool
}

// grabbed is what one grab returned.
type grabbed struct {
	ok bool
	// pts is the stream's own timestamp if hasPTS.
	pts    time.Duration
	hasPTS bool
	// exact means pts is the frame's time as is (synthetic scenes), not a
	// stream clock to rebase.
	exact bool
	// truth is the ground truth of a synthetic frame.
	truth map[string]string
}

// liveReader runs a grabber in its own goroutine and keeps only the newest
// frame: a live source never queues stale frames. Next returns the newest
// frame not yet returned (waiting for one if needed). After failedReads
// failed grabs in a row the reader stops and Next reports an error wrapping
// ErrTransient.
//
// Close never races a grab: the reader goroutine owns the grabber and
// releases it after its last grab; Close signals it and waits up to
// closeWait for that (the grab in flight is bounded by the read timeout).
type liveReader struct {
	id          string
	log         zerolog.Logger
	g           grabber
	failedReads int
	closeWait   time.Duration

	stop     chan struct{}
	done     chan struct{}
	notify   chan struct{}
	stopOnce sync.Once

	// want is set by Next while it waits: a lazy grabber converts the next
	// frame only then.
	want atomic.Bool

	mu     sync.Mutex
	latest *Frame
	err    error
	closed bool
}

func startLive(id string, log zerolog.Logger, g grabber, failedReads int, closeWait time.Duration) *liveReader {
	if failedReads < 1 {
		failedReads = 1
	}
	r := &liveReader{
		id: id, log: log, g: g, failedReads: failedReads, closeWait: closeWait,
		stop: make(chan struct{}), done: make(chan struct{}), notify: make(chan struct{}, 1),
	}
	go r.run()
	return r
}

func (r *liveReader) run() {
	defer close(r.done)
	defer r.g.release()
	var clock liveClock
	var seq int64
	fails := 0
	// spare is the image of a frame nobody took, reused for the next grab so
	// that a fast camera does not allocate a new picture per frame.
	var spare *gocv.Mat
	defer func() {
		if spare != nil {
			_ = spare.Close()
		}
	}()
	for {
		select {
		case <-r.stop:
			r.drop()
			return
		default:
		}
		var mat gocv.Mat
		if spare != nil {
			mat, spare = *spare, nil
		} else {
			mat = gocv.NewMat()
		}
		var g grabbed
		lazy, isLazy := r.g.(lazyGrabber)
		if isLazy {
			g = lazy.advance(r.stop)
		} else {
			g = r.g.grab(r.stop, &mat)
		}
		now := time.Now()
		if g.ok && isLazy && !r.want.Load() {
			// Decoded, not converted: nobody waits for a frame now. It keeps
			// the clock and the numbering going.
			if !g.exact {
				clock.next(g.pts, g.hasPTS, now)
			}
			seq++
			fails = 0
			spare = &mat
			continue
		}
		if g.ok && isLazy && !lazy.retrieve(&mat) {
			g.ok = false
		}
		if !g.ok || mat.Empty() {
			_ = mat.Close()
			select {
			case <-r.stop:
				r.drop()
				return
			default:
			}
			fails++
			if fails >= r.failedReads {
				r.fail(fmt.Errorf("source %q: %w: %d reads in a row failed (stream ended or server gone)", r.id, ErrTransient, fails))
				return
			}
			continue
		}
		fails = 0
		pts := g.pts
		if !g.exact {
			pts = clock.next(g.pts, g.hasPTS, now)
		}
		f := &Frame{SourceID: r.id, Seq: seq, PTS: pts, CaptureTime: now, Image: mat, Truth: g.truth}
		seq++
		var ok bool
		if spare, ok = r.publish(f); !ok {
			return
		}
	}
}

// publish makes f the latest frame and wakes a waiting Next. It returns the
// image of the frame f supersedes, if nobody took it, for reuse; ok is false
// when the reader was closed (f is then closed).
func (r *liveReader) publish(f *Frame) (spare *gocv.Mat, ok bool) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = f.Close()
		return nil, false
	}
	if old := r.latest; old != nil { // superseded before anyone took it
		spare = &old.Image
	}
	r.latest = f
	r.want.Store(false)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return spare, true
}

func (r *liveReader) fail(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *liveReader) drop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.latest != nil {
		_ = r.latest.Close()
		r.latest = nil
	}
}

// Next returns the newest frame not yet returned, waiting for one.
func (r *liveReader) Next(ctx context.Context) (Frame, error) {
	for {
		r.mu.Lock()
		switch {
		case r.closed:
			r.mu.Unlock()
			return Frame{}, fmt.Errorf("source %q: source is closed", r.id)
		case r.latest != nil:
			f := *r.latest
			r.latest = nil
			r.mu.Unlock()
			return f, nil
		case r.err != nil:
			err := r.err
			r.mu.Unlock()
			return Frame{}, err
		}
		r.want.Store(true)
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		case <-r.notify:
		case <-r.done:
			r.mu.Lock()
			if r.latest == nil && r.err == nil && !r.closed {
				r.err = fmt.Errorf("source %q: %w: reader stopped", r.id, ErrTransient)
			}
			r.mu.Unlock()
		}
	}
}

// Close stops the reader and waits for it to release the capture.
func (r *liveReader) Close() error {
	r.stopOnce.Do(func() { close(r.stop) })
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.drop()
	select {
	case <-r.done:
	case <-time.After(r.closeWait):
		// The grab in flight ignores everything but its own timeout; the
		// reader releases the capture when it returns.
		r.log.Warn().Int64("waited_ms", r.closeWait.Milliseconds()).Msg("read still in flight at close; the capture is released when it returns")
	}
	return nil
}

// liveClock turns a live stream's timestamps into a PTS that only grows and
// follows wall time where the stream's clock jumps: RTSP servers reset their
// timestamps when a looped file rewinds or a session restarts, and record ids
// are built from the PTS.
type liveClock struct {
	started    bool
	out        time.Duration
	lastStream time.Duration
	lastWall   time.Time
}

// maxStreamLead bounds how far a stream's clock may run ahead of wall time
// between two frames before the wall clock is trusted instead.
const maxStreamLead = 2 * time.Second

func (c *liveClock) next(stream time.Duration, ok bool, wall time.Time) time.Duration {
	if !c.started {
		c.started = true
		c.lastStream, c.lastWall = stream, wall
		return 0
	}
	wallD := wall.Sub(c.lastWall)
	d := stream - c.lastStream
	if !ok || d <= 0 || d > wallD+maxStreamLead {
		d = wallD
	}
	if d <= 0 {
		d = time.Microsecond
	}
	c.out += d
	c.lastStream, c.lastWall = stream, wall
	return c.out
}
