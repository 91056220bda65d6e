package pipeline

import (
	"sync"
	"time"
)

// rateLimit lets one log line per key through per interval and counts the
// ones it held back, so that a recurring problem is logged once per interval
// rather than once per frame.
type rateLimit struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
	held     map[string]int
}

func newRateLimit(interval time.Duration) *rateLimit {
	return &rateLimit{interval: interval, last: map[string]time.Time{}, held: map[string]int{}}
}

// allow reports whether a line for key may be logged now and, if so, how
// many were held back since the last one.
func (r *rateLimit) allow(key string) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if last, ok := r.last[key]; ok && now.Sub(last) < r.interval {
		r.held[key]++
		return false, 0
	}
	r.last[key] = now
	n := r.held[key]
	delete(r.held, key)
	return true, n
}

// forget removes key, so that the next problem of key is logged at once.
func (r *rateLimit) forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.last, key)
	delete(r.held, key)
}
