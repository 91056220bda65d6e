package e2e

import (
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"lookout/sink"
)

// TestE2EFleetBrokerOutage: the broker stops for 30 s while 2 instances
// run 4 cameras and a replay. They keep captioning into their spools, the
// group settles again by itself, and nothing is lost: no live gap over
// every + 1 s, the replay's pts complete.
func TestE2EFleetBrokerOutage(t *testing.T) {
	kafka := e2eStartKafka(t)
	f := newE2EFleet(t, kafka)
	clip := e2eClip(t, "surv60", "--domain", "surveillance", "--seed", "22", "--duration", "60s", "--size", "320x180", "--fps", "10")
	var b strings.Builder
	b.WriteString("sources:\n")
	for i := range 4 {
		fmt.Fprintf(&b, "  - {id: cam%02d, uri: \"synth://driving?seed=%d&fps=2&size=320x180\", every: 1s}\n", i, i)
	}
	fmt.Fprintf(&b, "  - {id: rep0, uri: \"%s\", every: 1s, realtime: true}\n", clip)
	f.sources("put", e2eWriteFile(t, f.dir+"/catalogue.yaml", b.String()))
	f.start("a")
	f.start("b")
	before := f.waitBalanced(5, 2, 3, 20*time.Second)
	time.Sleep(5 * time.Second)

	tStop := time.Now()
	e2eStopKafka(t)
	time.Sleep(30 * time.Second)
	spooled := 0.0
	for _, m := range f.running() {
		spooled += e2eMetricSum(e2eMetrics(t, m.http), "lookout_spool_records")
	}
	if n := len(f.running()); n != 2 {
		t.Fatalf("%d of 2 instances alive after 30 s without the broker", n)
	}
	e2eStartKafka(t)
	tBack := time.Now()
	t.Logf("broker down %.1fs; %v records waited in the spools", tBack.Sub(tStop).Seconds(), spooled)
	if spooled == 0 {
		t.Errorf("nothing was spooled while the broker was down: were the sources captioning?")
	}
	after := f.waitBalanced(5, 2, 3, 60*time.Second)
	e2eFleetWaitInGroup(t, f, 60*time.Second)
	t.Logf("group settled %.1fs after the broker came back", time.Since(tBack).Seconds())
	for id, o := range after {
		if before[id] != o {
			t.Logf("note: %s moved from %s to %s across the outage", id, before[id], o)
		}
	}
	e2eFleetWaitSpoolsEmpty(t, f, 60*time.Second)
	time.Sleep(3 * time.Second)
	recs := f.records()
	worst := time.Duration(0)
	for id, g := range e2eFleetGaps(recs, tStop.Add(-3*time.Second), time.Now().Add(-2*time.Second)) {
		worst = max(worst, g)
		if g > 2*time.Second && before[id] == after[id] {
			t.Errorf("%s: %s gap across the outage (over every + 1 s)", id, g)
		}
	}
	t.Logf("largest live gap across the outage: %s", worst)
	e2eFleetWaitReplays(t, f, []string{"rep0"}, 59000, 90*time.Second)
	e2eFleetStop(t, f)
}

// e2eFleetWaitInGroup waits until every running instance's /readyz says it
// is in the group.
func e2eFleetWaitInGroup(t *testing.T, f *e2eFleet, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		all := true
		for _, m := range f.running() {
			_, body, _, err := e2eHttpGet("http://"+m.http+"/readyz", 2*time.Second)
			all = all && err == nil && strings.Contains(body, "in_group=true")
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("instances not all in the group after %s", within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func e2eFleetWaitSpoolsEmpty(t *testing.T, f *e2eFleet, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := 0.0
		for _, m := range f.running() {
			n += e2eMetricSum(e2eMetrics(t, m.http), "lookout_spool_records")
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v records still spooled after %s", n, within)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// e2eFleetWaitReplays waits until each replay's pts 0..last are all there
// (after dropping duplicates) and logs the accounting.
func e2eFleetWaitReplays(t *testing.T, f *e2eFleet, replays []string, last int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		recs := f.records()
		var missingAll []string
		for _, id := range replays {
			if _, _, missing := e2eReplayAccount(recs, id, 1000, last); len(missing) > 0 {
				missingAll = append(missingAll, fmt.Sprintf("%s: %d missing (first %d)", id, len(missing), missing[0]))
			}
		}
		if len(missingAll) == 0 {
			for _, id := range replays {
				n, dups, _ := e2eReplayAccount(recs, id, 1000, last)
				t.Logf("replay %s: pts 0..%d complete, %d records, %d duplicates dropped, 0 lost", id, last, n, dups)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replays incomplete after %s: %v", within, missingAll)
		}
		time.Sleep(2 * time.Second)
	}
}

// TestE2EFleetChaos: random SIGKILLs and restarts of 3-4 instances and one
// broker restart for LOOKOUT_FLEET_CHAOS (default 2m; `make chaos` runs
// 10m), then an accounting: replay pts lost (must be 0), the largest live
// gap per source, duplicates.
func TestE2EFleetChaos(t *testing.T) {
	dur := 2 * time.Minute
	if v := os.Getenv("LOOKOUT_FLEET_CHAOS"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("LOOKOUT_FLEET_CHAOS=%q: %v", v, err)
		}
		dur = d
	}
	kafka := e2eStartKafka(t)
	f := newE2EFleet(t, kafka)
	clipSecs := int(dur.Seconds()) / 2
	clip := e2eClip(t, fmt.Sprintf("chaos%d", clipSecs), "--domain", "surveillance", "--seed", "23",
		"--duration", fmt.Sprintf("%ds", clipSecs), "--size", "320x180", "--fps", "10")
	var b strings.Builder
	b.WriteString("sources:\n")
	for i := range e2eFleetSynth {
		fmt.Fprintf(&b, "  - {id: cam%02d, uri: \"synth://driving?seed=%d&fps=2&size=320x180\", every: 1s}\n", i, i)
	}
	replays := []string{"rep0", "rep1"}
	for _, id := range replays {
		fmt.Fprintf(&b, "  - {id: %s, uri: \"%s\", every: 1s, realtime: true}\n", id, clip)
	}
	f.sources("put", e2eWriteFile(t, f.dir+"/catalogue.yaml", b.String()))
	slots := []string{"i0", "i1", "i2", "i3"}
	for _, s := range slots[:3] {
		f.start(s)
	}
	total := e2eFleetSynth + len(replays)
	f.waitBalanced(total, 4, 5, 30*time.Second)

	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	tStart := time.Now()
	brokerAt := tStart.Add(dur / 2)
	brokerDone := false
	var events []string
	for time.Since(tStart) < dur {
		time.Sleep(time.Duration(8+r.Intn(10)) * time.Second)
		if !brokerDone && time.Now().After(brokerAt) {
			e2eStopKafka(t)
			time.Sleep(10 * time.Second)
			e2eStartKafka(t)
			brokerDone = true
			events = append(events, fmt.Sprintf("%.0fs broker restart", time.Since(tStart).Seconds()))
			continue
		}
		running := f.running()
		stopped := []string{}
		for _, s := range slots {
			if m := f.member(s); m == nil || m.p.exited() {
				stopped = append(stopped, s)
			}
		}
		if len(running) > 3 || (len(running) == 3 && r.Intn(2) == 0) || len(stopped) == 0 {
			v := running[r.Intn(len(running))]
			v.p.stop(syscall.SIGKILL, 10*time.Second)
			events = append(events, fmt.Sprintf("%.0fs kill %s", time.Since(tStart).Seconds(), v.name))
		} else {
			s := stopped[r.Intn(len(stopped))]
			f.start(s)
			events = append(events, fmt.Sprintf("%.0fs start %s", time.Since(tStart).Seconds(), s))
		}
	}
	t.Logf("chaos for %s: %s", dur, strings.Join(events, ", "))
	tEnd := time.Now()
	// Every slot back (their spools drain), then account.
	for _, s := range slots {
		if m := f.member(s); m == nil || m.p.exited() {
			f.start(s)
		}
	}
	f.waitBalanced(total, 3, 4, 60*time.Second)
	e2eFleetWaitSpoolsEmpty(t, f, 90*time.Second)
	e2eFleetWaitReplays(t, f, replays, int64(clipSecs-1)*1000, time.Duration(clipSecs)*time.Second+2*time.Minute)
	e2eFleetChaosReport(t, f.records(), tStart, tEnd)
	e2eFleetStop(t, f)
}

// e2eFleetChaosReport logs the largest live gap per source, duplicates and
// the largest two-owner overlap over the chaos window.
func e2eFleetChaosReport(t *testing.T, recs []sink.Record, from, to time.Time) {
	t.Helper()
	gaps := e2eFleetGaps(recs, from, to)
	ids := e2eSortedKeys(gaps)
	var parts []string
	var worst time.Duration
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("%s %.1fs", id, gaps[id].Seconds()))
		worst = max(worst, gaps[id])
	}
	seen := map[string]bool{}
	dups := 0
	for _, r := range recs {
		if seen[r.ID] {
			dups++
		}
		seen[r.ID] = true
	}
	ov := e2eFleetOverlap(recs)
	var ovWorst time.Duration
	for _, d := range ov {
		ovWorst = max(ovWorst, d)
	}
	sort.Strings(parts)
	t.Logf("chaos accounting: replay pts lost 0; %d records, %d duplicates by id; largest two-owner overlap %s; largest live gap %.1fs; per source: %s",
		len(recs), dups, ovWorst.Round(time.Millisecond), worst.Seconds(), strings.Join(parts, ", "))
	if worst > 45*time.Second {
		t.Errorf("a live source was silent for %s: more than a failover, a broker restart and a second failover", worst)
	}
}
