package pipeline

import (
	"lookout/sink"
)

// emitter applies the sources' Emit policies to records in per-source order
// (it runs in the deliverer). It remembers, per source, the last published
// caption record.
type emitter struct {
	last map[string]*emitState
}

type emitState struct {
	run     string
	caption string
	since   int64 // pts of the record that started the current caption
	emitted int64 // pts of the last record published (caption or heartbeat)
}

func newEmitter() *emitter { return &emitter{last: map[string]*emitState{}} }

// filter returns the record to publish for r, if any. With Changes a
// caption record is published when its caption differs from the last
// published one (carrying what it replaces), a heartbeat when Heartbeat of
// stream time passed without a publication, else nothing. Attributes ride
// along but do not decide: the demo model's attribute heads disagree with
// its own caption on a few frames of busy scenes (docs/EVENTS.md), and a
// caption already names every slot its attributes hold. A gap record is always
// published and makes the next caption record publish too, as does a new
// run of a live source. Records of sources without Changes pass untouched.
func (e *emitter) filter(r sink.Record, policy Emit) (sink.Record, bool) {
	if !policy.Changes {
		return r, true
	}
	st := e.last[r.SourceID]
	if r.Kind != sink.KindCaption {
		if r.Kind == sink.KindGap {
			delete(e.last, r.SourceID)
		}
		return r, true
	}
	if st == nil || st.run != r.Run || r.PTSMillis < st.emitted {
		e.last[r.SourceID] = &emitState{run: r.Run, caption: r.Caption, since: r.PTSMillis, emitted: r.PTSMillis}
		return r, true
	}
	if r.Caption != st.caption {
		r.PrevCaption = st.caption
		r.HeldMillis = r.PTSMillis - st.since
		*st = emitState{run: r.Run, caption: r.Caption, since: r.PTSMillis, emitted: r.PTSMillis}
		return r, true
	}
	if policy.Heartbeat > 0 && r.PTSMillis-st.emitted >= policy.Heartbeat.Milliseconds() {
		st.emitted = r.PTSMillis
		r.Kind = sink.KindHeartbeat
		r.ID = sink.RecordID(r.SourceID, r.Run, r.PTSMillis, r.ModelDigest, sink.KindHeartbeat)
		r.HeldMillis = r.PTSMillis - st.since
		return r, true
	}
	return r, false
}
