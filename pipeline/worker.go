package pipeline

import (
	"fmt"
	"time"

	"gocv.io/x/gocv"

	"lookout/inference"
	"lookout/sink"
)

// doneBatch is a captioned batch on its way to the sinks.
type doneBatch struct {
	seq  uint64
	recs []sink.Record
	// emits are the sources' publishing policies, in recs order.
	emits []Emit
	// acks are the caption records' (source, pts) in recs order, and
	// captured their capture times, for OnDelivered and the latency metric.
	acks []ack
}

type ack struct {
	source   string
	pts      int64
	captured time.Time
}

// worker captions batches until work is closed or Kill.
func (p *Pipeline) worker(work <-chan *batch, out chan<- *doneBatch) {
	hard := p.hardCtx.Done()
	for {
		var b *batch
		var ok bool
		select {
		case b, ok = <-work:
			if !ok {
				return
			}
		case <-hard:
			return
		}
		d := p.caption(b)
		select {
		case out <- d:
		case <-hard:
			p.undelivered.Add(int64(len(d.recs)))
			return
		}
	}
}

// caption runs b through the captioner and builds its records; it always
// releases b's frames. When the batch call fails, each frame is retried
// alone, so that one bad image does not cost the others their captions;
// frames that still fail are counted and logged, and give no record.
func (p *Pipeline) caption(b *batch) *doneBatch {
	defer func() {
		for i := range b.items {
			p.release(&b.items[i].frame)
		}
	}()
	start := time.Now()
	images := make([]gocv.Mat, len(b.items))
	for i, it := range b.items {
		images[i] = it.frame.Image
	}
	results := make([]*inference.Result, len(b.items))
	tasks := make([]string, len(b.items))
	for i, it := range b.items {
		tasks[i] = it.src.spec.Task
	}
	res, err := p.captionTasks(p.hardCtx, images, tasks)
	if err == nil && len(res) != len(images) {
		err = fmt.Errorf("captioner %s returned %d results for %d images", p.model, len(res), len(images))
	}
	if err == nil {
		for i := range res {
			results[i] = &res[i]
		}
		p.captionFailed.Store(false)
	} else if p.hardCtx.Err() == nil {
		if ok, held := p.limit.allow("caption"); ok {
			p.log.Warn().Err(err).Int("batch", len(images)).Int("held_back", held).
				Msg("caption batch failed; retrying its frames one by one")
		}
		ok := 0
		for i := range images {
			r, err := p.captionTasks(p.hardCtx, images[i:i+1], tasks[i:i+1])
			if err == nil && len(r) == 1 {
				results[i] = &r[0]
				ok++
				continue
			}
			if p.hardCtx.Err() != nil {
				break
			}
			if err == nil {
				err = fmt.Errorf("captioner %s returned %d results for 1 image", p.model, len(r))
			}
			it := b.items[i]
			p.m.CaptionFailures.WithLabelValues(it.src.spec.ID).Inc()
			p.captionFailures.Add(1)
			if allow, held := p.limit.allow("caption/" + it.src.spec.ID); allow {
				it.src.log.Error().Err(err).Int64("seq", it.frame.Seq).Int64("pts_ms", it.frame.PTS.Milliseconds()).
					Int("held_back", held).Msg("captioning a frame failed: no record for it")
			}
		}
		p.captionFailed.Store(ok == 0)
	}

	d := &doneBatch{seq: b.seq}
	queueStage := p.m.StageLatency.WithLabelValues("queue")
	for i, it := range b.items {
		if it.frame.Gap {
			// The outage is news even when the frame's caption failed.
			d.recs = append(d.recs, p.gapRecord(it))
			d.emits = append(d.emits, it.src.spec.Emit)
		}
		r := results[i]
		if r == nil {
			if p.hardCtx.Err() != nil {
				p.uncaptioned.Add(1)
			}
			continue
		}
		wait := start.Sub(it.enqueued)
		queueStage.Observe(wait.Seconds())
		rec := p.captionRecord(it, r, wait)
		if p.cfg.OnCaptioned != nil {
			p.cfg.OnCaptioned(rec, it.frame.Image)
		}
		d.recs = append(d.recs, rec)
		d.emits = append(d.emits, it.src.spec.Emit)
		d.acks = append(d.acks, ack{source: it.src.spec.ID, pts: it.frame.PTS.Milliseconds(), captured: captured(it)})
	}
	return d
}

// captured is the frame's capture time, or its enqueue time when the source
// left it unset.
func captured(it queued) time.Time {
	if it.frame.CaptureTime.IsZero() {
		return it.enqueued
	}
	return it.frame.CaptureTime
}

// baseRecord holds the fields every record of the frame shares.
func (p *Pipeline) baseRecord(it queued) sink.Record {
	f := it.frame
	return sink.Record{
		SchemaVersion: sink.SchemaVersion,
		SourceID:      it.src.spec.ID,
		Labels:        it.src.spec.Labels,
		Seq:           f.Seq,
		PTSMillis:     f.PTS.Milliseconds(),
		Run:           it.run,
		CaptureTime:   f.CaptureTime,
		Model:         p.model,
		ModelDigest:   p.digest,
	}
}

// gapRecord marks the frame as the first after an outage; it precedes the
// frame's caption record.
func (p *Pipeline) gapRecord(it queued) sink.Record {
	g := p.baseRecord(it)
	g.Kind = sink.KindGap
	g.ID = sink.RecordID(g.SourceID, g.Run, g.PTSMillis, p.digest, sink.KindGap)
	g.GapMillis = it.frame.GapDuration.Milliseconds()
	return g
}

// captionRecord is the frame's caption. Latency.Total is set at delivery.
func (p *Pipeline) captionRecord(it queued, r *inference.Result, wait time.Duration) sink.Record {
	c := p.baseRecord(it)
	c.Kind = sink.KindCaption
	c.ID = sink.RecordID(c.SourceID, c.Run, c.PTSMillis, p.digest, sink.KindCaption)
	c.Caption = r.Caption
	c.Confidence = sink.ConfidenceFromMeanLogProb(r.MeanLogProb)
	for _, o := range r.Objects {
		c.Objects = append(c.Objects, sink.Object{Label: o.Label, Box: o.Box})
	}
	c.OCR = r.OCR
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
