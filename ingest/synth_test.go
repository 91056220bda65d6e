package ingest

import (
	"context"
	"testing"
	"time"
)

// A synthetic source renders at its frame rate in real time, with PTS
// i/fps and the scene's truth on every frame.
func TestSynthPacesAtFPS(t *testing.T) {
	src, err := Open(context.Background(), SourceSpec{URI: "synth://driving?fps=20&size=160x120&seed=7"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if !src.Live() {
		t.Fatal("synth source is not live")
	}
	start := time.Now()
	var n int
	for time.Since(start) < 1500*time.Millisecond {
		f, err := src.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.PTS != time.Duration(f.Seq)*50*time.Millisecond {
			t.Fatalf("frame seq %d has pts %s, want seq x 50ms", f.Seq, f.PTS)
		}
		if len(f.Truth) == 0 || f.Image.Cols() != 160 || f.Image.Rows() != 120 {
			t.Fatalf("frame %d: truth %v, size %dx%d", f.Seq, f.Truth, f.Image.Cols(), f.Image.Rows())
		}
		// Rendered no earlier than due.
		if early := f.PTS - f.CaptureTime.Sub(start); early > 60*time.Millisecond {
			t.Fatalf("frame %d arrived %s before its time", f.Seq, early)
		}
		f.Close()
		n++
	}
	if n < 25 || n > 32 {
		t.Errorf("got %d frames in 1.5 s at 20 fps, want about 30", n)
	}
}

// The live sampler takes the newest frame at each tick and counts the
// frames it never saw as stale.
func TestLiveSamplerTakesNewestAtEachTick(t *testing.T) {
	src, err := Open(context.Background(), SourceSpec{URI: "synth://surveillance?fps=20&size=160x120"})
	if err != nil {
		t.Fatal(err)
	}
	var c Counters
	s, err := NewSampler(src, "syn", SampleConfig{FPS: 4}, &c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	var got []Frame
	for i := 0; i < 5; i++ {
		f, err := s.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		got = append(got, f)
	}
	if took := time.Since(start); took < 950*time.Millisecond || took > 1500*time.Millisecond {
		t.Errorf("5 samples at 4 fps took %s, want about 1 s", took)
	}
	for i := 1; i < len(got); i++ {
		if d := got[i].PTS - got[i-1].PTS; d < 150*time.Millisecond || d > 350*time.Millisecond {
			t.Errorf("samples %d and %d are %s apart in pts, want about 250 ms", i-1, i, d)
		}
	}
	if c.Sampled.Load() != 5 || c.Stale.Load() < 8 || c.Read.Load() != got[4].Seq+1 {
		t.Errorf("sampled=%d stale=%d read=%d (last seq %d)", c.Sampled.Load(), c.Stale.Load(), c.Read.Load(), got[4].Seq)
	}
}
