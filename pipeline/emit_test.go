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
