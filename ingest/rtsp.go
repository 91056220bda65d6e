package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"
)

// Defaults for live captures (RTSP and devices).
const (
	DefaultOpenTimeout = 10 * time.Second
	DefaultReadTimeout = 5 * time.Second
	DefaultFailedReads = 3
)

// LiveOptions tune RTSP and device sources. The zero value uses the defaults.
type LiveOptions struct {
	// ID names the source in frames and logs. Default: the redacted URI.
	ID string
	// OpenTimeout bounds opening the stream or device. Default 10 s.
	OpenTimeout time.Duration
	// ReadTimeout bounds one blocking read (FFmpeg's socket timeout for
	// RTSP). Default 5 s.
	ReadTimeout time.Duration
	// FailedReads is how many failed reads in a row count as a disconnect.
	// A killed server makes every read fail at once. Default 3.
	FailedReads int
	// ProbeDuration caps how much of an RTSP stream FFmpeg analyses while
	// opening (its analyzeduration). Default 0: FFmpeg's own 5 s cap; it
	// stops earlier once it knows the codec and frame rate, about 1 s on a
	// 30 fps stream. 200 ms opens a local server in 0.4 s; too little may
	// fail to open streams that send their parameters late.
	ProbeDuration time.Duration
	// Keyframes decodes only the stream's keyframes (RTSP; see
	// DecodeKeyframes). Default false.
	Keyframes bool
	// SampleEvery is the sampling interval of the reader (see
	// SourceSpec.SampleEvery); it bounds DecodeAuto's keyframe probe.
	SampleEvery time.Duration
	// Logger receives the source's messages. Default: no logging.
	Logger zerolog.Logger
}

func (o LiveOptions) withDefaults() LiveOptions {
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = DefaultOpenTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.FailedReads <= 0 {
		o.FailedReads = DefaultFailedReads
	}
	return o
}

// captureGrabber reads a live gocv capture; it is a lazyGrabber.
type captureGrabber struct {
	c      *gocv.VideoCapture
	usePTS bool
}

var _ lazyGrabber = (*captureGrabber)(nil)

func (g *captureGrabber) advance(<-chan struct{}) grabbed {
	if !grabFrame(g.c) {
		return grabbed{}
	}
	r := grabbed{ok: true}
	if g.usePTS {
		r.pts, r.hasPTS = msecToPTS(g.c.Get(gocv.VideoCapturePosMsec))
	}
	return r
}

func (g *captureGrabber) retrieve(dst *gocv.Mat) bool { return retrieveFrame(g.c, dst) }

func (g *captureGrabber) grab(_ <-chan struct{}, dst *gocv.Mat) grabbed {
	if !g.c.Read(dst) {
		return grabbed{}
	}
	r := grabbed{ok: true}
	if g.usePTS {
		r.pts, r.hasPTS = msecToPTS(g.c.Get(gocv.VideoCapturePosMsec))
	}
	return r
}

func (g *captureGrabber) release() { _ = g.c.Close() }

// LiveSource is an RTSP stream or capture device read by its own goroutine.
// Only the newest decoded frame is kept; Next returns it (see Source.Live).
// Repeated failed reads (a disconnect) or a read timeout end the source with
// an error wrapping ErrTransient: wrap it in a Reconnecting to reopen.
type LiveSource struct {
	*liveReader
	kind Kind
}

var _ Source = (*LiveSource)(nil)

// Live reports true.
func (s *LiveSource) Live() bool { return true }

// Kind says whether this is an RTSP stream or a device.
func (s *LiveSource) Kind() Kind { return s.kind }

// rtspOptions is the OPENCV_FFMPEG_CAPTURE_OPTIONS value for an RTSP open.
func rtspOptions(transport string, readTimeout, probe time.Duration) string {
	o := fmt.Sprintf("rtsp_transport;%s|timeout;%d", transport, readTimeout.Microseconds())
	if probe > 0 {
		o += fmt.Sprintf("|analyzeduration;%d", probe.Microseconds())
	}
	return o
}

// OpenRTSP opens an RTSP stream parsed by ParseURI. Failures to connect
// wrap ErrTransient (a reopen may cure them); the error names the redacted
// URL. The PTS follows the stream's timestamps, rebased so that it only
// grows (servers reset them on rewind and reconnect).
func OpenRTSP(ctx context.Context, loc Location, opt LiveOptions) (*LiveSource, error) {
	if loc.Kind != KindRTSP {
		return nil, fmt.Errorf("source %q: not an rtsp:// URI", loc.Redacted)
	}
	opt = opt.withDefaults()
	id := opt.ID
	if id == "" {
		id = loc.Redacted
	}
	opts := rtspOptions(loc.Transport, opt.ReadTimeout, opt.ProbeDuration)
	if opt.Keyframes {
		opts += "|" + keyframeOption
	}
	c, err := openCapture(ctx, opt.OpenTimeout, opts,
		func() (*gocv.VideoCapture, error) {
			return gocv.VideoCaptureFileWithAPI(loc.URL, gocv.VideoCaptureFFmpeg)
		})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("rtsp source %q: %w", loc.Redacted, ctx.Err())
		}
		why := openFailure(ctx, loc, opt.OpenTimeout, errors.Is(err, errOpenTimeout))
		if ctx.Err() != nil {
			return nil, fmt.Errorf("rtsp source %q: %w", loc.Redacted, ctx.Err())
		}
		return nil, fmt.Errorf("rtsp source %q (%s): %w: %s", loc.Redacted, loc.Transport, ErrTransient, why)
	}
	log := opt.Logger.With().Str("source", id).Logger()
	closeWait := opt.ReadTimeout + 2*time.Second
	return &LiveSource{
		liveReader: startLive(id, log, &captureGrabber{c: c, usePTS: true}, opt.FailedReads, closeWait),
		kind:       KindRTSP,
	}, nil
}

// openFailure says why an RTSP open failed, as far as a DESCRIBE probe of
// the server can tell (OpenCV itself only reports failure): no connection,
// a wrong path (404), missing or wrong credentials (401), or a server that
// has the path but a stream FFmpeg cannot open. The text never holds the
// URL's password.
func openFailure(ctx context.Context, loc Location, openTimeout time.Duration, timedOut bool) string {
	why := "cannot connect or no H.264/H.265 stream at that path: check host, port, path and credentials"
	if timedOut {
		why = fmt.Sprintf("no answer within %s: check that the host is reachable", openTimeout)
	}
	p, ok := probeRTSP(ctx, loc.URL, min(probeTimeout, openTimeout))
	switch {
	case !ok:
	case timedOut && p.found():
		why = fmt.Sprintf("rtsp server at %s answered %d %s for path %s, but no stream arrived within %s", p.addr, p.status, p.reason, p.path, openTimeout)
	default:
		why = p.String()
	}
	return scrub(why, loc.URL)
}

// OpenDevice opens a V4L2 capture device (/dev/videoN). A device that is
// missing or busy gives an error wrapping ErrTransient (it may be plugged
// in later). The PTS is the capture clock since the open.
func OpenDevice(ctx context.Context, loc Location, opt LiveOptions) (*LiveSource, error) {
	if loc.Kind != KindDevice {
		return nil, fmt.Errorf("source %q: not a device URI", loc.Redacted)
	}
	opt = opt.withDefaults()
	id := opt.ID
	if id == "" {
		id = loc.Redacted
	}
	c, err := openCapture(ctx, opt.OpenTimeout, "", func() (*gocv.VideoCapture, error) {
		return gocv.VideoCaptureDeviceWithAPI(loc.Device, gocv.VideoCaptureV4L2)
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("device /dev/video%d: %w", loc.Device, ctx.Err())
		}
		return nil, fmt.Errorf("device /dev/video%d: %w: cannot open it (missing, busy or no permission): check ls -l /dev/video*", loc.Device, ErrTransient)
	}
	log := opt.Logger.With().Str("source", id).Logger()
	return &LiveSource{
		liveReader: startLive(id, log, &captureGrabber{c: c}, opt.FailedReads, opt.ReadTimeout+2*time.Second),
		kind:       KindDevice,
	}, nil
}
