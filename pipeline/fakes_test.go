package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
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
	m        *Metrics
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
	m := NewMetrics()
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

func value(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("metric %v has no value", c.Desc())
	return 0
}
