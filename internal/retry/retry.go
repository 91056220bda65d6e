// Package retry is lookout's one backoff: the exponential delays between
// attempts of anything that may fail for a while (a source reopening, a sink
// write, the spool's replay), and a sleep that ends with its context.
//
// The delays come from github.com/cenkalti/backoff/v5; this package only
// fixes the doubling and maps the two jitter shapes lookout documents onto
// the library's symmetric one.
package retry

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Policy describes a backoff. The nominal delays start at Min and double up
// to Max.
type Policy struct {
	// Min is the first delay; Max caps the nominal delays. Max below Min is
	// raised to Min.
	Min, Max time.Duration
	// Jitter is the random share of each delay, so that many failures at
	// once do not retry in lockstep: a nominal delay d becomes a uniform
	// value in [d*(1-Jitter), d*(1+Jitter)], or in [d*(1-Jitter), d] with
	// Below. 0 or less: none; at most 1.
	Jitter float64
	// Below keeps every delay at or under its nominal value, so that Max is
	// a hard ceiling.
	Below bool
}

// Backoff yields a Policy's delays. Not safe for concurrent use: each
// retrying loop owns one.
type Backoff struct {
	eb backoff.ExponentialBackOff
}

// New returns a Backoff at the start of p's sequence.
func New(p Policy) *Backoff {
	j := min(max(p.Jitter, 0), 1)
	p.Max = max(p.Max, p.Min)
	scale := 1.0
	if p.Below && j > 0 {
		// A window [d(1-j), d] is the library's symmetric window of
		// half-width j/2 around d(1-j/2).
		scale = 1 - j/2
		j = (j / 2) / scale
	}
	b := &Backoff{eb: backoff.ExponentialBackOff{
		InitialInterval:     time.Duration(float64(p.Min) * scale),
		RandomizationFactor: j,
		Multiplier:          2,
		MaxInterval:         time.Duration(float64(p.Max) * scale),
	}}
	b.eb.Reset()
	return b
}

// Next returns the delay before the next attempt.
func (b *Backoff) Next() time.Duration { return b.eb.NextBackOff() }

// Reset starts the sequence again from Min (after a success).
func (b *Backoff) Reset() { b.eb.Reset() }

// Sleep waits d or until ctx ends, returning ctx's error in that case (and
// at once when ctx has already ended).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
