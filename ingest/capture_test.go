package ingest

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Opens with equal options overlap; an open with other options waits for
// them and sees its own value for its whole run.
func TestOptionGate(t *testing.T) {
	g := newOptionGate()
	var inside atomic.Int32
	var maxInside atomic.Int32
	var wrong atomic.Int32
	run := func(v string) {
		g.enter(v)
		defer g.leave()
		n := inside.Add(1)
		for {
			m := maxInside.Load()
			if n <= m || maxInside.CompareAndSwap(m, n) {
				break
			}
		}
		for i := 0; i < 5; i++ {
			if os.Getenv(envCaptureOptions) != v {
				wrong.Add(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
		inside.Add(-1)
	}
	t.Cleanup(func() { _ = os.Unsetenv(envCaptureOptions) })
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		v := []string{"a;1", "b;2", "a;1"}[i%3]
		wg.Add(1)
		go func() { defer wg.Done(); run(v) }()
	}
	wg.Wait()
	if wrong.Load() != 0 {
		t.Errorf("%d reads saw another open's options", wrong.Load())
	}
	if maxInside.Load() < 2 {
		t.Errorf("opens with equal options never overlapped (max %d inside)", maxInside.Load())
	}
}
