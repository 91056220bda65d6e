package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"

	"lookout/inference"
	"lookout/ingest"
	"lookout/internal/retry"
	"lookout/sink"
)

// The fakes encode the frame's identity in its pixels (blue = source index,
// green and red = sequence number), and the fake captioner reads it back
// from the image's mean, so a caption proves which frame it came from.

const framePeriod = 40 * time.Millisecond // PTS step of fake sources

func frameMat(src int, seq int64) gocv.Mat {
	return gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(src), float64(seq%256), float64(seq/256), 0), 2, 2, gocv.MatTypeCV8UC3)
}

func captionOf(src int, seq int64) string { return fmt.Sprintf("%d/%d", src, seq) }

// fakeSource emits frames of source index idx.
type fakeSource struct {
	idx        int
	live       bool
	n          int64         // frames before ErrEndOfInput; < 0: endless
	interval   time.Duration // pause before each frame
	failAfter  int64         // > 0: after this many frames Next returns failErr
	failErr    error
	blockAfter int64 // > 0: after this many frames Next blocks until ctx ends
	gapAt      int64 // frame seq that carries Gap (0: none)
	gapDur     time.Duration
	emitted    *atomic.Int64 // shared count of Mats created
	closed     atomic.Int32
	seq        int64
}

func (s *fakeSource) Next(ctx context.Context) (ingest.Frame, error) {
	if s.n >= 0 && s.seq >= s.n {
		return ingest.Frame{}, ingest.ErrEndOfInput
	}
	if s.failAfter > 0 && s.seq >= s.failAfter {
		return ingest.Frame{}, s.failErr
	}
	if s.blockAfter > 0 && s.seq >= s.blockAfter {
		<-ctx.Done()
		return ingest.Frame{}, ctx.Err()
	}
	if s.interval > 0 && retry.Sleep(ctx, s.interval) != nil {
		return ingest.Frame{}, ctx.Err()
	}
	if ctx.Err() != nil {
		return ingest.Frame{}, ctx.Err()
	}
	f := ingest.Frame{
		SourceID:    fmt.Sprint("src", s.idx),
		Seq:         s.seq,
		PTS:         time.Duration(s.seq) * framePeriod,
		CaptureTime: time.Now(),
		Image:       frameMat(s.idx, s.seq),
	}
	if s.gapAt > 0 && s.seq == s.gapAt {
		f.Gap, f.GapDuration = true, s.gapDur
	}
	s.emitted.Add(1)
	s.seq++
	return f, nil
}

func (s *fakeSource) Live() bool { return s.live }

func (s *fakeSource) Close() error {
	s.closed.Add(1)
	return nil
}

// fakeCaptioner captions by the image mean and records each call.
type fakeCaptioner struct {
	delay func(call int) time.Duration
	// fail, when set, fails a call whose captions it rejects.
	fail func(captions []string) error
	// block makes every call wait for ctx's end.
	block bool

	mu       sync.Mutex
	batches  [][]string
	calls    []time.Time
	inflight atomic.Int32
	maxIn    atomic.Int32
	started  chan struct{} // closed at the first call
	once     sync.Once
}

func newFakeCaptioner() *fakeCaptioner {
	return &fakeCaptioner{started: make(chan struct{})}
}

func (c *fakeCaptioner) Caption(ctx context.Context, images []gocv.Mat) ([]inference.Result, error) {
	n := c.inflight.Add(1)
	defer c.inflight.Add(-1)
	for {
		m := c.maxIn.Load()
		if n <= m || c.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	caps := make([]string, len(images))
	for i, img := range images {
		if img.Empty() {
			return nil, errors.New("fake captioner: empty image")
		}
		mean := img.Mean()
		seq := int64(math.Round(mean.Val2)) + 256*int64(math.Round(mean.Val3))
		caps[i] = captionOf(int(math.Round(mean.Val1)), seq)
	}
	c.mu.Lock()
	call := len(c.calls)
	c.calls = append(c.calls, time.Now())
	c.batches = append(c.batches, caps)
	c.mu.Unlock()
	c.once.Do(func() { close(c.started) })
	if c.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if c.delay != nil && retry.Sleep(ctx, c.delay(call)) != nil {
		return nil, ctx.Err()
	}
	if c.fail != nil {
		if err := c.fail(caps); err != nil {
			return nil, err
		}
	}
	out := make([]inference.Result, len(images))
	for i := range out {
		out[i] = inference.Result{
			Caption:     caps[i],
			MeanLogProb: -0.5,
			Attributes:  map[string]inference.Attribute{"scene": {Value: "street", Prob: 0.9}},
			Timings:     inference.Timings{Preprocess: time.Millisecond, Encode: 2 * time.Millisecond, Decode: 3 * time.Millisecond},
		}
	}
	return out, nil
}

func (c *fakeCaptioner) Name() string   { return "fake-model" }
func (c *fakeCaptioner) Digest() string { return "sha256:fake" }
func (c *fakeCaptioner) Close() error   { return nil }

func (c *fakeCaptioner) batchList() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]string(nil), c.batches...)
}

// fakeSink keeps what it was given; it can fail or hang on demand.
type fakeSink struct {
	name string
	// failWrite, when set, is asked before each write whether it fails;
	// "hang" waits for the context instead.
	failWrite func(attempt int) string

	mu       sync.Mutex
	recs     []sink.Record
	events   []string
	attempts int
	flushes  int
}

func (s *fakeSink) Name() string { return s.name }

func (s *fakeSink) Write(ctx context.Context, recs []sink.Record) error {
	s.mu.Lock()
	s.attempts++
	attempt := s.attempts
	s.mu.Unlock()
	if s.failWrite != nil {
		switch s.failWrite(attempt) {
		case "fail":
			return errors.New("fake sink: broker unavailable")
		case "hang":
			<-ctx.Done()
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, recs...)
	s.events = append(s.events, "write")
	return nil
}

func (s *fakeSink) Flush(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushes++
	s.events = append(s.events, "flush")
	return nil
}

func (s *fakeSink) Close() error { return nil }

func (s *fakeSink) records() []sink.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sink.Record(nil), s.recs...)
}

func (s *fakeSink) count(source string) int {
	n := 0
	for _, r := range s.records() {
		if r.SourceID == source && r.Kind == sink.KindCaption {
			n++
		}
	}
	return n
}

// harness is a pipeline with fakes and a count of released frames.
type harness struct {
	p        *Pipeline
	m        *recMetrics
	capt     *fakeCaptioner
	sinks    []*fakeSink
	emitted  atomic.Int64
	released atomic.Int64
}

func newHarness(t *testing.T, cfg Config, capt *fakeCaptioner, sinks ...*fakeSink) *harness {
	t.Helper()
	if capt == nil {
		capt = newFakeCaptioner()
	}
	if len(sinks) == 0 {
		sinks = []*fakeSink{{name: "mem"}}
	}
	m := newRecMetrics()
	ss := make([]sink.Sink, len(sinks))
	for i, s := range sinks {
		ss[i] = s
	}
	h := &harness{m: m, capt: capt, sinks: sinks}
	h.p = New(cfg, capt, ss, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), m)
	h.p.release = func(f *ingest.Frame) {
		if f.Image.Ptr() != nil {
			h.released.Add(1)
		}
		_ = f.Close()
	}
	return h
}

// add adds a fake source named src<idx> and returns it.
func (h *harness) add(t *testing.T, fs *fakeSource, labels map[string]string) *fakeSource {
	t.Helper()
	fs.emitted = &h.emitted
	err := h.p.AddSource(SourceSpec{ID: fmt.Sprint("src", fs.idx), Live: fs.live, Labels: labels},
		func(context.Context) (ingest.Source, error) { return fs, nil })
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// run starts Run and returns a function that waits for its result.
func (h *harness) run(ctx context.Context) func(time.Duration) (error, bool) {
	done := make(chan error, 1)
	go func() { done <- h.p.Run(ctx) }()
	return func(d time.Duration) (error, bool) {
		select {
		case err := <-done:
			return err, true
		case <-time.After(d):
			return nil, false
		}
	}
}

// checkReleased asserts that every Mat a source created was closed once.
func (h *harness) checkReleased(t *testing.T) {
	t.Helper()
	if e, r := h.emitted.Load(), h.released.Load(); e != r {
		t.Errorf("frames created %d, released %d: every Mat must be closed exactly once", e, r)
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recMetrics records the pipeline's metric events by the names of the
// Prometheus collectors that the service feeds from them
// (internal/service/metrics.go): counters add up, QueueDepth and
// WorkersBusy hold the last value, BatchSize, StageLatency,
// CaptionLatency and SinkWriteSeconds count observations.
type recMetrics struct {
	mu sync.Mutex
	v  map[string]float64
}

var _ Metrics = (*recMetrics)(nil)

func newRecMetrics() *recMetrics { return &recMetrics{v: map[string]float64{}} }

func metricKey(name string, labels []string) string {
	return strings.Join(append([]string{name}, labels...), "|")
}

func (r *recMetrics) add(v float64, name string, labels ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.v[metricKey(name, labels)] += v
}

func (r *recMetrics) set(v float64, name string, labels ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.v[metricKey(name, labels)] = v
}

// get is the value of name{labels}, 0 when never recorded.
func (r *recMetrics) get(name string, labels ...string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.v[metricKey(name, labels)]
}

func (r *recMetrics) FrameReceived(src string) { r.add(1, "FramesReceived", src) }
func (r *recMetrics) FramesDropped(src, reason string, n int) {
	r.add(float64(n), "FramesDropped", src, reason)
}
func (r *recMetrics) SourceRestarted(src string)       { r.add(1, "SourceRestarts", src) }
func (r *recMetrics) QueueDepth(src string, depth int) { r.set(float64(depth), "QueueDepth", src) }
func (r *recMetrics) SourceRemoved(src string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.v, metricKey("QueueDepth", []string{src}))
}
func (r *recMetrics) CaptionFailed(src string)                   { r.add(1, "CaptionFailures", src) }
func (r *recMetrics) BatchFormed(int)                            { r.add(1, "BatchSize") }
func (r *recMetrics) StageLatency(stage string, _ time.Duration) { r.add(1, "StageLatency", stage) }
func (r *recMetrics) CaptionLatency(time.Duration)               { r.add(1, "CaptionLatency") }
func (r *recMetrics) WorkersBusy(delta int)                      { r.add(float64(delta), "WorkersBusy") }
func (r *recMetrics) SinkWrite(name string, n int, _ time.Duration, err error) {
	r.add(1, "SinkWriteSeconds", name)
	if err != nil {
		r.add(float64(n), "SinkFailed", name)
		return
	}
	r.add(float64(n), "SinkWritten", name)
}
func (r *recMetrics) RecordsEmitted(kind string, n int) { r.add(float64(n), "Records", kind) }
func (r *recMetrics) RecordSuppressed(src string)       { r.add(1, "RecordsSuppressed", src) }
