package ingest

import (
	"context"
	"fmt"
	"math"
	"time"

	"gocv.io/x/gocv"
)

// GateConfig tunes a Gate. The zero Threshold disables gating.
type GateConfig struct {
	// Threshold is the change, in grey levels (0-255), below which a
	// sampled frame is not captioned: the mean absolute difference between
	// its thumbnail and that of the last frame passed on. 0 disables the
	// gate.
	Threshold float64
	// MaxInterval forces a frame through after this much stream time
	// without one, so that a caption is never older than it. Default 60 s.
	MaxInterval time.Duration
}

// DefaultGateMaxInterval is GateConfig.MaxInterval's default.
const DefaultGateMaxInterval = 60 * time.Second

// Thumbnail size: a 16:9 grid of block means, each estimated from a 4x4
// lattice of pixels, so a 720p frame costs 9,216 reads (a few microseconds).
const (
	thumbW, thumbH = 32, 18
	thumbTaps      = 4
)

// GateReporter is an optional part of Metrics: it counts frames a Gate
// kept from the model.
type GateReporter interface {
	FrameGated(source string)
}

// Gate passes on a sampled frame only when it differs enough from the last
// frame it passed on (change gating before inference): a camera watching a
// still scene costs no model call. The first frame, every frame after an
// outage (Gap) and a frame MaxInterval after the last one passed always
// pass. Comparing with the last frame passed, not the previous one, lets
// slow drifts add up. Gated frames are released at once. It is a Source.
type Gate struct {
	src  Source
	id   string
	cfg  GateConfig
	m    Metrics
	last []float32
	cur  []float32
	have bool
	at   time.Duration // PTS of the last frame passed
	// gapDur carries a Gap seen on a gated frame to the next frame passed.
	gapDur time.Duration
	gap    bool
}

var _ Source = (*Gate)(nil)

// NewGate gates src (a Sampler, usually) with cfg; id names the source in
// metrics; m may be nil.
func NewGate(src Source, id string, cfg GateConfig, m Metrics) (*Gate, error) {
	if math.IsNaN(cfg.Threshold) || cfg.Threshold < 0 || cfg.Threshold > 255 {
		return nil, fmt.Errorf("source %q: gate threshold %v: must be between 0 and 255 grey levels", id, cfg.Threshold)
	}
	if cfg.MaxInterval <= 0 {
		cfg.MaxInterval = DefaultGateMaxInterval
	}
	if m == nil {
		m = NopMetrics{}
	}
	return &Gate{src: src, id: id, cfg: cfg, m: m,
		last: make([]float32, thumbW*thumbH), cur: make([]float32, thumbW*thumbH)}, nil
}

// Live reports the wrapped source's liveness.
func (g *Gate) Live() bool { return g.src.Live() }

// Close closes the wrapped source.
func (g *Gate) Close() error { return g.src.Close() }

// Health reports the wrapped source's outage state.
func (g *Gate) Health() Health { return healthOf(g.src) }

// Next returns the next frame that changed enough.
func (g *Gate) Next(ctx context.Context) (Frame, error) {
	for {
		f, err := g.src.Next(ctx)
		if err != nil {
			return Frame{}, err
		}
		if g.cfg.Threshold <= 0 {
			return f, nil
		}
		if !thumbnail(f.Image, g.cur) {
			return f, nil // not a BGR picture: nothing to compare, caption it
		}
		pass := !g.have || f.Gap || f.PTS-g.at >= g.cfg.MaxInterval || f.PTS < g.at ||
			meanAbsDiff(g.cur, g.last) >= g.cfg.Threshold
		if !pass {
			if f.Gap {
				g.gap, g.gapDur = true, g.gapDur+f.GapDuration
			}
			_ = f.Close()
			if r, ok := g.m.(GateReporter); ok {
				r.FrameGated(g.id)
			}
			continue
		}
		g.last, g.cur = g.cur, g.last
		g.have, g.at = true, f.PTS
		if g.gap {
			f.Gap, f.GapDuration = true, f.GapDuration+g.gapDur
			g.gap, g.gapDur = false, 0
		}
		return f, nil
	}
}

// thumbnail fills dst (thumbW x thumbH) with the grey block means of img, an
// 8-bit BGR Mat. It reads the pixels in place; false when img is not one.
func thumbnail(img gocv.Mat, dst []float32) bool {
	if img.Empty() || img.Type() != gocv.MatTypeCV8UC3 || img.Cols() < thumbW || img.Rows() < thumbH {
		return false
	}
	ptr, err := img.DataPtrUint8()
	if err != nil || len(ptr) == 0 {
		return false
	}
	step := img.Step()
	w, h := img.Cols(), img.Rows()
	bw, bh := w/thumbW, h/thumbH
	for by := 0; by < thumbH; by++ {
		for bx := 0; bx < thumbW; bx++ {
			var sum int
			for ty := 0; ty < thumbTaps; ty++ {
				row := (by*bh + (2*ty+1)*bh/(2*thumbTaps)) * step
				for tx := 0; tx < thumbTaps; tx++ {
					o := row + (bx*bw+(2*tx+1)*bw/(2*thumbTaps))*3
					// BT.601-ish grey from B, G, R with integer weights (1, 2, 1)/4.
					sum += int(ptr[o]) + 2*int(ptr[o+1]) + int(ptr[o+2])
				}
			}
			dst[by*thumbW+bx] = float32(sum) / (4 * thumbTaps * thumbTaps)
		}
	}
	return true
}

// meanAbsDiff is the mean absolute difference of two thumbnails, in grey
// levels.
func meanAbsDiff(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += math.Abs(float64(a[i] - b[i]))
	}
	return s / float64(len(a))
}
