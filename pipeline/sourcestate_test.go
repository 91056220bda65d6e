package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"lookout/ingest"
)

func TestSourcesDown(t *testing.T) {
	now := time.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	const grace = 10 * time.Second
	tests := []struct {
		name   string
		states []SourceState
		want   string // "" ready
	}{
		{"no sources: ready, they may be added over HTTP", nil, ""},
		{"one running", []SourceState{{ID: "a", State: StateRunning}}, ""},
		{"opening", []SourceState{{ID: "a", State: StateOpening}}, ""},
		{"pending", []SourceState{{ID: "a", State: StatePending}}, ""},
		{"reconnecting within the grace", []SourceState{{ID: "a", State: StateReconnecting, DownSince: ago(3 * time.Second)}}, ""},
		{"reconnecting past the grace", []SourceState{{ID: "a", State: StateReconnecting, DownSince: ago(12 * time.Second)}},
			"pipeline: every source is down: a reconnecting for 12s"},
		{"all down or failed", []SourceState{
			{ID: "a", State: StateReconnecting, DownSince: ago(time.Minute)},
			{ID: "b", State: StateFailed, DownSince: ago(time.Second)},
			{ID: "c", State: StateBackoff, DownSince: ago(11 * time.Second)},
			{ID: "d", State: StateOpening, DownSince: ago(20 * time.Second)},
		}, "pipeline: every source is down: a reconnecting for 1m0s, b failed, c backoff for 11s, d opening for 20s"},
		{"one running among down ones", []SourceState{
			{ID: "a", State: StateReconnecting, DownSince: ago(time.Minute)},
			{ID: "b", State: StateRunning},
		}, ""},
		{"finished replays are left out", []SourceState{
			{ID: "a", State: StateDone},
			{ID: "b", State: StateFailed},
		}, "pipeline: every source is down: b failed"},
		{"only finished replays", []SourceState{{ID: "a", State: StateDone}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := sourcesDown(tc.states, grace, now)
			if got := errString(err); got != tc.want {
				t.Errorf("sourcesDown = %q, want %q", got, tc.want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// healthSource is a live source whose Next waits through outages, as
// ingest.Reconnecting does, and reports them through Health.
type healthSource struct {
	fakeSource
	mu     sync.Mutex
	health ingest.Health
	up     chan struct{} // closed while up
}

func newHealthSource(idx int) *healthSource {
	s := &healthSource{fakeSource: fakeSource{idx: idx, live: true, n: -1, interval: 5 * time.Millisecond}, up: make(chan struct{})}
	close(s.up)
	return s
}

func (s *healthSource) Health() ingest.Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.health
}

func (s *healthSource) setDown(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.health = ingest.Health{Down: true, Since: time.Now(), LastErr: err}
	s.up = make(chan struct{})
}

func (s *healthSource) setUp() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.health.Down, s.health.Since = false, time.Time{}
	close(s.up)
}

func (s *healthSource) Next(ctx context.Context) (ingest.Frame, error) {
	s.mu.Lock()
	up := s.up
	s.mu.Unlock()
	select {
	case <-up:
	case <-ctx.Done():
		return ingest.Frame{}, ctx.Err()
	}
	return s.fakeSource.Next(ctx)
}

// gauges returns what lookout_source_up and lookout_source_state show per
// source: the service's collector reads them from Sources at each scrape
// (internal/service/metrics.go, tested there).
func gauges(t *testing.T, p *Pipeline) (up map[string]float64, state map[string]string) {
	t.Helper()
	up, state = map[string]float64{}, map[string]string{}
	for _, s := range p.Sources() {
		if _, dup := state[s.ID]; dup {
			t.Errorf("source %s listed twice", s.ID)
		}
		up[s.ID], state[s.ID] = 0, s.State
		if s.State == StateRunning {
			up[s.ID] = 1
		}
	}
	return up, state
}

// A live source whose reader is reconnecting shows as reconnecting with
// the reader's error, in Sources, the gauges and readiness (after the
// grace); a healthy second source keeps the pipeline ready; a removed
// source's series vanish.
func TestSourceStateFollowsTheReadersHealth(t *testing.T) {
	h := newHarness(t, Config{SourceGrace: 150 * time.Millisecond}, nil)
	cam := newHealthSource(0)
	cam.emitted = &h.emitted
	if err := h.p.AddSource(SourceSpec{ID: "src0", Live: true}, func(context.Context) (ingest.Source, error) { return cam, nil }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := h.run(ctx)
	waitFor(t, "src0 running", 2*time.Second, func() bool { return h.p.Sources()[0].State == StateRunning })
	if up, state := gauges(t, h.p); up["src0"] != 1 || state["src0"] != StateRunning {
		t.Errorf("gauges while running: up %v state %v", up, state)
	}

	refused := errors.New("rtsp source: transient source failure: cannot connect to 127.0.0.1:1: connection refused")
	cam.setDown(refused)
	st := h.p.Sources()[0]
	if st.State != StateReconnecting || st.LastError != refused.Error() || st.DownSince.IsZero() {
		t.Errorf("Sources() while down = %+v, want reconnecting with the reader's error", st)
	}
	if up, state := gauges(t, h.p); up["src0"] != 0 || state["src0"] != StateReconnecting {
		t.Errorf("gauges while down: up %v state %v", up, state)
	}
	if err := h.p.Ready(); err != nil {
		t.Errorf("Ready() within the grace = %v, want nil", err)
	}
	waitFor(t, "not ready past the grace", 2*time.Second, func() bool { return h.p.Ready() != nil })
	if err := h.p.Ready(); !strings.Contains(err.Error(), "src0 reconnecting for") {
		t.Errorf("Ready() = %v, want it to name src0 reconnecting", err)
	}
	if sum := h.p.SourcesSummary(); !strings.HasPrefix(sum, "source src0 reconnecting for ") || !strings.Contains(sum, "connection refused\n") {
		t.Errorf("SourcesSummary() = %q", sum)
	}

	h.add(t, &fakeSource{idx: 1, live: true, n: -1, interval: 5 * time.Millisecond}, nil)
	waitFor(t, "ready with src1 added", 2*time.Second, func() bool { return h.p.Ready() == nil })
	waitFor(t, "src1 running", 2*time.Second, func() bool { return h.p.Sources()[1].State == StateRunning })

	cam.setUp()
	waitFor(t, "src0 running again", 2*time.Second, func() bool { return h.p.Sources()[0].State == StateRunning })
	if st := h.p.Sources()[0]; st.LastError != refused.Error() || !st.DownSince.IsZero() {
		t.Errorf("after recovery: %+v, want the last error kept and no down time", st)
	}
	if err := h.p.RemoveSource("src0"); err != nil {
		t.Fatal(err)
	}
	if up, state := gauges(t, h.p); len(up) != 1 || len(state) != 1 || up["src1"] != 1 {
		t.Errorf("gauges after removing src0: up %v state %v, want only src1", up, state)
	}
	cancel()
	if err, ok := wait(5 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	h.checkReleased(t)
}

// Every replay failed: not ready, and the summary names the failure.
func TestReadyFailsWhenEveryReplayFailed(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	if err := h.p.AddSource(SourceSpec{ID: "a"}, func(context.Context) (ingest.Source, error) {
		return nil, errors.New("video file \"/x.mp4\" does not exist: check the path")
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := h.run(ctx)
	waitFor(t, "a failed", 2*time.Second, func() bool { return h.p.Sources()[0].State == StateFailed })
	if err := h.p.Ready(); err == nil || !strings.Contains(err.Error(), "every source is down: a failed") {
		t.Errorf("Ready() = %v", err)
	}
	if sum := h.p.SourcesSummary(); !strings.Contains(sum, "source a failed for ") || !strings.Contains(sum, "does not exist") {
		t.Errorf("SourcesSummary() = %q", sum)
	}
	cancel()
	wait(5 * time.Second)
}
