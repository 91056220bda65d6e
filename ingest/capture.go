package ingest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"gocv.io/x/gocv"
)

// OpenCV's FFmpeg backend reads these variables from the process
// environment: the capture options on every open, the log level once.
const (
	envCaptureOptions = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
	envFFmpegLogLevel = "OPENCV_FFMPEG_LOGLEVEL"
)

// optionGate lets capture opens run concurrently as long as they want the
// same OPENCV_FFMPEG_CAPTURE_OPTIONS value; an open that wants another value
// waits until the opens in flight are done. (The options travel in an
// environment variable that OpenCV reads at some point during the open, so
// the value must not change while any open runs.) A slow RTSP open thus
// delays only opens with other options, e.g. files, never those like it.
type optionGate struct {
	mu   sync.Mutex
	cond *sync.Cond
	cur  string
	n    int
}

var (
	gate            = newOptionGate()
	userOptsOnce    sync.Once
	userCaptureOpts string
)

func newOptionGate() *optionGate {
	g := &optionGate{}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *optionGate) enter(v string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.n > 0 && g.cur != v {
		g.cond.Wait()
	}
	if g.n == 0 {
		if v == "" {
			_ = os.Unsetenv(envCaptureOptions)
		} else {
			_ = os.Setenv(envCaptureOptions, v)
		}
		g.cur = v
	}
	g.n++
}

func (g *optionGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.n == 0 {
		g.cond.Broadcast()
	}
}

// withCaptureOptions runs open with OPENCV_FFMPEG_CAPTURE_OPTIONS set to the
// user's own value (if any) followed by opts (see optionGate). On first use
// it also quiets FFmpeg's own stderr logging (decode errors of damaged files
// would flood it and break JSON logs; ingest reports damage itself) unless
// OPENCV_FFMPEG_LOGLEVEL is already set. OpenCV's own warnings are quieted
// at init (opencvlog.go).
func withCaptureOptions(opts string, open func()) {
	userOptsOnce.Do(func() {
		userCaptureOpts = os.Getenv(envCaptureOptions)
		if _, ok := os.LookupEnv(envFFmpegLogLevel); !ok {
			_ = os.Setenv(envFFmpegLogLevel, "-8") // AV_LOG_QUIET
		}
	})
	v := userCaptureOpts
	if opts != "" {
		if v != "" {
			v += "|"
		}
		v += opts
	}
	gate.enter(v)
	defer gate.leave()
	open()
}

// errOpenTimeout marks an open that did not finish in time.
var errOpenTimeout = errors.New("open timed out")

// openCapture opens a capture in its own goroutine and waits for it up to
// timeout or ctx. A capture that opens after the caller gave up is closed by
// that goroutine, so it never leaks and is never used half-open.
func openCapture(ctx context.Context, timeout time.Duration, opts string,
	open func() (*gocv.VideoCapture, error)) (*gocv.VideoCapture, error) {
	type result struct {
		c   *gocv.VideoCapture
		err error
	}
	ch := make(chan result, 1)
	abandon := make(chan struct{})
	go func() {
		var r result
		withCaptureOptions(opts, func() { r.c, r.err = open() })
		if r.err == nil && !r.c.IsOpened() {
			r.err = errors.New("capture did not open")
		}
		if r.err != nil && r.c != nil {
			_ = r.c.Close() // VideoCapture_New allocated it even on failure
			r.c = nil
		}
		select {
		case ch <- r:
		case <-abandon:
			if r.c != nil {
				_ = r.c.Close()
			}
		}
	}()
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	select {
	case r := <-ch:
		return r.c, r.err
	case <-timer:
		close(abandon)
		return nil, fmt.Errorf("%w after %s", errOpenTimeout, timeout)
	case <-ctx.Done():
		close(abandon)
		return nil, ctx.Err()
	}
}

// msecToPTS converts OpenCV's CAP_PROP_POS_MSEC to a Duration rounded to the
// microsecond, so 999.9999999 ms from a 1/15360 time base reads as 1 s.
func msecToPTS(msec float64) (time.Duration, bool) {
	if math.IsNaN(msec) || math.IsInf(msec, 0) || msec < 0 || msec > 1e12 {
		return 0, false
	}
	return time.Duration(math.Round(msec*1000)) * time.Microsecond, true
}
