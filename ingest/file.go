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

// timeline places decoded frames in time and finds damaged stretches. It
// knows nothing of OpenCV: FileSource feeds it failed reads (fail) and the
// container position of each decoded frame (place, then frame), so that it
// is tested with the exact sequences a damaged file produces.
type timeline struct {
	fps   float64
	count int64         // frames in the stream, 0 if unknown
	step  time.Duration // one frame interval, 0 if fps is unknown
	last  time.Duration // PTS of the last placed frame, -1 before the first
	seq   int64         // frames placed so far
	fails int           // failed reads since the last placed frame
	open  *stretch      // the damaged stretch not yet reported, if any
	// keyframes: only keyframes are decoded, so the frames between two are
	// skipped, not lost: no PTS jump is damage, no PTS is ever invented,
	// and the stream may end up to one keyframe interval after the last
	// keyframe.
	keyframes bool
	maxGap    time.Duration // keyframes: the longest interval seen between two
}

// stretch is a damaged stretch being followed until it is over.
type stretch struct {
	d      Damage
	gap    bool          // a PTS jump was seen: d.AfterPTS, ResumePTS and LostFrames come from it
	fails  int           // failed reads in the stretch
	resume time.Duration // first frame placed after the failed reads, -1 if none yet
	quiet  int           // good frames in a row since the stretch last grew
}

// jumpFactor: consecutive frames further apart than this many frame
// intervals mean frames are missing.
const jumpFactor = 1.5

// streamSlack is how far past the last frame implied by the frame count a
// PTS read from the container is still believed (counts are rounded or
// estimated from the duration by some containers).
const streamSlack = time.Second

func newTimeline(fps float64, count int64) timeline {
	t := timeline{fps: fps, count: count, last: -1}
	if fps > 0 {
		t.step = time.Duration(float64(time.Second) / fps)
	}
	return t
}

// index is the frame index of pts: pts x rate, or without a rate the count
// of frames placed before the last one.
func (t *timeline) index(pts time.Duration) int64 {
	if t.fps == 0 {
		return t.seq - 1
	}
	return int64(pts.Seconds()*t.fps + 0.5)
}

// lastFrame is the PTS of the stream's last frame by count and rate, -1 if
// unknown.
func (t *timeline) lastFrame() time.Duration {
	if t.count == 0 || t.fps == 0 {
		return -1
	}
	return time.Duration(float64(t.count-1) / t.fps * float64(time.Second))
}

// settle is how many good frames in a row end a damaged stretch: more than
// an H.264 decoder can hold back (16), and at least a second of video.
func (t *timeline) settle() int {
	if t.step == 0 || t.keyframes {
		// No rate: no jump detection. Keyframes decode on their own. Either
		// way a stretch ends at its first good frame.
		return 0
	}
	return max(16, int(t.fps+0.5))
}

// fail notes a failed read.
func (t *timeline) fail() {
	t.fails++
	if t.open == nil {
		t.open = &stretch{d: Damage{AfterFrame: -1, AfterPTS: t.last, ResumePTS: -1}, resume: -1}
		if t.last >= 0 {
			t.open.d.AfterFrame = t.index(t.last)
		}
	}
	t.open.fails++
	t.open.quiet = 0
}

// place returns the PTS of a decoded frame whose container position is msec
// (CAP_PROP_POS_MSEC), or a reason to drop the frame:
//   - a sane container PTS (later than the last frame's, at most a second
//     past the stream's last frame) is used as is;
//   - the first frame without one is at 0;
//   - a container PTS at or before the last frame's while a damaged stretch
//     is open or within 16 frames of it is a frame the decoder held back
//     past frames that came later: it cannot be placed in order and is
//     dropped (its time is never invented);
//   - otherwise (no container PTS, as when the decoder flushes at the end,
//     or timestamps that restart) the frame is one interval after the last,
//     unless that lies past the stream's last frame: then it is dropped.
func (t *timeline) place(msec float64) (time.Duration, string) {
	end := t.lastFrame()
	p, ok := msecToPTS(msec)
	if ok && p > t.last && (end < 0 || p <= end+streamSlack) {
		return p, ""
	}
	if t.keyframes {
		return 0, "no usable container pts for a keyframe (keyframe decoding never invents a time)"
	}
	if t.last < 0 {
		return 0, ""
	}
	step := t.step
	if step == 0 {
		step = time.Millisecond
	}
	if ok && p > 0 && p <= t.last && (t.open != nil || t.last-p <= 16*step) {
		return 0, "container pts at or before the last frame's (a frame held back across damage)"
	}
	// Half an interval of tolerance for rounding, but never more than a
	// container PTS is allowed past the end (streamSlack).
	if next := t.last + step; end < 0 || next <= end+min(step/2, streamSlack) {
		return next, ""
	}
	return 0, "no container pts, and one interval after the last frame lies past the stream's last frame"
}

// frame notes a decoded frame placed at pts (from place) and returns the
// damaged stretches that are now over.
func (t *timeline) frame(pts time.Duration) []Damage {
	var done []Damage
	if t.keyframes && t.last >= 0 {
		t.maxGap = max(t.maxGap, pts-t.last)
	}
	jump := !t.keyframes && t.step > 0 && t.last >= 0 && float64(pts-t.last) > jumpFactor*float64(t.step)
	if jump {
		lost := max(t.index(pts)-t.index(t.last)-1, 1)
		switch {
		case t.open == nil:
			t.open = &stretch{resume: -1}
			fallthrough
		case !t.open.gap:
			t.open.gap = true
			t.open.d = Damage{AfterFrame: t.index(t.last), AfterPTS: t.last, ResumePTS: pts, LostFrames: lost}
		default:
			// A further gap while the stretch settles (frames that referred to
			// the lost ones): the same stretch.
			t.open.d.LostFrames += lost
		}
		t.open.quiet = 0
	} else if t.open != nil {
		if t.open.resume < 0 {
			t.open.resume = pts
		}
		t.open.quiet++
	}
	t.fails = 0
	t.last = pts
	t.seq++
	if t.open != nil && t.open.quiet >= t.settle() {
		done = append(done, t.close())
	}
	return done
}

// close ends the open stretch and returns it.
func (t *timeline) close() Damage {
	o := t.open
	t.open = nil
	d := o.d
	if !o.gap {
		// Failed reads but no PTS jump: with a rate, the frames between the
		// last good one and the resume (some at the start of the file);
		// without, one packet per failed read at least. With keyframes only,
		// the frames in between were skipped anyway: the failed reads are
		// all that is known.
		d.ResumePTS = o.resume
		d.LostFrames = int64(o.fails)
		if t.step > 0 && !t.keyframes {
			d.LostFrames = max(t.index(o.resume)-d.AfterFrame-1, 0)
		}
	}
	return d
}

// end is called at the end of the file; it returns the stretch still open,
// if decoding resumed after it, and a tail that ended early (more than two
// frames short of the container's count, which containers round).
func (t *timeline) end() []Damage {
	var done []Damage
	if t.open != nil && (t.open.gap || t.open.resume >= 0) {
		done = append(done, t.close())
	}
	t.open = nil
	if t.count == 0 || t.fps == 0 {
		return done
	}
	last := int64(-1)
	if t.last >= 0 {
		last = t.index(t.last)
	}
	allowed := int64(2)
	if t.keyframes {
		// The tail after the last keyframe was skipped, not lost: up to the
		// longest keyframe interval seen (or a second when only one came).
		allowed += int64((max(t.maxGap, time.Second)).Seconds()*t.fps + 0.5)
	}
	if missing := t.count - 1 - last; missing > allowed {
		done = append(done, Damage{AfterFrame: last, AfterPTS: max(t.last, 0), ResumePTS: -1, LostFrames: missing})
	}
	return done
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
