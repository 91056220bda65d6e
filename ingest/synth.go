package ingest

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"

	"lookout/synth"
)

// synthGrabber renders a synthetic scene in real time: frame i is due at
// start + i/fps and shows the scene at t = i/fps. When rendering falls
// behind, it skips to the frame due now, as a camera would.
type synthGrabber struct {
	scene *synth.Scene
	fps   float64
	w, h  int
	start time.Time
	i     int64
}

func (g *synthGrabber) grab(stop <-chan struct{}, dst *gocv.Mat) grabbed {
	if g.start.IsZero() {
		g.start = time.Now()
	}
	due := g.start.Add(g.at(g.i))
	if wait := time.Until(due); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-stop:
			t.Stop()
			return grabbed{}
		case <-t.C:
		}
	} else if behind := int64(-wait.Seconds() * g.fps); behind > 0 {
		g.i += behind
	}
	t := g.at(g.i)
	g.i++
	slots := g.scene.Render(t, dst, g.w, g.h)
	return grabbed{ok: true, pts: t, hasPTS: true, exact: true, truth: map[string]string(slots)}
}

func (g *synthGrabber) at(i int64) time.Duration {
	return time.Duration(float64(i) / g.fps * float64(time.Second))
}

func (g *synthGrabber) release() {}

// SynthSource renders a synthetic scene (package synth) in real time at the
// URI's frame rate, whether or not anyone takes the frames, so it doubles as
// a load generator. Frame i has PTS i/fps and carries the scene's true slots
// in Frame.Truth. Like a camera it keeps only the newest frame.
type SynthSource struct {
	*liveReader
	loc Location
}

var _ Source = (*SynthSource)(nil)

// Live reports true.
func (s *SynthSource) Live() bool { return true }

// OpenSynth starts rendering the synth:// location loc. id names the source
// (default: the URI).
func OpenSynth(loc Location, id string, log zerolog.Logger) (*SynthSource, error) {
	if loc.Kind != KindSynth {
		return nil, fmt.Errorf("source %q: not a synth:// URI", loc.Redacted)
	}
	scene, err := synth.NewScene(loc.Domain, loc.Seed)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", loc.Redacted, err)
	}
	if !(loc.FPS > 0) || loc.Width <= 0 || loc.Height <= 0 {
		return nil, fmt.Errorf("source %q: fps and size must be positive: parse the URI with ParseURI", loc.Redacted)
	}
	if id == "" {
		id = loc.Redacted
	}
	g := &synthGrabber{scene: scene, fps: loc.FPS, w: loc.Width, h: loc.Height}
	return &SynthSource{
		liveReader: startLive(id, log.With().Str("source", id).Logger(), g, 1, 5*time.Second),
		loc:        loc,
	}, nil
}
