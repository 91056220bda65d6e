// Package now keeps one view of "now" per source: its latest delivered
// caption record (with a small JPEG of its frame while someone looks), its
// state and last error from the pipeline, its sampled rate and its
// end-to-end latency. The pipeline's hooks feed it (OnCaptioned, then
// OnDelivered; the gate's count); the status page and /sources read it.
//
// Thumbnails cost a resize and a JPEG encode per caption, so they are made
// for every caption only while a watcher is registered (an open status
// page); otherwise one per source per IdleThumbEvery, so that a page that
// opens shows pictures at once. Never more than one per caption.
package now

import (
	"image"
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"lookout/pipeline"
	"lookout/sink"
)

// ThumbWidth is the width of thumbnails in pixels; the height keeps the
// frame's aspect ratio.
const ThumbWidth = 320

// rateWindow is the span over which the sampled rate is measured.
const rateWindow = 10 * time.Second

// IdleThumbEvery is how often a source's thumbnail is refreshed while
// nobody watches.
const IdleThumbEvery = 30 * time.Second

// maxPending bounds the captioned-but-not-delivered records kept per source
// (a few batches in flight; more means delivery is stuck, and the oldest go).
const maxPending = 32

// Source is what the view knows about one source now.
type Source struct {
	ID     string            `json:"id"`
	Live   bool              `json:"live"`
	Labels map[string]string `json:"labels,omitempty"`
	// State is the pipeline's (opening, running, reconnecting, backoff,
	// done, failed, stopped).
	State string `json:"state"`
	// Gated counts frames the gate skipped since the last caption: the
	// scene has not changed.
	Gated int64 `json:"gated"`
	// DownSince is when the current outage began; zero while up.
	DownSince time.Time `json:"down_since,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// Record is the latest caption record every sink accepted; nil before
	// the first.
	Record *sink.Record `json:"record,omitempty"`
	// FPS is the rate of delivered captions over the last 10 s.
	FPS float64 `json:"fps"`
	// LatencyMillis is capture to delivery of the latest record.
	LatencyMillis float64 `json:"latency_ms"`
	// Delivered counts captions delivered since the source was added.
	Delivered int64 `json:"delivered"`
	// Thumb is the sequence number of the latest thumbnail, 0 if none.
	Thumb uint64 `json:"thumb"`
	// Instance names the process that owns the source.
	Instance string `json:"instance"`
}

type pending struct {
	rec   sink.Record
	jpeg  []byte
	added time.Time
}

type entry struct {
	pending   []pending
	rec       *sink.Record
	jpeg      []byte
	thumb     uint64
	thumbAt   time.Time // when the latest thumbnail was made
	latency   float64
	delivered int64
	gated     int64
	times     []time.Time // delivery times within rateWindow
}

// View is the per-source view of now. Its methods are safe for concurrent
// use; the hooks never block on readers.
type View struct {
	instance string
	states   func() []pipeline.SourceState

	watchers atomic.Int64
	version  atomic.Uint64
	thumbSeq atomic.Uint64

	mu      sync.Mutex
	entries map[string]*entry
	changed chan struct{} // closed and replaced on every change
}

// New returns a view whose states come from states (Pipeline.Sources),
// naming instance as the owner of every source.
func New(instance string, states func() []pipeline.SourceState) *View {
	return &View{instance: instance, states: states, entries: map[string]*entry{}, changed: make(chan struct{})}
}

// SetStates sets where states come from, for a view made before its
// pipeline.
func (v *View) SetStates(states func() []pipeline.SourceState) {
	v.mu.Lock()
	v.states = states
	v.mu.Unlock()
}

func (v *View) entry(id string) *entry {
	e := v.entries[id]
	if e == nil {
		e = &entry{}
		v.entries[id] = e
	}
	return e
}

// notify wakes the watchers; call with v.mu held.
func (v *View) notify() {
	v.version.Add(1)
	close(v.changed)
	v.changed = make(chan struct{})
}

// Captioned is the pipeline's OnCaptioned hook: it keeps the record, and a
// thumbnail of img (always while anyone watches, else at most one per
// IdleThumbEvery), until the record is delivered.
func (v *View) Captioned(rec sink.Record, img gocv.Mat) {
	now := time.Now()
	v.mu.Lock()
	e := v.entry(rec.SourceID)
	want := v.watchers.Load() > 0 || now.Sub(e.thumbAt) >= IdleThumbEvery
	if want {
		e.thumbAt = now // claimed: a concurrent caption of the source skips
	}
	v.mu.Unlock()
	var jpeg []byte
	if want && !img.Empty() {
		jpeg = Thumbnail(img) // outside the lock: about 2 ms for 720p (BenchmarkThumbnail)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	e = v.entry(rec.SourceID)
	if len(e.pending) >= maxPending {
		e.pending = e.pending[1:]
	}
	e.pending = append(e.pending, pending{rec: rec, jpeg: jpeg, added: time.Now()})
}

// Thumbnail encodes img, resized to ThumbWidth wide, as a JPEG; nil on
// failure (a missing thumbnail is not worth an error).
func Thumbnail(img gocv.Mat) []byte {
	w, h := img.Cols(), img.Rows()
	if w <= 0 || h <= 0 {
		return nil
	}
	small := gocv.NewMat()
	defer small.Close()
	src := img
	if w > ThumbWidth {
		gocv.Resize(img, &small, image.Pt(ThumbWidth, max(1, h*ThumbWidth/w)), 0, 0, gocv.InterpolationArea)
		src = small
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, src, []int{gocv.IMWriteJpegQuality, 75})
	if err != nil {
		return nil
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...)
}

// Delivered is the pipeline's OnDelivered hook: the record of sourceID's
// frame at ptsMillis is now in every sink, so it becomes the latest.
func (v *View) Delivered(sourceID string, ptsMillis int64) {
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.entry(sourceID)
	for i, p := range e.pending {
		if p.rec.PTSMillis != ptsMillis {
			continue
		}
		rec := p.rec
		e.rec = &rec
		if p.jpeg != nil {
			e.jpeg = p.jpeg
			e.thumb = v.thumbSeq.Add(1)
		}
		if !rec.CaptureTime.IsZero() {
			e.latency = float64(now.Sub(rec.CaptureTime).Microseconds()) / 1000
		}
		e.pending = append(e.pending[:0], e.pending[i+1:]...)
		break
	}
	e.delivered++
	e.gated = 0
	e.times = append(e.times, now)
	for len(e.times) > 0 && now.Sub(e.times[0]) > rateWindow {
		e.times = e.times[1:]
	}
	v.notify()
}

// Gated counts a frame of id the gate skipped (ingest.GateReporter).
func (v *View) Gated(id string) {
	v.mu.Lock()
	v.entry(id).gated++
	v.notify()
	v.mu.Unlock()
}

// Watch registers a watcher (thumbnails are made while there is one) and
// returns a function that unregisters it.
func (v *View) Watch() (stop func()) {
	v.watchers.Add(1)
	var once sync.Once
	return func() { once.Do(func() { v.watchers.Add(-1) }) }
}

// Watchers is the number of registered watchers.
func (v *View) Watchers() int64 { return v.watchers.Load() }

// Changed returns a channel closed at the next change, and the version it
// was taken at.
func (v *View) Changed() (<-chan struct{}, uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.changed, v.version.Load()
}

// Sources returns every source the pipeline runs, sorted by id. Entries of
// sources the pipeline no longer has are forgotten here.
func (v *View) Sources() []Source {
	v.mu.Lock()
	statesOf := v.states
	v.mu.Unlock()
	var states []pipeline.SourceState
	if statesOf != nil {
		states = statesOf()
	}
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]Source, 0, len(states))
	keep := make(map[string]bool, len(states))
	for _, st := range states {
		keep[st.ID] = true
		s := Source{ID: st.ID, Live: st.Live, Labels: maps.Clone(st.Labels), State: st.State,
			DownSince: st.DownSince, LastError: st.LastError, Instance: v.instance}
		if e := v.entries[st.ID]; e != nil {
			if e.rec != nil {
				r := *e.rec
				s.Record = &r
			}
			s.Gated, s.Thumb, s.LatencyMillis, s.Delivered = e.gated, e.thumb, e.latency, e.delivered
			s.FPS = rate(e.times, now)
		}
		out = append(out, s)
	}
	for id := range v.entries {
		if !keep[id] && statesOf != nil {
			delete(v.entries, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Thumb returns the latest thumbnail of id and its sequence number.
func (v *View) Thumb(id string) ([]byte, uint64, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.entries[id]
	if e == nil || e.jpeg == nil {
		return nil, 0, false
	}
	return e.jpeg, e.thumb, true
}

// rate is the delivery rate over the deliveries within rateWindow of now:
// intervals between them over their span, so that a young source is not
// underestimated.
func rate(times []time.Time, now time.Time) float64 {
	var in []time.Time
	for _, t := range times {
		if now.Sub(t) <= rateWindow {
			in = append(in, t)
		}
	}
	if len(in) < 2 {
		return float64(len(in)) / rateWindow.Seconds()
	}
	return float64(len(in)-1) / in[len(in)-1].Sub(in[0]).Seconds()
}
