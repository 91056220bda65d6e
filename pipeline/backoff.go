package pipeline

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// backoff yields exponentially growing delays between min and max, each
// shortened by a random share of up to jitter.
type backoff struct {
	min, max time.Duration
	jitter   float64
	next     time.Duration
}

func newBackoff(min, max time.Duration, jitter float64) *backoff {
	return &backoff{min: min, max: max, jitter: jitter}
}

// Next returns the delay before the next attempt.
func (b *backoff) Next() time.Duration {
	d := b.next
	if d < b.min {
		d = b.min
	}
	if d > b.max {
		d = b.max
	}
	if d > b.max/2 {
		b.next = b.max
	} else {
		b.next = 2 * d
	}
	return d - time.Duration(float64(d)*b.jitter*rand.Float64())
}

// Reset starts again from min.
func (b *backoff) Reset() { b.next = 0 }

// sleep waits d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

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
