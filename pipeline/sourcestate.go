package pipeline

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"lookout/ingest"
)

// Source states, see SourceState.State.
const (
	StatePending      = "pending"
	StateOpening      = "opening"
	StateRunning      = "running"
	StateReconnecting = "reconnecting"
	StateBackoff      = "backoff"
	StateDone         = "done"
	StateFailed       = "failed"
	StateStopped      = "stopped"
)

// SourceStates lists every source state, for lookout_source_state.
var SourceStates = []string{StatePending, StateOpening, StateRunning, StateReconnecting,
	StateBackoff, StateDone, StateFailed, StateStopped}

// SourceState is a snapshot of one source for status pages.
type SourceState struct {
	ID     string
	Live   bool
	Labels map[string]string
	// Version is the one given to Reconcile, empty for AddSource.
	Version string
	// State is one of pending (Run not started), opening (until the first
	// frame), running (frames flow), reconnecting (a live source's reader
	// lost the stream, or never had it, and is reopening it), backoff
	// (waiting for the pipeline to reopen it after a failure), done (end of
	// input), failed (a fatal error the pipeline does not retry, see
	// LastError) and stopped (at shutdown). See the State constants.
	State string
	// DownSince is when the current outage or failure began: set while
	// reconnecting, failed, or backing off or opening after a failure.
	DownSince time.Time
	// Restarts counts reopens by the pipeline (lookout_source_restarts_total);
	// a live source's reconnects inside its reader are not among them.
	Restarts int
	// LastError is the last failure, empty if none. For an RTSP source it
	// says which failure it is where the server tells: no connection, 404
	// (wrong path) or 401 (credentials).
	LastError  string
	QueueDepth int
}

// Summary is one line for status pages: id, state, for how long the source
// has been down, and its last failure while down or failed.
func (s SourceState) Summary(now time.Time) string {
	line := "source " + s.ID + " " + s.State
	if !s.DownSince.IsZero() {
		line += " for " + now.Sub(s.DownSince).Round(time.Second).String()
		if s.LastError != "" {
			line += ": " + s.LastError
		}
	}
	return line
}

// sourcesDown reports an error when sources exist and every one that has
// not ended (done or stopped) is failed or down for at least grace. With
// no sources, or only ended ones, it reports nil: sources may be added
// over HTTP, and a finished replay is not a fault.
func sourcesDown(states []SourceState, grace time.Duration, now time.Time) error {
	var down []string
	for _, s := range states {
		switch {
		case s.State == StateDone || s.State == StateStopped:
			continue
		case s.State == StateFailed:
			down = append(down, s.ID+" failed")
		case !s.DownSince.IsZero() && now.Sub(s.DownSince) >= grace:
			down = append(down, fmt.Sprintf("%s %s for %s", s.ID, s.State, now.Sub(s.DownSince).Round(time.Second)))
		default:
			return nil
		}
	}
	if len(down) == 0 {
		return nil
	}
	return fmt.Errorf("pipeline: every source is down: %s", strings.Join(down, ", "))
}

// sourceState is the state a source runner keeps for Sources: its own
// open/read/restart cycle, plus the outage state of the open source's
// reader when it reports one.
type sourceState struct {
	mu       sync.Mutex
	state    string
	restarts int
	lastErr  error
	// downSince is when the failures since the last frame began (zero
	// while frames flow): the runner's own reopen cycle.
	downSince time.Time
	// health is the open source's outage state, when it reports one: a
	// Reconnecting's Next blocks through outages, so only it knows.
	health ingest.HealthReporter
}

// set records a state; a failure (err set) starts the down time unless it
// already runs.
func (s *sourceState) set(state string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = state
	if err != nil {
		s.lastErr = err
		if s.downSince.IsZero() {
			s.downSince = time.Now()
		}
	}
}

// flowing marks the first frame of an open source: running, not down.
func (s *sourceState) flowing() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = StateRunning
	s.downSince = time.Time{}
}

// restarted counts a reopen by the runner.
func (s *sourceState) restarted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restarts++
}

// watch makes src's outage state (if it reports one) part of the source's
// state until the next watch; nil stops it.
func (s *sourceState) watch(src ingest.Source) {
	h, _ := src.(ingest.HealthReporter)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.health != nil && h == nil {
		// Keep the closing source's last failure: it is newer than ours.
		if err := s.health.Health().LastErr; err != nil {
			s.lastErr = err
		}
	}
	s.health = h
}

// fill sets out's State, DownSince, Restarts and LastError.
func (s *sourceState) fill(out *SourceState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out.State, out.DownSince, out.Restarts = s.state, s.downSince, s.restarts
	lastErr := s.lastErr
	if s.health != nil && (s.state == StateOpening || s.state == StateRunning) {
		h := s.health.Health()
		if h.Down {
			out.State, out.DownSince = StateReconnecting, h.Since
		}
		if h.LastErr != nil {
			lastErr = h.LastErr // newer: the open source failed after anything recorded here
		}
	}
	switch out.State {
	case StateOpening, StateReconnecting, StateBackoff, StateFailed:
	default:
		out.DownSince = time.Time{}
	}
	if lastErr != nil {
		out.LastError = lastErr.Error()
	}
}
