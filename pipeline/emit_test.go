package pipeline

import (
	"fmt"
	"testing"
	"time"

	"lookout/sink"
)

func TestEmitterChangesAndHeartbeats(t *testing.T) {
	rec := func(pts int64, caption, weather string) sink.Record {
		r := sink.Record{Kind: sink.KindCaption, SourceID: "cam", Run: "r1", PTSMillis: pts, Caption: caption, ModelDigest: "d"}
		if weather != "" {
			r.Attributes = map[string]sink.Attr{"weather": {Value: weather, Prob: 0.9}}
		}
		r.ID = sink.RecordID(r.SourceID, r.Run, pts, "d", r.Kind)
		return r
	}
	gap := sink.Record{Kind: sink.KindGap, SourceID: "cam", Run: "r1", PTSMillis: 9000}
	in := []sink.Record{
		rec(0, "a", "sun"), rec(1000, "a", "sun"), rec(2000, "a", "sun"), // first, then held
		rec(3000, "b", "sun"),                          // caption changed
		rec(4000, "b", "rain"),                         // an attribute alone changed: not a change
		rec(5000, "b", "rain"), rec(6000, "b", "rain"), // heartbeat at 6000 (3 s)
		rec(7000, "b", "rain"),
		rec(8000, "b", "rain"),
		gap, rec(9000, "b", "rain"), // after a gap: published again
	}
	restarted := rec(500, "b", "rain")
	restarted.Run = "r2"
	in = append(in, restarted) // a new run: published again
	e := newEmitter()
	var out []string
	for _, r := range in {
		if got, ok := e.filter(r, Emit{Changes: true, Heartbeat: 3 * time.Second}); ok {
			out = append(out, fmt.Sprintf("%s@%d prev=%q held=%d", got.Kind, got.PTSMillis, got.PrevCaption, got.HeldMillis))
			if got.Kind == sink.KindHeartbeat && got.ID != sink.RecordID("cam", "r1", got.PTSMillis, "d", sink.KindHeartbeat) {
				t.Errorf("heartbeat id %s is not its own", got.ID)
			}
		}
	}
	want := []string{
		`caption@0 prev="" held=0`,
		`caption@3000 prev="a" held=3000`,
		`heartbeat@6000 prev="" held=3000`,
		`gap@9000 prev="" held=0`,
		`caption@9000 prev="" held=0`,
		`caption@500 prev="" held=0`,
	}
	if fmt.Sprint(out) != fmt.Sprint(want) {
		t.Errorf("published\n%v\nwant\n%v", out, want)
	}
	// Without Changes every record passes untouched.
	for _, r := range in[:3] {
		if got, ok := e.filter(r, Emit{}); !ok || got.PrevCaption != "" || got.Kind != r.Kind {
			t.Errorf("emit every changed %+v", got)
		}
	}
}

// Derive sees every record of a source in pts order, and what it returns is
// delivered right after the record it came from.
func TestDeriveSeesEveryRecordInOrder(t *testing.T) {
	var seen []int64
	cfg := Config{MaxBatch: 4, QueueSize: 4, Workers: 2, ExitWhenSourcesDone: true,
		Derive: func(r sink.Record) []sink.Record {
			seen = append(seen, r.PTSMillis)
			if r.Seq%3 != 0 {
				return nil
			}
			a := r
			a.Kind, a.CaptionID, a.Rule = sink.KindAlert, r.ID, "every-third"
			a.ID = sink.AlertID(r.ID, a.Rule)
			return []sink.Record{a}
		}}
	h := newHarness(t, cfg, nil)
	h.add(t, &fakeSource{idx: 0, n: 20}, nil)
	wait := h.run(t.Context())
	if err, ok := wait(10 * time.Second); !ok || err != nil {
		t.Fatalf("run: %v (ended: %v)", err, ok)
	}
	for i, p := range seen {
		if p != int64(i)*framePeriod.Milliseconds() {
			t.Fatalf("Derive saw pts %v, want every frame in order", seen)
		}
	}
	recs := h.sinks[0].records()
	alerts := 0
	for i, r := range recs {
		if r.Kind != sink.KindAlert {
			continue
		}
		alerts++
		if i == 0 || recs[i-1].ID != r.CaptionID {
			t.Errorf("alert %d does not follow its caption record", i)
		}
	}
	if len(seen) != 20 || alerts != 7 {
		t.Errorf("Derive saw %d records, %d alerts delivered; want 20, 7", len(seen), alerts)
	}
}
