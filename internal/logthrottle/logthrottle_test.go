package logthrottle

import (
	"testing"
	"time"
)

func TestHoldsBackRepeatsPerKey(t *testing.T) {
	r := New(time.Hour)
	if ok, _ := r.Allow("a"); !ok {
		t.Fatal("first line held back")
	}
	for range 3 {
		if ok, _ := r.Allow("a"); ok {
			t.Fatal("repeat within the interval let through")
		}
	}
	if ok, _ := r.Allow("b"); !ok {
		t.Error("another key held back")
	}
	r.Forget("a")
	if ok, held := r.Allow("a"); !ok || held != 0 {
		t.Errorf("after Forget: ok %v held %d", ok, held)
	}
}

// After the interval the next line goes through with the count of the
// lines held back since the last one.
func TestCountsHeldBackLines(t *testing.T) {
	now := time.Unix(0, 0)
	r := New(50 * time.Millisecond)
	r.now = func() time.Time { return now }
	r.Allow("k")
	for range 4 {
		if ok, _ := r.Allow("k"); ok {
			t.Fatal("repeat within the interval let through")
		}
	}
	now = now.Add(60 * time.Millisecond)
	if ok, held := r.Allow("k"); !ok || held != 4 {
		t.Fatalf("after the interval: ok %v held %d, want true 4", ok, held)
	}
	if ok, _ := r.Allow("k"); ok {
		t.Error("a new interval began but let a second line through")
	}
}
