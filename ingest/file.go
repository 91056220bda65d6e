package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"
)

// FileOptions tune a FileSource. The zero value replays as fast as the
// reader pulls frames.
type FileOptions struct {
	// ID names the source in frames and logs. Default: the path.
	ID string
	// Realtime paces replay at native speed: a frame is returned no earlier
	// than its PTS after the first one. Default false.
	Realtime bool
	// StartAt skips frames whose PTS is before it (they are decoded and
	// released), for resuming a replay from a checkpoint. Default 0.
	StartAt time.Duration
	// Logger receives the damage reports. Default: no logging.
	Logger zerolog.Logger
}

// Damage describes one stretch of a file that could not be decoded.
type Damage struct {
	// AfterFrame is the index of the last good frame before the damage (by
	// PTS x frame rate), -1 if the damage is at the start.
	AfterFrame int64
	// AfterPTS is the PTS of that frame.
	AfterPTS time.Duration
	// ResumePTS is the PTS of the first good frame after the damage; -1 if
	// decoding never resumed (a truncated file).
	ResumePTS time.Duration
	// LostFrames estimates the frames lost, from the frame rate.
	LostFrames int64
}

// String renders d for messages.
func (d Damage) String() string {
	if d.ResumePTS < 0 {
		return fmt.Sprintf("decoding stopped after frame %d (pts %s): about %d frames missing (truncated or damaged tail)",
			d.AfterFrame, d.AfterPTS, d.LostFrames)
	}
	return fmt.Sprintf("undecodable stretch after frame %d (pts %s), resumed at pts %s: about %d frames lost",
		d.AfterFrame, d.AfterPTS, d.ResumePTS, d.LostFrames)
}

// FileSource replays a recorded video file through OpenCV's FFmpeg backend.
//
// PTS comes from the container (CAP_PROP_POS_MSEC, rounded to the
// microsecond), or from the frame index and rate where the container has
// none. A damaged stretch in the middle is skipped: decodable frames keep
// coming and the damage is logged once per stretch with its frame position
// (see Damages). At the end of the file Next returns ErrEndOfInput.
//
// Next and Close may be called from different goroutines: Close waits for a
// read in flight, so the capture is never closed under a read.
type FileSource struct {
	id   string
	path string
	opt  FileOptions
	log  zerolog.Logger

	mu       sync.Mutex
	cap      *gocv.VideoCapture
	closed   bool
	eof      bool
	fps      float64
	count    int64
	seq      int64
	lastPTS  time.Duration
	fails    int
	wallZero time.Time
	ptsZero  time.Duration
	damages  []Damage
}

var _ Source = (*FileSource)(nil)

// OpenFile opens path for replay. A missing or unreadable file, a directory,
// or a file FFmpeg cannot decode gives a one-line error naming the path.
func OpenFile(ctx context.Context, path string, opt FileOptions) (*FileSource, error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("video file %q does not exist: check the path", path)
	case err != nil:
		return nil, fmt.Errorf("video file %q: cannot read it: %w", path, err)
	case st.IsDir():
		return nil, fmt.Errorf("video file %q is a directory: name a video file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("video file %q: cannot read it: %w", path, err)
	}
	_ = f.Close()
	c, err := openCapture(ctx, 0, "", func() (*gocv.VideoCapture, error) {
		return gocv.VideoCaptureFileWithAPI(path, gocv.VideoCaptureFFmpeg)
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("video file %q: %w", path, ctx.Err())
		}
		return nil, fmt.Errorf("video file %q: FFmpeg cannot decode it (not a video, or truncated before its index): check it with ffprobe", path)
	}
	s := &FileSource{id: opt.ID, path: path, opt: opt, cap: c}
	if s.id == "" {
		s.id = path
	}
	s.log = opt.Logger.With().Str("source", s.id).Logger()
	s.fps = c.Get(gocv.VideoCaptureFPS)
	if !(s.fps > 0 && s.fps < 1000) {
		s.fps = 0
	}
	if n := c.Get(gocv.VideoCaptureFrameCount); n > 0 && n < 1e9 {
		s.count = int64(n)
	}
	s.lastPTS = -1
	return s, nil
}

// Live reports false: a file is replayed, nothing is dropped.
func (s *FileSource) Live() bool { return false }

// FPS returns the container's frame rate, 0 if unknown.
func (s *FileSource) FPS() float64 { return s.fps }

// FrameCount returns the container's frame count, 0 if unknown.
func (s *FileSource) FrameCount() int64 { return s.count }

// Duration returns the play time from frame count and rate, 0 if unknown.
func (s *FileSource) Duration() time.Duration {
	if s.fps == 0 || s.count == 0 {
		return 0
	}
	return time.Duration(float64(s.count) / s.fps * float64(time.Second))
}

// Damages returns the damaged stretches met so far.
func (s *FileSource) Damages() []Damage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Damage(nil), s.damages...)
}

// Next returns the next decodable frame, ErrEndOfInput at the end, or
// ctx's error. ctx is checked between reads; one read takes milliseconds.
func (s *FileSource) Next(ctx context.Context) (Frame, error) {
	f, err := s.read(ctx)
	if err != nil || !s.opt.Realtime {
		return f, err
	}
	// Pace outside the lock so that Close need not wait for the sleep.
	if s.wallZero.IsZero() {
		s.wallZero, s.ptsZero = time.Now(), f.PTS
	} else if err := sleepCtx(ctx, time.Until(s.wallZero.Add(f.PTS-s.ptsZero))); err != nil {
		_ = f.Close()
		return Frame{}, err
	}
	f.CaptureTime = time.Now()
	return f, nil
}

func (s *FileSource) read(ctx context.Context) (Frame, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closed {
			return Frame{}, fmt.Errorf("video file %q: source is closed", s.id)
		}
		if s.eof {
			return Frame{}, ErrEndOfInput
		}
		if err := ctx.Err(); err != nil {
			return Frame{}, err
		}
		mat := gocv.NewMat()
		if !s.cap.Read(&mat) || mat.Empty() {
			_ = mat.Close()
			s.fails++
			if s.fails > s.failBudget() {
				s.finish()
				return Frame{}, ErrEndOfInput
			}
			continue
		}
		pts := s.pts()
		if s.fails > 0 {
			s.damaged(pts)
		}
		s.fails = 0
		s.lastPTS = pts
		seq := s.seq
		s.seq++
		if pts < s.opt.StartAt {
			_ = mat.Close()
			continue
		}
		return Frame{SourceID: s.id, Seq: seq, PTS: pts, CaptureTime: time.Now(), Image: mat}, nil
	}
}

// pts reads the frame's PTS, falling back to index/rate when the container
// gives none or goes backwards.
func (s *FileSource) pts() time.Duration {
	p, ok := msecToPTS(s.cap.Get(gocv.VideoCapturePosMsec))
	if ok && p > s.lastPTS {
		return p
	}
	step := time.Millisecond
	if s.fps > 0 {
		step = time.Duration(float64(time.Second) / s.fps)
	}
	if s.lastPTS < 0 {
		return 0
	}
	return s.lastPTS + step
}

// failBudget is how many failed reads in a row mean the end of the file. At
// the true end every read fails at once (microseconds each); in a damaged
// stretch each failed read consumes a packet, so the budget covers the
// frames the container says are still to come.
func (s *FileSource) failBudget() int {
	const slack = 64
	if s.count == 0 || s.fps == 0 {
		return 4096
	}
	done := int64(0)
	if s.lastPTS >= 0 {
		done = s.frameIndex(s.lastPTS) + 1
	}
	left := s.count - done
	if left < 0 {
		left = 0
	}
	return int(min(left, 100000)) + slack
}

func (s *FileSource) frameIndex(pts time.Duration) int64 {
	if s.fps == 0 {
		return s.seq - 1
	}
	return int64(pts.Seconds()*s.fps + 0.5)
}

// damaged records a stretch of failed reads that ended with a good frame at pts.
func (s *FileSource) damaged(pts time.Duration) {
	d := Damage{AfterFrame: -1, AfterPTS: s.lastPTS, ResumePTS: pts}
	if s.lastPTS >= 0 {
		d.AfterFrame = s.frameIndex(s.lastPTS)
	}
	d.LostFrames = int64(s.fails) // without a frame rate: one packet per failed read at least
	if s.fps > 0 {
		d.LostFrames = max(s.frameIndex(pts)-d.AfterFrame-1, 0)
	}
	s.damages = append(s.damages, d)
	s.log.Warn().Str("path", s.path).Int64("after_frame", d.AfterFrame).Dur("after_pts", d.AfterPTS).
		Dur("resume_pts", pts).Int64("lost_frames", d.LostFrames).Msg("damaged video: " + d.String())
}

// finish marks the end of the file and reports a tail that ended early.
func (s *FileSource) finish() {
	s.eof = true
	if s.count == 0 || s.fps == 0 {
		return
	}
	last := int64(-1)
	if s.lastPTS >= 0 {
		last = s.frameIndex(s.lastPTS)
	}
	// Containers round their frame count; two frames of slack.
	if missing := s.count - 1 - last; missing > 2 {
		d := Damage{AfterFrame: last, AfterPTS: max(s.lastPTS, 0), ResumePTS: -1, LostFrames: missing}
		s.damages = append(s.damages, d)
		s.log.Warn().Str("path", s.path).Int64("after_frame", last).Dur("after_pts", d.AfterPTS).
			Int64("lost_frames", missing).Int64("frame_count", s.count).Msg("damaged video: " + d.String())
	}
}

// Close releases the capture, waiting for a read in flight. It is safe to
// call more than once and from another goroutine than Next.
func (s *FileSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.cap.Close()
}
