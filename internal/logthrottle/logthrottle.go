// Package logthrottle is lookout's one log throttle: a recurring problem
// (drops of a source, failures of a sink, a failing model) is logged once
// per interval with the count of lines held back, not once per frame.
//
// zerolog's samplers drop lines without counting them and know no keys, so
// they cannot say "12 more since the last line" per problem; this type does.
package logthrottle

import (
	"sync"
	"time"
)

// Throttle lets one line per key through per interval. Safe for concurrent
// use; the zero value is not usable, use New.
type Throttle struct {
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

// New returns a Throttle that lets one line per key through per interval.
func New(interval time.Duration) *Throttle {
	return &Throttle{interval: interval, now: time.Now, last: map[string]time.Time{}, held: map[string]int{}}
}

// Allow reports whether a line for key may be logged now and, if so, how
// many lines of key were held back since the last one.
func (t *Throttle) Allow(key string) (ok bool, held int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if last, seen := t.last[key]; seen && now.Sub(last) < t.interval {
		t.held[key]++
		return false, 0
	}
	t.last[key] = now
	held = t.held[key]
	delete(t.held, key)
	return true, held
}

// Forget removes key, so that the next problem of key (after a recovery)
// is logged at once.
func (t *Throttle) Forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.last, key)
	delete(t.held, key)
}
