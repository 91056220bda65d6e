package ingest

import (
	"time"
)

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
