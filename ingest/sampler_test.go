package ingest

import (
	"context"
	"errors"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// replayFake is a finite non-live source of frames at the given PTS values,
// with Gap set on the listed indexes.
type replayFake struct {
	pts  []time.Duration
	gaps map[int]time.Duration
	i    int
}

func (r *replayFake) Next(context.Context) (Frame, error) {
	if r.i >= len(r.pts) {
		return Frame{}, ErrEndOfInput
	}
	f := Frame{Seq: int64(r.i), PTS: r.pts[r.i], Image: gocv.NewMat()}
	if d, ok := r.gaps[r.i]; ok {
		f.Gap, f.GapDuration = true, d
	}
	r.i++
	return f, nil
}

func (r *replayFake) Live() bool   { return false }
func (r *replayFake) Close() error { return nil }

// A gap on a skipped frame moves to the next sampled one; after a hole the
// first frame of each interval is taken, once.
func TestSamplerReplayGapsAndHoles(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	src := &replayFake{
		// A hole from 1100 to 2900 ms (damaged file), then frames again.
		pts:  ms(0, 400, 800, 1000, 1100, 2900, 3000, 3300, 3999, 4001),
		gaps: map[int]time.Duration{7: 2 * time.Second},
	}
	s, err := NewSampler(src, "f", SampleConfig{Every: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []Frame
	for {
		f, err := s.Next(context.Background())
		if errors.Is(err, ErrEndOfInput) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f)
	}
	// 2900 is the first frame of [2 s, 3 s); 3000 the first of [3 s, 4 s).
	want := ms(0, 1000, 2900, 3000, 4001)
	if len(got) != len(want) {
		t.Fatalf("sampled %d frames, want %d (%v)", len(got), len(want), want)
	}
	for i, f := range got {
		if f.PTS != want[i] {
			t.Errorf("sample %d pts %s, want %s", i, f.PTS, want[i])
		}
		if f.Gap != (i == 4) || (i == 4 && f.GapDuration != 2*time.Second) {
			t.Errorf("sample %d gap %v %s; want the gap of frame 3300 ms on sample 4", i, f.Gap, f.GapDuration)
		}
	}
	for _, f := range got {
		f.Close()
	}
}
