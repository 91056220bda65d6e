package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Without jitter the delays double from Min and stop at Max, and Reset
// starts again from Min.
func TestDoublesCapsAndResets(t *testing.T) {
	b := New(Policy{Min: 100 * time.Millisecond, Max: time.Second})
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Errorf("delay %d = %s, want %s", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != 100*time.Millisecond {
		t.Errorf("after Reset: %s, want 100ms", got)
	}
}

// Symmetric jitter spreads a nominal d over [d(1-j), d(1+j)]; Below keeps
// it in [d(1-j), d]. Both reach near both ends of their window.
func TestJitterWindows(t *testing.T) {
	for _, tc := range []struct {
		below  bool
		lo, hi time.Duration
	}{
		{false, 320 * time.Millisecond, 480 * time.Millisecond},
		{true, 320 * time.Millisecond, 400 * time.Millisecond},
	} {
		seenLo, seenHi := time.Hour, time.Duration(0)
		for range 2000 {
			b := New(Policy{Min: 100 * time.Millisecond, Max: time.Second, Jitter: 0.2, Below: tc.below})
			b.Next()
			b.Next()
			d := b.Next() // nominal 400ms
			if d < tc.lo || d > tc.hi {
				t.Fatalf("below=%v: delay %s outside [%s, %s]", tc.below, d, tc.lo, tc.hi)
			}
			seenLo, seenHi = min(seenLo, d), max(seenHi, d)
		}
		span := tc.hi - tc.lo
		if seenLo > tc.lo+span/10 || seenHi < tc.hi-span/10 {
			t.Errorf("below=%v: 2000 delays span only [%s, %s] of [%s, %s]", tc.below, seenLo, seenHi, tc.lo, tc.hi)
		}
	}
}

// Below never exceeds Max, even at the cap, and Reset starts again from
// Min (the pipeline's source restarts and sink retries).
func TestBelowHoldsMaxAsCeiling(t *testing.T) {
	b := New(Policy{Min: 10 * time.Millisecond, Max: 75 * time.Millisecond, Jitter: 0.2, Below: true})
	want := []time.Duration{10, 20, 40, 75, 75, 75}
	for i, w := range want {
		w *= time.Millisecond
		if got := b.Next(); got > w || got < time.Duration(float64(w)*0.8) {
			t.Errorf("delay %d = %s, want in [%s, %s]", i, got, time.Duration(float64(w)*0.8), w)
		}
	}
	b.Reset()
	if got := b.Next(); got > 10*time.Millisecond {
		t.Errorf("after Reset delay %s, want at most the minimum", got)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep 1ms: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Error("Sleep on a cancelled context waited")
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep 0 on a cancelled context: %v", err)
	}
}
