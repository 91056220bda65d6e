package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"lookout/sink"
)

// e2eFleet is a set of lookout instances in cluster mode sharing one
// catalogue, group and captions topic, each a real process.
type e2eFleet struct {
	t                                         *testing.T
	dir, kafka, group, catalogue, ckpt, topic string
	// extra is appended to every instance's cluster section.
	extra string
	// model, when set, replaces the tiny model for instances started next.
	model string

	mu      sync.Mutex
	members map[string]*e2eMember
}

// e2eMember is one instance; p is nil while it is not running.
type e2eMember struct {
	name, http string
	p          *e2eProc
	started    time.Time
}

func newE2EFleet(t *testing.T, kafka string) *e2eFleet {
	id := time.Now().UnixNano()
	f := &e2eFleet{t: t, dir: t.TempDir(), kafka: kafka, group: fmt.Sprintf("fleet-%d", id),
		catalogue: fmt.Sprintf("fleet-%d.sources", id), ckpt: fmt.Sprintf("fleet-%d.checkpoints", id),
		topic: fmt.Sprintf("fleet-%d.captions", id), members: map[string]*e2eMember{}}
	e2eCreateTopic(t, kafka, f.topic)
	return f
}

// start (re)starts instance name with its own data_dir (kept across
// restarts, so its spool drains after a kill).
func (f *e2eFleet) start(name string) *e2eMember {
	f.t.Helper()
	dir := filepath.Join(f.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	body := fmt.Sprintf(`pipeline: {workers: 1, max_batch: 8, max_wait: 100ms}
sinks:
  kafka: {enabled: true, brokers: ["%s"], topic: %s, batch_timeout: 10ms}
cluster:
  enabled: true
  instance: %s
  group: %s
  catalogue: %s
  checkpoints: %s
  session_timeout: 6s
  heartbeat: 300ms
  allow: {schemes: [synth, file], file_roots: ["%s"]}
%s`, f.kafka, f.topic, name, f.group, f.catalogue, f.ckpt, e2e.tmp, f.extra)
	cfg, addr := e2eServiceConfig(f.t, dir, "", "info", body)
	if f.model != "" {
		b, _ := os.ReadFile(cfg)
		e2eWriteFile(f.t, cfg, strings.Replace(string(b), e2eTinyModel(), f.model, 1))
	}
	m := &e2eMember{name: name, http: addr, started: time.Now()}
	m.p = e2eStartLookout(f.t, dir, "run", "--config", cfg)
	f.mu.Lock()
	f.members[name] = m
	f.mu.Unlock()
	return m
}

func (f *e2eFleet) member(name string) *e2eMember {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.members[name]
}

// running lists the instances whose process is alive.
func (f *e2eFleet) running() []*e2eMember {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*e2eMember
	for _, m := range f.members {
		if m.p != nil && !m.p.exited() {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// sources runs `lookout sources ARGS` against the fleet's catalogue.
func (f *e2eFleet) sources(args ...string) string {
	f.t.Helper()
	full := append([]string{"sources"}, args...)
	full = append(full, "--brokers", f.kafka, "--catalogue", f.catalogue, "--group", f.group)
	code, stdout, stderr, _ := e2eRunLookout(f.t, f.dir, time.Minute, full...)
	if code != 0 {
		f.t.Fatalf("lookout %s: exit %d\n%s", strings.Join(full, " "), code, stderr)
	}
	return stdout
}

// owned asks an instance which sources it runs (GET /sources); ok is false
// when it does not answer.
func (m *e2eMember) owned() (ids []string, ok bool) {
	code, body, _, err := e2eHttpGet("http://"+m.http+"/sources", 2*time.Second)
	if err != nil || code != 200 {
		return nil, false
	}
	var b struct {
		Sources []string `json:"sources"`
	}
	if json.Unmarshal([]byte(body), &b) != nil {
		return nil, false
	}
	sort.Strings(b.Sources)
	return b.Sources, true
}

// ownership maps each source to the running instances that run it.
func (f *e2eFleet) ownership() (map[string][]string, map[string][]string) {
	bySource, byMember := map[string][]string{}, map[string][]string{}
	for _, m := range f.running() {
		ids, ok := m.owned()
		if !ok {
			continue
		}
		byMember[m.name] = ids
		for _, id := range ids {
			bySource[id] = append(bySource[id], m.name)
		}
	}
	return bySource, byMember
}

// waitBalanced waits until n sources run, each on exactly one of the
// running instances, every instance with lo..hi of them; it returns the
// owner of each source.
func (f *e2eFleet) waitBalanced(n, lo, hi int, within time.Duration) map[string]string {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for {
		bySource, byMember := f.ownership()
		ok := len(bySource) == n && len(byMember) == len(f.running())
		for _, ids := range byMember {
			ok = ok && len(ids) >= lo && len(ids) <= hi
		}
		owner := map[string]string{}
		for id, ms := range bySource {
			ok = ok && len(ms) == 1
			owner[id] = ms[0]
		}
		if ok {
			return owner
		}
		if time.Now().After(deadline) {
			var why strings.Builder
			for _, m := range f.running() {
				fmt.Fprintf(&why, "\n%s: %v\n%s", m.name, byMember[m.name], e2eTail(m.p.stderr.String(), 8))
			}
			f.t.Fatalf("not balanced after %s: want %d sources, %d..%d per instance:%s", within, n, lo, hi, why.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// records reads the captions topic back.
func (f *e2eFleet) records() []sink.Record {
	var out []sink.Record
	for _, kr := range e2eReadTopic(f.t, f.kafka, f.topic) {
		out = append(out, kr.Rec)
	}
	return out
}

// e2eFleetGaps is, per live source, the largest gap between consecutive
// records by capture time in [from, to), after dropping duplicate ids.
func e2eFleetGaps(recs []sink.Record, from, to time.Time) map[string]time.Duration {
	seen := map[string]bool{}
	times := map[string][]time.Time{}
	for _, r := range recs {
		if r.Run == "" || seen[r.ID] || r.CaptureTime.Before(from) || !r.CaptureTime.Before(to) {
			continue
		}
		seen[r.ID] = true
		times[r.SourceID] = append(times[r.SourceID], r.CaptureTime)
	}
	out := map[string]time.Duration{}
	for id, ts := range times {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		gap := ts[0].Sub(from)
		for i := 1; i < len(ts); i++ {
			gap = max(gap, ts[i].Sub(ts[i-1]))
		}
		out[id] = max(gap, to.Sub(ts[len(ts)-1]))
	}
	return out
}

// e2eFleetOverlap is, per source, the longest time two instances both
// produced its records. An instance's records of a source form spans
// (a pause over 3 s, several samples, starts a new one: the source left and
// came back); the overlap is the longest intersection of two instances' spans.
func e2eFleetOverlap(recs []sink.Record) map[string]time.Duration {
	type span struct {
		inst        string
		first, last time.Time
	}
	times := map[string]map[string][]time.Time{} // source -> instance -> capture times
	for _, r := range recs {
		if r.Instance == "" {
			continue
		}
		if times[r.SourceID] == nil {
			times[r.SourceID] = map[string][]time.Time{}
		}
		times[r.SourceID][r.Instance] = append(times[r.SourceID][r.Instance], r.CaptureTime)
	}
	out := map[string]time.Duration{}
	for id, byInst := range times {
		var ss []span
		for inst, ts := range byInst {
			sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
			cur := span{inst: inst, first: ts[0], last: ts[0]}
			for _, c := range ts[1:] {
				if c.Sub(cur.last) > 3*time.Second {
					ss = append(ss, cur)
					cur = span{inst: inst, first: c}
				}
				cur.last = c
			}
			ss = append(ss, cur)
		}
		for i := range ss {
			for j := range ss {
				if ss[i].inst == ss[j].inst {
					continue
				}
				lo, hi := ss[i].first, ss[i].last
				if ss[j].first.After(lo) {
					lo = ss[j].first
				}
				if ss[j].last.Before(hi) {
					hi = ss[j].last
				}
				if d := hi.Sub(lo); d > out[id] {
					out[id] = d
				}
			}
		}
	}
	return out
}

// e2eReplayAccount checks a replay's pts after dropping duplicate ids: every
// multiple of every from 0 to last exactly once. It returns the number of
// records, of duplicates and the missing pts.
func e2eReplayAccount(recs []sink.Record, source string, every, last int64) (n, dups int, missing []int64) {
	ids := map[string]bool{}
	pts := map[int64]int{}
	for _, r := range recs {
		if r.SourceID != source || r.Kind != sink.KindCaption {
			continue
		}
		n++
		if ids[r.ID] {
			dups++
			continue
		}
		ids[r.ID] = true
		pts[r.PTSMillis]++
	}
	for p := int64(0); p <= last; p += every {
		if pts[p] != 1 {
			missing = append(missing, p)
		}
	}
	return n, dups, missing
}
