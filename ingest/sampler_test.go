package ingest

import (
	"context"
	"errors"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"lookout/internal/retry"
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

// slowStartLive is a live source whose first frame takes connect to come
// (an RTSP handshake), and whose later frames are always ready.
type slowStartLive struct {
	connect time.Duration
	seq     int64
}

func (s *slowStartLive) Next(ctx context.Context) (Frame, error) {
	if s.seq == 0 {
		if err := retry.Sleep(ctx, s.connect); err != nil {
			return Frame{}, err
		}
	}
	s.seq++
	return Frame{Seq: s.seq - 1, PTS: time.Duration(s.seq-1) * 10 * time.Millisecond, CaptureTime: time.Now()}, nil
}
func (s *slowStartLive) Live() bool   { return true }
func (s *slowStartLive) Close() error { return nil }

// A live source that takes most of an interval to connect must still give
// samples one interval apart (it gave the first two 18 ms apart).
func TestSamplerLiveGridStartsAtFirstFrame(t *testing.T) {
	const every = 200 * time.Millisecond
	smp, err := NewSampler(&slowStartLive{connect: 180 * time.Millisecond}, "cam", SampleConfig{Every: every}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	for range 3 {
		if _, err := smp.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
		at = append(at, time.Now())
	}
	for i := 1; i < len(at); i++ {
		if d := at[i].Sub(at[i-1]); d < every-20*time.Millisecond || d > every+100*time.Millisecond {
			t.Errorf("samples %d and %d are %s apart, want about %s", i-1, i, d, every)
		}
	}
}
