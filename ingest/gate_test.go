package ingest

import (
	"context"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"lookout/synth"
)

// sceneSource replays a synthetic scene at 1 frame per second of PTS.
type sceneSource struct {
	sc    *synth.Scene
	n, i  int
	gapAt int
}

func (s *sceneSource) Next(context.Context) (Frame, error) {
	if s.i >= s.n {
		return Frame{}, ErrEndOfInput
	}
	at := time.Duration(s.i) * time.Second
	img := gocv.NewMat()
	s.sc.Render(at, &img, 640, 360)
	f := Frame{Seq: int64(s.i), PTS: at, Image: img, Truth: map[string]string{"caption": s.sc.CaptionAt(at)}}
	if s.gapAt > 0 && s.i == s.gapAt {
		f.Gap, f.GapDuration = true, 5*time.Second
	}
	s.i++
	return f, nil
}
func (s *sceneSource) Live() bool   { return false }
func (s *sceneSource) Close() error { return nil }

type gateCount struct {
	NopMetrics
	n int
}

func (g *gateCount) FrameGated(string) { g.n++ }

// On a synthetic scene the gate passes every frame whose true caption
// changed, and few others; MaxInterval and gaps force frames through.
func TestGateFindsEveryChange(t *testing.T) {
	sc, err := synth.NewSceneHolding("surveillance", 3, 10*time.Second, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := &gateCount{}
	g, err := NewGate(&sceneSource{sc: sc, n: 180, gapAt: 100}, "cam", GateConfig{Threshold: 3, MaxInterval: 45 * time.Second}, m)
	if err != nil {
		t.Fatal(err)
	}
	passed := map[time.Duration]bool{}
	var last time.Duration
	for {
		f, err := g.Next(context.Background())
		if err != nil {
			break
		}
		if f.PTS-last > 45*time.Second {
			t.Errorf("frames %s and %s passed: more than MaxInterval apart", last, f.PTS)
		}
		last = f.PTS
		passed[f.PTS] = true
		_ = f.Close()
	}
	for _, c := range sc.Changes(180 * time.Second) {
		at := c.Truncate(time.Second)
		if c > at {
			at += time.Second // the first sampled frame at or after the change
		}
		if !passed[at] {
			t.Errorf("the change at %s (frame %s) was gated", c, at)
		}
	}
	if !passed[100*time.Second] {
		t.Errorf("the frame after a gap was gated")
	}
	changes := len(sc.Changes(180 * time.Second))
	t.Logf("180 frames, %d true changes: %d passed, %d gated", changes, len(passed), m.n)
	if len(passed)+m.n != 180 || len(passed) > changes+12 {
		t.Errorf("%d passed and %d gated of 180, with %d changes: the gate passes too much", len(passed), m.n, changes)
	}
	if _, err := NewGate(nil, "x", GateConfig{Threshold: 300}, nil); err == nil {
		t.Errorf("threshold 300 accepted")
	}
}

// BenchmarkThumbnail720p is the gate's cost per 720p frame (the issue asks
// well under 0.1 ms).
func BenchmarkThumbnail720p(b *testing.B) {
	sc, _ := synth.NewScene("driving", 1)
	img := gocv.NewMat()
	defer img.Close()
	sc.Render(time.Second, &img, 1280, 720)
	a, c := make([]float32, thumbW*thumbH), make([]float32, thumbW*thumbH)
	thumbnail(img, c)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		thumbnail(img, a)
		_ = meanAbsDiff(a, c)
	}
}
