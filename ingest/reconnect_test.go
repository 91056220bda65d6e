package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"lookout/internal/retry"
)

// fakeLive gives n frames every interval, then fails with err, or blocks
// (a stuck stream) when err is nil.
type fakeLive struct {
	n        int
	interval time.Duration
	err      error
	seq      int64
	closed   atomic.Bool
}

func (f *fakeLive) Next(ctx context.Context) (Frame, error) {
	if f.closed.Load() {
		return Frame{}, errors.New("fake: closed")
	}
	if int(f.seq) >= f.n {
		if f.err != nil {
			return Frame{}, f.err
		}
		<-ctx.Done()
		return Frame{}, ctx.Err()
	}
	if err := retry.Sleep(ctx, f.interval); err != nil {
		return Frame{}, err
	}
	fr := Frame{Seq: f.seq, PTS: time.Duration(f.seq) * f.interval, CaptureTime: time.Now(), Image: gocv.NewMat()}
	f.seq++
	return fr, nil
}

func (f *fakeLive) Live() bool   { return true }
func (f *fakeLive) Close() error { f.closed.Store(true); return nil }

// script returns an Opener that plays results in order, then repeats the last.
type script struct {
	mu    sync.Mutex
	steps []func() (Source, error)
	calls int
	srcs  []*fakeLive
}

func (s *script) open(context.Context) (Source, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	step := s.steps[min(s.calls, len(s.steps)-1)]
	s.calls++
	src, err := step()
	if fl, ok := src.(*fakeLive); ok {
		s.srcs = append(s.srcs, fl)
	}
	return src, err
}

func live(n int, err error) func() (Source, error) {
	return func() (Source, error) { return &fakeLive{n: n, interval: 5 * time.Millisecond, err: err}, nil }
}

func refuse() func() (Source, error) {
	return func() (Source, error) { return nil, fmt.Errorf("fake: %w: connection refused", ErrTransient) }
}

func TestReconnectingOutage(t *testing.T) {
	sc := &script{steps: []func() (Source, error){
		live(3, fmt.Errorf("fake: %w: reads fail", ErrTransient)), refuse(), refuse(), live(100, nil),
	}}
	var c Counters
	r := NewReconnecting("cam1", sc.open, ReconnectConfig{MinBackoff: 20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, Jitter: -1, Metrics: &c})
	defer r.Close()
	ctx := context.Background()
	var frames []Frame
	for i := 0; i < 6; i++ {
		f, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		f.Close()
		frames = append(frames, f)
	}
	for i, f := range frames {
		if f.SourceID != "cam1" || f.Seq != int64(i) {
			t.Errorf("frame %d: id %q seq %d", i, f.SourceID, f.Seq)
		}
		if i > 0 && f.PTS <= frames[i-1].PTS {
			t.Errorf("frame %d: pts %s not after %s", i, f.PTS, frames[i-1].PTS)
		}
		if f.Gap != (i == 3) {
			t.Errorf("frame %d: gap %v", i, f.Gap)
		}
	}
	// Waits: 0 (first retry), 20 ms, 40 ms.
	if g := frames[3].GapDuration; g < 60*time.Millisecond || g > 2*time.Second {
		t.Errorf("gap duration %s, want at least the 60 ms of backoff", g)
	}
	if d := frames[3].PTS - frames[2].PTS; d < 60*time.Millisecond {
		t.Errorf("pts advanced %s over the outage, want at least 60 ms", d)
	}
	if sc.calls != 4 || c.Down.Load() != 1 || c.Reconnects.Load() != 1 {
		t.Errorf("opens=%d down=%d reconnects=%d, want 4, 1, 1", sc.calls, c.Down.Load(), c.Reconnects.Load())
	}
	if !sc.srcs[0].closed.Load() {
		t.Error("the failed source was not closed")
	}
}

func TestReconnectingStuckStream(t *testing.T) {
	sc := &script{steps: []func() (Source, error){live(2, nil), live(100, nil)}}
	var c Counters
	r := NewReconnecting("cam", sc.open, ReconnectConfig{StuckAfter: 100 * time.Millisecond, Metrics: &c})
	defer r.Close()
	start := time.Now()
	var gap Frame
	for i := 0; i < 3; i++ {
		f, err := r.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		gap = f
	}
	if !gap.Gap || gap.Seq != 2 || c.Down.Load() != 1 {
		t.Errorf("third frame %+v down=%d: want a gap frame with seq 2 after one outage", gap, c.Down.Load())
	}
	if took := time.Since(start); took < 100*time.Millisecond || took > 3*time.Second {
		t.Errorf("stuck detection took %s, want about 100 ms", took)
	}
}

func TestReconnectingFatalAndFirstOpen(t *testing.T) {
	fatal := errors.New("fake: unsupported codec")
	r := NewReconnecting("a", (&script{steps: []func() (Source, error){
		func() (Source, error) { return nil, fatal }}}).open, ReconnectConfig{})
	if _, err := r.Next(context.Background()); !errors.Is(err, fatal) {
		t.Errorf("fatal open error: got %v", err)
	}
	r.Close()

	r = NewReconnecting("b", (&script{steps: []func() (Source, error){live(1, fatal)}}).open, ReconnectConfig{})
	if f, err := r.Next(context.Background()); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
	if _, err := r.Next(context.Background()); !errors.Is(err, fatal) {
		t.Errorf("fatal read error: got %v", err)
	}
	r.Close()

	sc := &script{steps: []func() (Source, error){refuse()}}
	r = NewReconnecting("c", sc.open, ReconnectConfig{FailFirstOpen: true})
	if _, err := r.Next(context.Background()); !errors.Is(err, ErrTransient) || sc.calls != 1 {
		t.Errorf("FailFirstOpen: got %v after %d opens", err, sc.calls)
	}
	r.Close()
}

func TestReconnectingCloseWhileWaiting(t *testing.T) {
	r := NewReconnecting("x", (&script{steps: []func() (Source, error){refuse()}}).open,
		ReconnectConfig{MinBackoff: time.Hour, MaxBackoff: time.Hour})
	errc := make(chan error, 1)
	go func() { _, err := r.Next(context.Background()); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	r.Close()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("Next after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Next still waiting 2 s after Close")
	}
	if down, _ := r.Down(); !down {
		t.Error("Down() = false while the source could not be opened")
	}
}

// The reopen waits: none for the first attempt of an outage, then from
// MinBackoff doubling to MaxBackoff, spread by ±Jitter; a successful open
// starts again from none.
func TestBackoff(t *testing.T) {
	r := NewReconnecting("cam", nil, ReconnectConfig{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Jitter: -1})
	want := []time.Duration{0, 100, 200, 400, 800, 1000, 1000}
	for n, w := range want {
		r.attempts = n
		if got := r.delay(); got != w*time.Millisecond {
			t.Errorf("delay after %d failed attempts = %s, want %s", n, got, w*time.Millisecond)
		}
	}
	r.attempts = 0
	r.bo.Reset()
	if got := r.delay(); got != 0 {
		t.Errorf("first delay after a reopen = %s, want none", got)
	}
	lo, hi := time.Hour, time.Duration(0)
	for range 2000 {
		r := NewReconnecting("cam", nil, ReconnectConfig{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Jitter: 0.2})
		var d time.Duration
		for n := range 4 {
			r.attempts = n
			d = r.delay()
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 320*time.Millisecond || hi > 480*time.Millisecond || lo > 330*time.Millisecond || hi < 470*time.Millisecond {
		t.Errorf("jitter range [%s, %s], want [320ms, 480ms]", lo, hi)
	}
}

// Health shows an outage while Next waits through it: down since the first
// failure with the newest error, up again after the reopen with the last
// error kept. A Sampler passes it on.
func TestReconnectingHealth(t *testing.T) {
	sc := &script{steps: []func() (Source, error){
		live(2, fmt.Errorf("fake: %w: reads fail", ErrTransient)), refuse(), refuse(), live(100, nil),
	}}
	r := NewReconnecting("cam1", sc.open, ReconnectConfig{MinBackoff: 100 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Jitter: -1})
	defer r.Close()
	smp, err := NewSampler(r, "cam1", SampleConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h := smp.Health(); h.Down || h.LastErr != nil {
		t.Fatalf("Health before the first open = %+v, want up without error", h)
	}
	ctx := context.Background()
	for range 2 {
		f, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	start := time.Now()
	next := make(chan error, 1)
	go func() {
		f, err := r.Next(ctx)
		f.Close()
		next <- err
	}()
	var h Health
	for h = smp.Health(); !h.Down && time.Since(start) < 2*time.Second; h = smp.Health() {
		time.Sleep(5 * time.Millisecond)
	}
	if !h.Down || h.Since.Before(start) || h.LastErr == nil {
		t.Fatalf("Health during the outage = %+v, want down since the failure with its error", h)
	}
	if err := <-next; err != nil {
		t.Fatal(err)
	}
	h = smp.Health()
	if h.Down || !h.Since.IsZero() || h.LastErr == nil || !strings.Contains(h.LastErr.Error(), "connection refused") {
		t.Errorf("Health after the reopen = %+v, want up with the newest error (connection refused) kept", h)
	}
	if f := (&fakeLive{}); (Health{}) != (&Sampler{src: f}).Health() {
		t.Error("a Sampler around a source without Health is not up")
	}
}
