// Package ingest opens video sources (files, RTSP cameras, capture devices and
// synthetic scenes), decodes them with GoCV and emits the frames worth
// captioning.
package ingest

import (
	"context"
	"errors"
	"time"

	"gocv.io/x/gocv"
)

// Frame is one decoded picture. The receiver owns Image and must Close it.
type Frame struct {
	SourceID string
	// Seq counts decoded frames of this source from 0 (sampled or not).
	Seq int64
	// PTS is the presentation time from the stream, relative to its start.
	PTS time.Duration
	// CaptureTime is the wall-clock time the frame was read.
	CaptureTime time.Time
	// Image is BGR, 8 bits per channel.
	Image gocv.Mat
	// Gap is set on the first frame after the source came back from an outage;
	// GapDuration says how long it was away.
	Gap         bool
	GapDuration time.Duration
	// Truth holds the ground-truth slots of a synthetic frame (see package
	// synth); nil for camera and file frames.
	Truth map[string]string
}

// Close releases the frame's image.
func (f *Frame) Close() error {
	if f.Image.Ptr() != nil {
		return f.Image.Close()
	}
	return nil
}

// Source is one opened video input. Next blocks until a frame is available,
// ctx is done, or the input fails. Sources are not safe for concurrent use.
type Source interface {
	// Next returns the next decoded frame. At the end of a finite input it
	// returns ErrEndOfInput. Errors that a reconnect may cure wrap
	// ErrTransient; all others are fatal for this source.
	Next(ctx context.Context) (Frame, error)
	// Live reports whether frames arrive in real time (rtsp, device, synth):
	// live sources drop stale frames instead of queueing them.
	Live() bool
	// Close releases the input. It is safe to call more than once.
	Close() error
}

var (
	// ErrEndOfInput marks the normal end of a finite source (a file).
	ErrEndOfInput = errors.New("end of input")
	// ErrTransient marks failures a reopen may cure (network drop, stuck stream).
	ErrTransient = errors.New("transient source failure")
)
