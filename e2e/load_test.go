package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2EOverload: 16 synthetic 1280x720 30 fps cameras sampled at 5 fps on
// a 2-core machine: far more than it can caption. Resident memory stays
// under a bound and flat, live frames are dropped and counted, and /healthz
// answers within 1 s throughout.
func TestE2EOverload(t *testing.T) {
	const (
		sources  = 16
		duration = 15 * time.Second
		rssLimit = 1536 << 20
	)
	dir := t.TempDir()
	var b strings.Builder
	for i := 0; i < sources; i++ {
		domain := []string{"driving", "surveillance"}[i%2]
		fmt.Fprintf(&b, "  - {id: cam%02d, uri: \"synth://%s?seed=%d&fps=30&size=1280x720\", fps: 5}\n", i, domain, 100+i)
	}
	cfg, httpAddr := e2eServiceConfig(t, dir, "", "warn", fmt.Sprintf(`sources:
%ssinks:
  jsonl: {path: %s/out.jsonl}
`, b.String(), dir))
	p := e2eStartLookout(t, dir, "run", "--config", cfg)
	e2eWaitHTTP(t, p, "http://"+httpAddr+"/healthz", 60*time.Second)

	type sample struct {
		at  time.Duration
		rss int64
	}
	var rss []sample
	var probes, slow, failed int
	var worst time.Duration
	start := time.Now()
	for time.Since(start) < duration {
		r, err := e2eRssBytes(p.pid())
		if err != nil {
			t.Fatalf("reading VmRSS of pid %d: %v; stderr:\n%s", p.pid(), err, e2eTail(p.stderr.String(), 20))
		}
		rss = append(rss, sample{time.Since(start), r})
		code, _, took, err := e2eHttpGet("http://"+httpAddr+"/healthz", time.Second)
		probes++
		worst = max(worst, took)
		switch {
		case err != nil || code != 200:
			failed++
			t.Errorf("/healthz at %.1fs: code %d, %v (%.2fs)", time.Since(start).Seconds(), code, err, took.Seconds())
		case took > time.Second:
			slow++
		}
		time.Sleep(500 * time.Millisecond)
	}
	m := e2eMetrics(t, httpAddr)
	if code := p.stop(syscall.SIGINT, 60*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGINT, want 0; stderr:\n%s", code, e2eTail(p.stderr.String(), 20))
	}

	var peak int64
	for _, s := range rss {
		peak = max(peak, s.rss)
	}
	// Flatness: the mean of the last third against the mean of the middle
	// third (the first third includes start-up growth), and the slope of a
	// least-squares line over the last two thirds.
	third := len(rss) / 3
	mean := func(ss []sample) float64 {
		var s float64
		for _, x := range ss {
			s += float64(x.rss)
		}
		return s / float64(len(ss))
	}
	mid, last := mean(rss[third:2*third]), mean(rss[2*third:])
	var sx, sy, sxx, sxy float64
	tailS := rss[third:]
	for _, s := range tailS {
		x, y := s.at.Seconds(), float64(s.rss)/(1<<20)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	n := float64(len(tailS))
	slope := (n*sxy - sx*sy) / (n*sxx - sx*sx)
	dropped := e2eMetricSum(m, "lookout_source_frames_dropped_total")
	stale := e2eMetricSum(m, "lookout_source_frames_stale_total")
	read := e2eMetricSum(m, "lookout_source_frames_read_total")
	records := e2eMetricSum(m, "lookout_records_total")
	t.Logf("%d sources x 1280x720@30 sampled at 5 fps for %s: RSS peak %.0f MiB, middle third %.0f MiB, last third %.0f MiB, slope %.1f MiB/s",
		sources, duration, float64(peak)/(1<<20), mid/(1<<20), last/(1<<20), slope)
	t.Logf("frames read %g, stale (replaced before the tick) %g, dropped from queues %g, records %g; /healthz %d probes, worst %.0f ms, %d over 1 s, %d failed",
		read, stale, dropped, records, probes, float64(worst.Milliseconds()), slow, failed)
	if peak > rssLimit {
		t.Errorf("RSS peaked at %.0f MiB, over the %d MiB bound", float64(peak)/(1<<20), rssLimit>>20)
	}
	if last > mid*1.25+64<<20 {
		t.Errorf("RSS grows: middle third %.0f MiB, last third %.0f MiB", mid/(1<<20), last/(1<<20))
	}
	if dropped+stale == 0 {
		t.Errorf("no frame was dropped or counted stale under 16x overload: lookout_source_frames_dropped_total and lookout_source_frames_stale_total are both 0")
	}
	if records == 0 {
		t.Errorf("no record was captioned under overload")
	}
	if slow > 0 {
		t.Errorf("/healthz took over 1 s %d times of %d (worst %.2fs)", slow, probes, worst.Seconds())
	}
}
