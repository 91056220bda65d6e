package pipeline

import (
	"time"

	"lookout/inference"
	"lookout/sink"
)

// recordMaker builds the records of captioned frames for one model.
type recordMaker struct {
	model, digest string
}

// base holds the fields every record of the frame shares.
func (m recordMaker) base(it queued) sink.Record {
	f := it.frame
	return sink.Record{
		SchemaVersion: sink.SchemaVersion,
		SourceID:      it.src.spec.ID,
		Labels:        it.src.spec.Labels,
		Seq:           f.Seq,
		PTSMillis:     f.PTS.Milliseconds(),
		Run:           it.run,
		CaptureTime:   f.CaptureTime,
		Model:         m.model,
		ModelDigest:   m.digest,
	}
}

// gap marks the frame as the first after an outage; it precedes the
// frame's caption record.
func (m recordMaker) gap(it queued) sink.Record {
	g := m.base(it)
	g.Kind = sink.KindGap
	g.ID = sink.RecordID(g.SourceID, g.Run, g.PTSMillis, m.digest, sink.KindGap)
	g.GapMillis = it.frame.GapDuration.Milliseconds()
	return g
}

// caption is the frame's caption. Latency.Total is set at delivery.
func (m recordMaker) caption(it queued, r *inference.Result, wait time.Duration) sink.Record {
	c := m.base(it)
	c.Kind = sink.KindCaption
	c.ID = sink.RecordID(c.SourceID, c.Run, c.PTSMillis, m.digest, sink.KindCaption)
	c.Caption = r.Caption
	c.Confidence = sink.ConfidenceFromMeanLogProb(r.MeanLogProb)
	for _, o := range r.Objects {
		c.Objects = append(c.Objects, sink.Object{Label: o.Label, Box: o.Box})
	}
	c.OCR = r.OCR
	if r.Domain != nil {
		in, dist := r.Domain.InDomain, r.Domain.Distance
		c.InDomain, c.DomainDistance = &in, &dist
	}
	if len(r.Attributes) > 0 {
		c.Attributes = make(map[string]sink.Attr, len(r.Attributes))
		for k, a := range r.Attributes {
			c.Attributes[k] = sink.Attr{Value: a.Value, Prob: a.Prob}
		}
	}
	c.LatencyMillis = sink.Latency{
		Queue:      elapsedMillis(wait),
		Preprocess: elapsedMillis(r.Timings.Preprocess),
		Encode:     elapsedMillis(r.Timings.Encode),
		Decode:     elapsedMillis(r.Timings.Decode),
	}
	return c
}

// elapsedMillis converts a duration to fractional milliseconds.
func elapsedMillis(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}
