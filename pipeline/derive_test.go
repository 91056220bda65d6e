package pipeline

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"lookout/ingest"
	"lookout/sink"
)

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

// filterSink takes only alerts.
type filterSink struct{ fakeSink }

func (f *filterSink) Accepts(kind string) bool { return kind == sink.KindAlert }

// A KindFilter sink gets only the kinds it accepts, and is not written at all
// for deliveries without them; the other sinks get everything.
func TestKindFilterSinks(t *testing.T) {
	derive := func(r sink.Record) []sink.Record {
		if r.Seq != 4 {
			return nil
		}
		a := r
		a.Kind, a.CaptionID, a.Rule = sink.KindAlert, r.ID, "fifth"
		a.ID = sink.AlertID(r.ID, a.Rule)
		return []sink.Record{a}
	}
	alerts := &filterSink{fakeSink{name: "alerts"}}
	all := &fakeSink{name: "all"}
	m := newRecMetrics()
	capt := newFakeCaptioner()
	p := New(Config{MaxBatch: 1, ExitWhenSourcesDone: true, Derive: derive}, capt, []sink.Sink{all, alerts}, zerolog.Nop(), m)
	var emitted atomic.Int64
	fs := &fakeSource{idx: 0, n: 8, emitted: &emitted}
	if err := p.AddSource(SourceSpec{ID: "src0"}, func(context.Context) (ingest.Source, error) { return fs, nil }); err != nil {
		t.Fatal(err)
	}
	if err := p.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := alerts.records(); len(got) != 1 || got[0].Kind != sink.KindAlert {
		t.Errorf("the alerts sink got %d records (%v), want the one alert", len(got), got)
	}
	if n := len(all.records()); n != 9 {
		t.Errorf("the other sink got %d records, want 8 captions and 1 alert", n)
	}
	if v := m.get("SinkWritten", "alerts"); v != 1 {
		t.Errorf("lookout_sink_written_total{sink=alerts} = %g, want 1", v)
	}
}
