package ingest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"gocv.io/x/gocv"
)

// Decode says which frames of a file or RTSP stream are decoded
// (SourceSpec.Decode). Synthetic scenes and devices ignore it.
type Decode string

const (
	// DecodeAll decodes every frame; only the frames the sampler takes are
	// converted to BGR.
	DecodeAll Decode = "all"
	// DecodeKeyframes decodes only keyframes: a sample is the first
	// keyframe at or past its time, at the keyframe's real PTS. With a
	// keyframe interval longer than the sampling interval, samples come
	// once per keyframe.
	DecodeKeyframes Decode = "keyframes"
	// DecodeAuto measures the keyframe interval when the source opens and
	// decodes keyframes only when it is at most the sampling interval (so
	// no sample is lost), else everything.
	DecodeAuto Decode = "auto"
)

// ParseDecode checks a decode policy; "" means auto.
func ParseDecode(s string) (Decode, error) {
	switch d := Decode(s); d {
	case "":
		return DecodeAuto, nil
	case DecodeAll, DecodeKeyframes, DecodeAuto:
		return d, nil
	}
	return "", fmt.Errorf("decode %q is not one of all, keyframes, auto", s)
}

// keyframeOption makes FFmpeg skip every frame but keyframes (OpenCV sets
// the codec's skip_frame from it; FIELD-NOTES: "avdiscard;nonkey").
const keyframeOption = "avdiscard;nonkey"

// keyframeProbeGaps is how many keyframe intervals DecodeAuto measures.
const keyframeProbeGaps = 3

// autoSlack tolerates timestamp rounding when a keyframe interval is
// compared with the sampling interval.
const autoSlack = 20 * time.Millisecond

// DecodeReporter is an optional part of Metrics: it is told, once per
// opening, how a source decodes and the keyframe interval measured (0 when
// it was not measured).
type DecodeReporter interface {
	DecodeChosen(source string, keyframesOnly bool, keyframeInterval time.Duration)
}

// decodeChoice remembers DecodeAuto's decision across the reopens of one
// source, so that the keyframe interval is measured once.
type decodeChoice struct {
	mu       sync.Mutex
	decided  bool
	keyOnly  bool
	interval time.Duration
}

func (d *decodeChoice) get() (decided, keyOnly bool, interval time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.decided, d.keyOnly, d.interval
}

func (d *decodeChoice) set(keyOnly bool, interval time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.decided, d.keyOnly, d.interval = true, keyOnly, interval
}

// measureKeyframes grabs keyframes from c (opened with keyframeOption) and
// returns the longest interval between consecutive ones among the first
// keyframeProbeGaps, stopping as soon as one exceeds limit (decoding
// keyframes only is then ruled out) or the probe has read for limit*(gaps+1)
// of stream time. ok is false when the keyframes cannot be trusted to carry
// a steady sampling: fewer than two came, their timestamps do not strictly
// grow (OpenCV misplaces frames of streams with B-frames when it skips
// non-keyframes), a file's first one is not at its start, or the intervals
// are irregular (keyframes at scene cuts rather than a fixed GOP). Nothing is
// converted, so it costs the keyframes' decode only.
func measureKeyframes(ctx context.Context, c *gocv.VideoCapture, limit time.Duration, deadline time.Time, fromStart bool) (longest time.Duration, ok bool) {
	var first, last time.Duration = -1, -1
	shortest := time.Duration(-1)
	gaps := 0
	for gaps < keyframeProbeGaps && ctx.Err() == nil && time.Now().Before(deadline) {
		if !grabFrame(c) {
			break
		}
		p, good := msecToPTS(c.Get(gocv.VideoCapturePosMsec))
		switch {
		case !good:
			return 0, false
		case last < 0:
			if fromStart && p > 100*time.Millisecond {
				return 0, false
			}
			first, last = p, p
			continue
		case p <= last:
			return 0, false
		}
		gap := p - last
		longest = max(longest, gap)
		if shortest < 0 || gap < shortest {
			shortest = gap
		}
		gaps++
		last = p
		if longest > limit+autoSlack {
			return longest, true // too sparse for the sampling: decode everything
		}
		if p-first > time.Duration(keyframeProbeGaps+1)*limit {
			break
		}
	}
	if gaps == 0 || float64(longest) > 1.5*float64(shortest) {
		return longest, false
	}
	return longest, true
}

// probeFileKeyframes measures a file's keyframe interval from its first
// keyframes (see measureKeyframes).
func probeFileKeyframes(ctx context.Context, path string, every time.Duration) (time.Duration, bool) {
	c, err := openCapture(ctx, 0, keyframeOption, func() (*gocv.VideoCapture, error) {
		return gocv.VideoCaptureFileWithAPI(path, gocv.VideoCaptureFFmpeg)
	})
	if err != nil {
		return 0, false
	}
	defer c.Close()
	return measureKeyframes(ctx, c, every, time.Now().Add(30*time.Second), true)
}

// probeRTSPKeyframes measures a stream's keyframe interval on a capture of
// its own that decodes keyframes only; it reads at most about twice the
// sampling interval of the live stream (plus the open), one time per source.
func probeRTSPKeyframes(ctx context.Context, loc Location, opt LiveOptions) (time.Duration, bool) {
	opt = opt.withDefaults()
	c, err := openCapture(ctx, opt.OpenTimeout, rtspOptions(loc.Transport, opt.ReadTimeout, opt.ProbeDuration)+"|"+keyframeOption,
		func() (*gocv.VideoCapture, error) {
			return gocv.VideoCaptureFileWithAPI(loc.URL, gocv.VideoCaptureFFmpeg)
		})
	if err != nil {
		return 0, false
	}
	defer c.Close()
	return measureKeyframes(ctx, c, opt.SampleEvery, time.Now().Add(2*opt.SampleEvery+time.Second), false)
}
