package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"

	"lookout/internal/retry"
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
	// Keyframes decodes only the stream's keyframes (FFmpeg's
	// skip_frame=nonkey, through OpenCV's avdiscard option): frames come out
	// at their real PTS, one per keyframe; the frames in between are never
	// decoded and are not damage. Default false: every frame is decoded.
	Keyframes bool
	// SampleEvery, when > 0, is the sampling interval of the Sampler that
	// will read this source: frames that sampler would drop (before the next
	// multiple of SampleEvery after the last frame passed on) are decoded
	// but never converted to BGR nor copied. Default 0: every frame is
	// converted.
	SampleEvery time.Duration
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
// microsecond) wherever that value is sane: later than the previous frame's
// and at most a second past the stream's last frame. A frame the decoder
// held back across damage (its container PTS is at or before the previous
// frame's) is dropped. Otherwise (no container time, as when the decoder
// flushes at the end, or timestamps that restart) the PTS is the previous one
// plus one frame interval, and a frame whose PTS would then lie past the
// last frame of the stream (frame count and rate) is dropped rather than
// given an invented time. PTS is therefore strictly increasing and the same
// on every replay.
//
// A damaged stretch in the middle is skipped: decodable frames keep coming.
// Damage is a run of failed reads, or a PTS jump of more than 1.5 frame
// intervals between consecutive frames (frames the decoder silently
// dropped, or frames it still had buffered when the failed reads began).
// Each stretch is logged once, with its frame position and an estimate of
// the frames lost, when it is over: after max(16, fps) good frames in a row
// without a failed read or a jump, or at the end of the file (see Damages).
// At the end of the file Next returns ErrEndOfInput.
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
	tl       timeline
	wallZero time.Time
	ptsZero  time.Duration
	damages  []Damage
	// next is the PTS the next converted frame must reach (SampleEvery).
	next time.Duration
	// skipped counts frames decoded and not converted.
	skipped int64
}

var _ Source = (*FileSource)(nil)

// OpenFile opens path for replay. A missing or unreadable file, a directory,
// or a file FFmpeg cannot decode gives a one-line error naming the path.
func OpenFile(ctx context.Context, path string, opt FileOptions) (*FileSource, error) {
	if err := CheckFile(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("video file %q: cannot read it: %w", path, err)
	}
	_ = f.Close()
	opts := ""
	if opt.Keyframes {
		opts = keyframeOption
	}
	c, err := openCapture(ctx, 0, opts, func() (*gocv.VideoCapture, error) {
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
	s.tl = newTimeline(s.fps, s.count)
	s.tl.keyframes = opt.Keyframes
	return s, nil
}

// Skipped is how many frames were decoded but not converted, because the
// sampler would have dropped them (FileOptions.SampleEvery).
func (s *FileSource) Skipped() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skipped
}

// CheckFile says, in one line naming the path, why path cannot be replayed
// without decoding it: missing (with the absolute path looked for when it
// is relative), unreadable, or a directory.
func CheckFile(path string) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if abs, aerr := filepath.Abs(path); aerr == nil && abs != path {
			return fmt.Errorf("video file %q does not exist (looked for %s): check the path", path, abs)
		}
		return fmt.Errorf("video file %q does not exist: check the path", path)
	case err != nil:
		return fmt.Errorf("video file %q: cannot read it: %w", path, err)
	case st.IsDir():
		return fmt.Errorf("video file %q is a directory: name a video file", path)
	}
	return nil
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

// Damages returns the damaged stretches reported so far. A stretch is
// reported once it is over (see FileSource), so the list is complete once
// Next has returned ErrEndOfInput.
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
	} else if err := retry.Sleep(ctx, time.Until(s.wallZero.Add(f.PTS-s.ptsZero))); err != nil {
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
		// Decode first; convert to BGR (retrieve) only a frame that leaves.
		if !grabFrame(s.cap) {
			s.tl.fail()
			if s.tl.fails > s.failBudget() {
				s.finish()
				return Frame{}, ErrEndOfInput
			}
			continue
		}
		msec := s.cap.Get(gocv.VideoCapturePosMsec)
		pts, why := s.tl.place(msec)
		if why != "" {
			s.log.Debug().Str("path", s.path).Float64("pos_msec", msec).Int64("last_pts_ms", s.tl.last.Milliseconds()).
				Msg("dropped a decoded frame: " + why)
			continue
		}
		for _, d := range s.tl.frame(pts) {
			s.report(d)
		}
		seq := s.tl.seq - 1
		if pts < s.opt.StartAt {
			continue
		}
		if every := s.opt.SampleEvery; every > 0 {
			// The Sampler's own rule (see Sampler), so that every frame it
			// would take is converted: it takes the first frame at or past
			// a multiple of every after the last one it took.
			if pts < s.next {
				s.skipped++
				continue
			}
			s.next = (pts/every + 1) * every
		}
		mat := gocv.NewMat()
		if !retrieveFrame(s.cap, &mat) || mat.Empty() {
			_ = mat.Close()
			s.log.Debug().Str("path", s.path).Int64("pts_ms", pts.Milliseconds()).Msg("a decoded frame could not be converted; skipped")
			continue
		}
		return Frame{SourceID: s.id, Seq: seq, PTS: pts, CaptureTime: time.Now(), Image: mat}, nil
	}
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
	if s.tl.last >= 0 {
		done = s.tl.index(s.tl.last) + 1
	}
	left := s.count - done
	if left < 0 {
		left = 0
	}
	return int(min(left, 100000)) + slack
}

// report records and logs one damaged stretch.
func (s *FileSource) report(d Damage) {
	s.damages = append(s.damages, d)
	ev := s.log.Warn().Str("path", s.path).Int64("after_frame", d.AfterFrame).Int64("after_pts_ms", d.AfterPTS.Milliseconds())
	if d.ResumePTS >= 0 {
		ev = ev.Int64("resume_pts_ms", d.ResumePTS.Milliseconds())
	} else if s.count > 0 {
		ev = ev.Int64("frame_count", s.count)
	}
	ev.Int64("lost_frames", d.LostFrames).Msg("damaged video: " + d.String())
}

// finish marks the end of the file and reports a stretch still open and a
// tail that ended early.
func (s *FileSource) finish() {
	s.eof = true
	for _, d := range s.tl.end() {
		s.report(d)
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
