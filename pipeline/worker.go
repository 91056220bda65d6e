package pipeline

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"

	"lookout/inference"
	"lookout/ingest"
	"lookout/internal/logthrottle"
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

// workerPool is the stage between the batcher and the deliverer: n
// workers, each taking a batch, captioning it with one Caption call and
// handing its records on, so up to n Caption calls run at once. It always
// releases the batch's frames. Errors: a failed batch call is retried
// frame by frame, so that one bad image does not cost the others their
// captions; a frame that still fails is counted
// (lookout_caption_failures_total), logged once per LogInterval, and gives
// no record (its gap record, if any, is still made). When a call fails for
// every frame of its batch, failedOutright is set until a call succeeds
// (Ready reports it).
type workerPool struct {
	n       int
	capt    inference.Captioner // metered
	records recordMaker
	// onCaptioned is Config.OnCaptioned.
	onCaptioned func(rec sink.Record, img gocv.Mat)
	release     func(*ingest.Frame) // read at each call, see dropper
	log         zerolog.Logger
	limit       *logthrottle.Throttle
	m           Metrics
	lost        *losses

	up             atomic.Int32 // workers running
	failedOutright atomic.Bool  // the last Caption call failed for every frame
	failed         atomic.Int64 // frames that could not be captioned
}

// run starts the workers and returns once all ended (in is closed and
// drained, or hard ended), closing out. A worker cut off by hard counts
// the records it held as undelivered.
func (w *workerPool) run(hard context.Context, in <-chan *batch, out chan<- *doneBatch) {
	var wg sync.WaitGroup
	w.up.Add(int32(w.n))
	for range w.n {
		wg.Go(func() {
			defer w.up.Add(-1)
			// A worker spends most of its time in the captioner's cgo calls:
			// one thread throughout keeps its caches warm and spares the
			// scheduler a thread handoff per call (docs/CAPACITY.md).
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			w.work(hard, in, out)
		})
	}
	wg.Wait()
	close(out)
}

func (w *workerPool) work(hard context.Context, in <-chan *batch, out chan<- *doneBatch) {
	for {
		var b *batch
		select {
		case next, ok := <-in:
			if !ok {
				return
			}
			b = next
		case <-hard.Done():
			return
		}
		d := w.caption(hard, b)
		select {
		case out <- d:
		case <-hard.Done():
			w.lost.undelivered.Add(int64(len(d.recs)))
			return
		}
	}
}

// caption runs b through the captioner and builds its records; it always
// releases b's frames.
func (w *workerPool) caption(hard context.Context, b *batch) *doneBatch {
	defer func() {
		for i := range b.items {
			w.release(&b.items[i].frame)
		}
	}()
	start := time.Now()
	results := w.results(hard, b)
	d := &doneBatch{seq: b.seq}
	for i, it := range b.items {
		if it.frame.Gap {
			// The outage is news even when the frame's caption failed.
			d.recs = append(d.recs, w.records.gap(it))
			d.emits = append(d.emits, it.src.spec.Emit)
		}
		r := results[i]
		if r == nil {
			if hard.Err() != nil {
				w.lost.uncaptioned.Add(1)
			}
			continue
		}
		wait := start.Sub(it.enqueued)
		w.m.StageLatency("queue", wait)
		rec := w.records.caption(it, r, wait)
		if w.onCaptioned != nil {
			w.onCaptioned(rec, it.frame.Image)
		}
		d.recs = append(d.recs, rec)
		d.emits = append(d.emits, it.src.spec.Emit)
		d.acks = append(d.acks, ack{source: it.src.spec.ID, pts: it.frame.PTS.Milliseconds(), captured: captured(it)})
	}
	return d
}

// results captions b's images, one result per frame, nil where captioning
// failed: first as one batch, then, if that call fails, frame by frame.
func (w *workerPool) results(hard context.Context, b *batch) []*inference.Result {
	images := make([]gocv.Mat, len(b.items))
	tasks := make([]string, len(b.items))
	for i, it := range b.items {
		images[i], tasks[i] = it.frame.Image, it.src.spec.Task
	}
	results := make([]*inference.Result, len(b.items))
	res, err := w.call(hard, images, tasks)
	if err == nil {
		for i := range res {
			results[i] = &res[i]
		}
		w.failedOutright.Store(false)
		return results
	}
	if hard.Err() != nil {
		return results
	}
	if ok, held := w.limit.Allow("caption"); ok {
		w.log.Warn().Err(err).Int("batch", len(images)).Int("held_back", held).
			Msg("caption batch failed; retrying its frames one by one")
	}
	ok := 0
	for i := range images {
		r, err := w.call(hard, images[i:i+1], tasks[i:i+1])
		if err == nil {
			results[i] = &r[0]
			ok++
			continue
		}
		if hard.Err() != nil {
			break
		}
		w.frameFailed(b.items[i], err)
	}
	w.failedOutright.Store(ok == 0)
	return results
}

// call captions images, each with its source's task (one captioner call
// per task, see captionTasks), and must give one result per image.
func (w *workerPool) call(hard context.Context, images []gocv.Mat, tasks []string) ([]inference.Result, error) {
	res, err := w.captionTasks(hard, images, tasks)
	if err == nil && len(res) != len(images) {
		err = fmt.Errorf("captioner %s returned %d results for %d images", w.records.model, len(res), len(images))
	}
	return res, err
}

// frameFailed counts and logs a frame that has no caption.
func (w *workerPool) frameFailed(it queued, err error) {
	w.m.CaptionFailed(it.src.spec.ID)
	w.failed.Add(1)
	if allow, held := w.limit.Allow("caption/" + it.src.spec.ID); allow {
		it.src.log.Error().Err(err).Int64("seq", it.frame.Seq).Int64("pts_ms", it.frame.PTS.Milliseconds()).
			Int("held_back", held).Msg("captioning a frame failed: no record for it")
	}
}

// captured is the frame's capture time, or its enqueue time when the source
// left it unset.
func captured(it queued) time.Time {
	if it.frame.CaptureTime.IsZero() {
		return it.enqueued
	}
	return it.frame.CaptureTime
}
