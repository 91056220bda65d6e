package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"lookout/sink"
)

// The fleet tests run several real `lookout run` processes in cluster mode
// against the real broker: 12 synthetic cameras (1 caption/s, 320x180 at
// 2 fps, the tiny model) and real-time file replays in the catalogue. The
// figures they log are in docs/SCALING.md.

const e2eFleetSynth = 12

// e2eFleetCatalogue puts 12 cameras and 2 real-time replays of a 60 s clip.
func e2eFleetCatalogue(t *testing.T, f *e2eFleet) (replays []string) {
	clip := e2eClip(t, "surv60", "--domain", "surveillance", "--seed", "22", "--duration", "60s", "--size", "320x180", "--fps", "10")
	var b strings.Builder
	b.WriteString("sources:\n")
	for i := range e2eFleetSynth {
		fmt.Fprintf(&b, "  - {id: cam%02d, uri: \"synth://driving?seed=%d&fps=2&size=320x180\", every: 1s}\n", i, i)
	}
	for i := range 2 {
		id := fmt.Sprintf("rep%d", i)
		fmt.Fprintf(&b, "  - {id: %s, uri: \"%s\", every: 1s, realtime: true}\n", id, clip)
		replays = append(replays, id)
	}
	path := e2eWriteFile(t, f.dir+"/catalogue.yaml", b.String())
	f.sources("put", path)
	return replays
}

// TestE2EFleet: 3 instances balance 14 sources; a 4th joins and only the
// sources it takes restart; a SIGKILLed instance's sources caption again on
// the survivors within 15 s, replays resume with no pts lost; sources put
// and rm reach their owner within 2 s.
func TestE2EFleet(t *testing.T) {
	kafka := e2eStartKafka(t)
	f := newE2EFleet(t, kafka)
	replays := e2eFleetCatalogue(t, f)
	total := e2eFleetSynth + len(replays)

	t0 := time.Now()
	for i := range 3 {
		f.start(fmt.Sprintf("i%d", i))
	}
	before := f.waitBalanced(total, 4, 5, 20*time.Second)
	t.Logf("3 instances own 4-5 sources each %.1fs after start", time.Since(t0).Seconds())
	e2eFleetCheckLs(t, f, before)
	// The dashboard's fleet row names only metrics an instance exposes.
	t.Run("dashboard", func(t *testing.T) { e2eCheckDashboard(t, f.member("i0").http, true) })
	time.Sleep(4 * time.Second) // records flow before the join

	tJoin := time.Now()
	f.start("i3")
	after := f.waitBalanced(total, 3, 4, 20*time.Second)
	tBalanced := time.Now()
	t.Logf("the 4th instance got its share %.1fs after it started", time.Since(tJoin).Seconds())
	var moved []string
	for id, o := range after {
		if before[id] != o {
			moved = append(moved, id)
			if o != "i3" {
				t.Errorf("%s moved from %s to %s, not to the newcomer", id, before[id], o)
			}
		}
	}
	sort.Strings(moved)
	if len(moved) != 3 {
		t.Errorf("%d sources moved (%v), want 3: 5,5,4 -> 4,4,3,3", len(moved), moved)
	}
	time.Sleep(6 * time.Second)
	e2eFleetCheckJoin(t, f.records(), moved, tJoin, tBalanced.Add(4*time.Second))

	// SIGKILL the instance running rep0 (not the newcomer's, if it has it).
	victim := after["rep0"]
	var lost []string
	for id, o := range after {
		if o == victim {
			lost = append(lost, id)
		}
	}
	tKill := time.Now()
	f.member(victim).p.stop(syscall.SIGKILL, 10*time.Second)
	t.Logf("SIGKILLed %s owning %v", victim, lost)
	f.waitBalanced(total, 4, 5, 20*time.Second)
	e2eFleetCheckFailover(t, f, lost, victim, tKill)

	// Replays: wait for their last frame (pts 59000), then account.
	deadline := time.Now().Add(90 * time.Second)
	for {
		done := 0
		for _, id := range replays {
			if n, _, missing := e2eReplayAccount(f.records(), id, 1000, 59000); n > 0 && len(missing) == 0 {
				done++
			}
		}
		if done == len(replays) {
			break
		}
		if time.Now().After(deadline) {
			for _, id := range replays {
				n, dups, missing := e2eReplayAccount(f.records(), id, 1000, 59000)
				t.Errorf("replay %s: %d records, %d duplicates, missing pts %v", id, n, dups, missing)
			}
			t.FailNow()
		}
		time.Sleep(2 * time.Second)
	}
	recs := f.records()
	for _, id := range replays {
		n, dups, _ := e2eReplayAccount(recs, id, 1000, 59000)
		t.Logf("replay %s: all 60 pts present exactly once after dropping %d duplicates of %d records", id, dups, n)
	}
	e2eFleetReportOverlap(t, recs, 6*time.Second)
	e2eFleetPutRm(t, f)
	e2eFleetGracefulHandover(t, f, total)
	e2eFleetStop(t, f)
}

// e2eFleetGracefulHandover: SIGTERM one instance; its sources run on the
// others within 3 s, and it exits 0.
func e2eFleetGracefulHandover(t *testing.T, f *e2eFleet, total int) {
	t.Helper()
	m := f.running()[0]
	mine, _ := m.owned()
	t0 := time.Now()
	if err := m.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		bySource, _ := f.ownership()
		moved := 0
		for _, id := range mine {
			for _, o := range bySource[id] {
				if o != m.name {
					moved++
					break
				}
			}
		}
		if moved == len(mine) {
			break
		}
		if time.Since(t0) > 10*time.Second {
			t.Fatalf("after SIGTERM of %s, %d of its %d sources run elsewhere after 10s", m.name, moved, len(mine))
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(t0)
	if code := m.p.wait(30 * time.Second); code != 0 {
		t.Errorf("%s exited %d after SIGTERM", m.name, code)
	}
	t.Logf("SIGTERM: %s's %d sources ran on the others %.2fs later", m.name, len(mine), took.Seconds())
	if took > 3*time.Second {
		t.Errorf("graceful handover took %s, want <= 3s", took)
	}
	n := len(f.running())
	f.waitBalanced(total, total/n, (total+n-1)/n, 10*time.Second)
}

// e2eFleetStop stops every instance with SIGTERM: each leaves the group and
// exits 0.
func e2eFleetStop(t *testing.T, f *e2eFleet) {
	t.Helper()
	var cpu []string
	for _, m := range f.running() {
		if code := m.p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
			t.Errorf("%s exited %d after SIGTERM:\n%s", m.name, code, e2eTail(m.p.stderr.String(), 10))
		}
		st := m.p.cmd.ProcessState
		used, wall := st.UserTime()+st.SystemTime(), time.Since(m.started)
		cpu = append(cpu, fmt.Sprintf("%s %.1fs CPU in %.0fs (%.2f cores)", m.name, used.Seconds(), wall.Seconds(), used.Seconds()/wall.Seconds()))
	}
	t.Logf("instances stopped with SIGTERM, exit 0; CPU: %s", strings.Join(cpu, ", "))
}

// e2eFleetCheckJoin: sources that did not move kept one run (no restart)
// and no gap beyond every + 1 s around the join; moved ones restarted.
func e2eFleetCheckJoin(t *testing.T, recs []sink.Record, moved []string, tJoin, until time.Time) {
	t.Helper()
	runs := map[string]map[string]bool{}
	for _, r := range recs {
		if r.Run == "" || r.CaptureTime.Before(tJoin.Add(-3*time.Second)) {
			continue
		}
		if runs[r.SourceID] == nil {
			runs[r.SourceID] = map[string]bool{}
		}
		runs[r.SourceID][r.Run] = true
	}
	var restarted []string
	for id, rs := range runs {
		if len(rs) > 1 {
			restarted = append(restarted, id)
		}
	}
	sort.Strings(restarted)
	var movedLive []string
	for _, id := range moved {
		if strings.HasPrefix(id, "cam") {
			movedLive = append(movedLive, id)
		}
	}
	if strings.Join(restarted, ",") != strings.Join(movedLive, ",") {
		t.Errorf("restarted around the join: %v; moved live sources: %v", restarted, movedLive)
	}
	gaps := e2eFleetGaps(recs, tJoin.Add(-3*time.Second), until)
	var worst time.Duration
	for id, g := range gaps {
		if strings.Contains(","+strings.Join(moved, ",")+",", ","+id+",") {
			continue
		}
		worst = max(worst, g)
		if g > 2*time.Second {
			t.Errorf("%s (not moved) has a %s gap around the join, over every (1s) + 1s", id, g)
		}
	}
	if len(gaps) < e2eFleetSynth {
		t.Errorf("only %d live sources produced around the join: %v", len(gaps), gaps)
	}
	t.Logf("join: restarted %v (the moved ones), largest gap of the others %s", restarted, worst)
}

// e2eFleetCheckFailover: each of the victim's live sources produces again
// on a survivor within 15 s of the kill.
func e2eFleetCheckFailover(t *testing.T, f *e2eFleet, lost []string, victim string, tKill time.Time) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		first := map[string]time.Time{}
		for _, r := range f.records() {
			if r.Instance != "" && r.Instance != victim && r.CaptureTime.After(tKill) {
				if old, ok := first[r.SourceID]; !ok || r.CaptureTime.Before(old) {
					first[r.SourceID] = r.CaptureTime
				}
			}
		}
		var worst time.Duration
		all := true
		for _, id := range lost {
			ft, ok := first[id]
			all = all && ok
			worst = max(worst, ft.Sub(tKill))
		}
		if all {
			t.Logf("failover: the killed instance's %d sources produced again on survivors after at most %.1fs", len(lost), worst.Seconds())
			if worst > 15*time.Second {
				t.Errorf("failover took %s, want <= 15s", worst)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the kill of %s not all of %v produced again: %v", victim, lost, first)
		}
		time.Sleep(time.Second)
	}
}

// e2eFleetReportOverlap logs, and bounds, how long two instances produced
// one source at once.
func e2eFleetReportOverlap(t *testing.T, recs []sink.Record, window time.Duration) {
	t.Helper()
	var worst time.Duration
	var at string
	for id, d := range e2eFleetOverlap(recs) {
		if d > worst {
			worst, at = d, id
		}
	}
	t.Logf("two-owner overlap: largest %s (%s)", worst.Round(time.Millisecond), at)
	if worst > window {
		t.Errorf("two instances produced %s at once for %s, over the documented window %s", at, worst, window)
	}
}

// e2eFleetPutRm: a source put while running starts on one instance, and a
// removal stops it, each within 2 s.
func e2eFleetPutRm(t *testing.T, f *e2eFleet) {
	t.Helper()
	id := "late"
	wait := func(want bool) time.Duration {
		t0 := time.Now()
		for {
			bySource, _ := f.ownership()
			if (len(bySource[id]) == 1) == want {
				return time.Since(t0)
			}
			if time.Since(t0) > 5*time.Second {
				t.Fatalf("source %s running=%v not reached in 5s: %v", id, want, bySource[id])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t0 := time.Now()
	f.sources("put", "--id", "late", "--uri", "synth://surveillance?seed=9&fps=2&size=320x180")
	cmdPut := time.Since(t0)
	put := wait(true) // from the command's return: the record is in the catalogue
	t0 = time.Now()
	f.sources("rm", "late")
	cmdRm := time.Since(t0)
	rm := wait(false)
	t.Logf("sources put reached its owner %.2fs after the command returned (the command took %.2fs), rm %.2fs (%.2fs)",
		put.Seconds(), cmdPut.Seconds(), rm.Seconds(), cmdRm.Seconds())
	if put > 2*time.Second || rm > 2*time.Second {
		t.Errorf("put %s / rm %s: want each within 2s", put, rm)
	}
	// POST on one instance and DELETE on another write the catalogue too: a
	// new id, once the rebalance after the rm is over.
	id = "late2"
	time.Sleep(2 * time.Second)
	ms := f.running()
	send := func(m *e2eMember, method, path, body string) {
		req, err := http.NewRequest(method, "http://"+m.http+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s on %s: status %d", method, path, m.name, resp.StatusCode)
		}
	}
	t0 = time.Now()
	send(ms[0], http.MethodPost, "/sources", `{"id":"late2","uri":"synth://surveillance?seed=8&fps=2&size=320x180"}`)
	reqPost := time.Since(t0)
	post := wait(true)
	t0 = time.Now()
	send(ms[len(ms)-1], http.MethodDelete, "/sources?id=late2", "")
	reqDel := time.Since(t0)
	del := wait(false)
	t.Logf("POST /sources on %s (answered in %.2fs) ran the source %.2fs after the answer, DELETE on %s (%.2fs) stopped it %.2fs after",
		ms[0].name, reqPost.Seconds(), post.Seconds(), ms[len(ms)-1].name, reqDel.Seconds(), del.Seconds())
	if post > 2*time.Second || del > 2*time.Second {
		t.Errorf("POST %s / DELETE %s: want each within 2s", post, del)
	}
}

// e2eFleetCheckLs: `lookout sources ls --json` names each source's owner as
// the instances themselves report it, and its state there.
func e2eFleetCheckLs(t *testing.T, f *e2eFleet, owner map[string]string) {
	t.Helper()
	var rows []struct{ ID, Owner, State string }
	out := f.sources("ls", "--json")
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("sources ls --json: %v\n%s", err, out)
	}
	if len(rows) != len(owner) {
		t.Fatalf("sources ls lists %d sources, want %d:\n%s", len(rows), len(owner), out)
	}
	for _, r := range rows {
		if r.Owner != owner[r.ID] || (r.State != "running" && r.State != "opening") {
			t.Errorf("sources ls: %s owner %s state %s; the instances say owner %s", r.ID, r.Owner, r.State, owner[r.ID])
		}
	}
}
