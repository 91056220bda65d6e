package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"lookout/ingest"
	"lookout/sink"
)

func TestBatcherFormsCrossSourceBatchesUpToMax(t *testing.T) {
	capt := newFakeCaptioner()
	capt.delay = func(int) time.Duration { return 10 * time.Millisecond }
	h := newHarness(t, Config{MaxBatch: 8, MaxWait: 200 * time.Millisecond, QueueSize: 8, ExitWhenSourcesDone: true}, capt)
	for i := range 3 {
		h.add(t, &fakeSource{idx: i, n: 24}, nil)
	}
	wait := h.run(context.Background())
	err, ok := wait(10 * time.Second)
	if !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	full, mixed, frames := 0, 0, 0
	for _, b := range capt.batchList() {
		if len(b) > 8 {
			t.Errorf("batch of %d frames exceeds MaxBatch 8: %v", len(b), b)
		}
		frames += len(b)
		if len(b) == 8 {
			full++
		}
		srcs := map[string]bool{}
		for _, c := range b {
			srcs[strings.Split(c, "/")[0]] = true
		}
		if len(srcs) > 1 {
			mixed++
		}
	}
	if frames != 72 || full == 0 || mixed == 0 {
		t.Errorf("captioned %d frames (want 72) in %d full and %d cross-source batches (want both > 0)", frames, full, mixed)
	}
	if got := len(h.sinks[0].records()); got != 72 {
		t.Errorf("sink got %d records, want 72", got)
	}
	if got := h.m.get("BatchSize"); got != float64(len(capt.batchList())) {
		t.Errorf("lookout_batch_size observed %v batches, captioner saw %d", got, len(capt.batchList()))
	}
	h.checkReleased(t)
}

func TestBatcherFlushesPartialBatchAfterMaxWait(t *testing.T) {
	const maxWait = 150 * time.Millisecond
	capt := newFakeCaptioner()
	h := newHarness(t, Config{MaxBatch: 8, MaxWait: maxWait, QueueSize: 8}, capt)
	h.add(t, &fakeSource{idx: 0, n: -1, blockAfter: 3, live: true}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	wait := h.run(ctx)
	start := time.Now()
	select {
	case <-capt.started:
	case <-time.After(5 * time.Second):
		t.Fatal("no batch reached the captioner within 5s")
	}
	waited := time.Since(start)
	cancel()
	if err, ok := wait(5 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	b := capt.batchList()
	if len(b) != 1 || len(b[0]) != 3 {
		t.Fatalf("batches %v, want one batch of the 3 frames", b)
	}
	if waited < maxWait-10*time.Millisecond || waited > maxWait+time.Second {
		t.Errorf("partial batch was sent after %s, want about MaxWait %s", waited, maxWait)
	}
	h.checkReleased(t)
}

func TestLiveQueueDropsOldestCountsAndClosesMats(t *testing.T) {
	const n = 300
	capt := newFakeCaptioner()
	capt.delay = func(int) time.Duration { return 3 * time.Millisecond }
	h := newHarness(t, Config{MaxBatch: 1, QueueSize: 2, ExitWhenSourcesDone: true}, capt)
	h.add(t, &fakeSource{idx: 0, n: n, live: true}, nil)
	if err, ok := h.run(context.Background())(10 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	recs := h.sinks[0].records()
	dropped := h.m.get("FramesDropped", "src0", "overflow")
	if dropped == 0 {
		t.Fatal("a slow captioner behind a fast live source dropped nothing")
	}
	if int(dropped)+len(recs) != n {
		t.Errorf("records %d + dropped %v != frames %d: frames were lost uncounted", len(recs), dropped, n)
	}
	last := int64(-1)
	for _, r := range recs {
		if r.Seq <= last {
			t.Fatalf("seq %d after %d: order broken", r.Seq, last)
		}
		last = r.Seq
	}
	if last != n-1 {
		t.Errorf("last delivered seq %d, want %d: drop-oldest keeps the newest frames", last, n-1)
	}
	if got := h.m.get("FramesReceived", "src0"); got != n {
		t.Errorf("frames_received %v, want %d", got, n)
	}
	h.checkReleased(t)
}

func TestReplayBlocksAndLosesNothing(t *testing.T) {
	const n = 1000
	capt := newFakeCaptioner()
	capt.delay = func(int) time.Duration { return time.Millisecond }
	h := newHarness(t, Config{QueueSize: 4, MaxWait: 5 * time.Millisecond, ExitWhenSourcesDone: true}, capt)
	h.add(t, &fakeSource{idx: 7, n: n}, nil)
	if err, ok := h.run(context.Background())(15 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	recs := h.sinks[0].records()
	if len(recs) != n {
		t.Fatalf("%d records from a %d-frame replay", len(recs), n)
	}
	for i, r := range recs {
		if r.Seq != int64(i) || r.PTSMillis != (time.Duration(i)*framePeriod).Milliseconds() || r.Caption != captionOf(7, int64(i)) {
			t.Fatalf("record %d: seq %d pts %d caption %q", i, r.Seq, r.PTSMillis, r.Caption)
		}
	}
	if d := h.m.get("FramesDropped", "src7", "overflow"); d != 0 {
		t.Errorf("replay dropped %v frames", d)
	}
	h.checkReleased(t)
}

func TestPerSourceOrderWithThreeWorkers(t *testing.T) {
	const perSource = 150
	capt := newFakeCaptioner()
	// Alternate slow and fast calls so that later batches finish first.
	capt.delay = func(call int) time.Duration { return time.Duration(call%3) * 2 * time.Millisecond }
	var mu sync.Mutex
	acked := map[string][]int64{}
	cfg := Config{Workers: 3, MaxBatch: 4, MaxWait: 2 * time.Millisecond, ExitWhenSourcesDone: true,
		OnDelivered: func(src string, pts int64) {
			mu.Lock()
			acked[src] = append(acked[src], pts)
			mu.Unlock()
		}}
	h := newHarness(t, cfg, capt, &fakeSink{name: "a"}, &fakeSink{name: "b"})
	for i := range 4 {
		h.add(t, &fakeSource{idx: i, n: perSource}, nil)
	}
	if err, ok := h.run(context.Background())(15 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	if capt.maxIn.Load() < 2 {
		t.Errorf("at most %d Caption calls ran together; 3 workers should overlap", capt.maxIn.Load())
	}
	for _, s := range h.sinks {
		next := map[string]int64{}
		for _, r := range s.records() {
			if r.Seq != next[r.SourceID] {
				t.Fatalf("sink %s: source %s seq %d, want %d", s.name, r.SourceID, r.Seq, next[r.SourceID])
			}
			next[r.SourceID]++
		}
		for i := range 4 {
			if got := next[fmt.Sprint("src", i)]; got != perSource {
				t.Errorf("sink %s: src%d delivered %d records, want %d", s.name, i, got, perSource)
			}
		}
	}
	for src, pts := range acked {
		for i, p := range pts {
			if p != (time.Duration(i) * framePeriod).Milliseconds() {
				t.Fatalf("OnDelivered %s #%d pts %d: out of order", src, i, p)
			}
		}
	}
	if len(acked) != 4 {
		t.Errorf("OnDelivered saw %d sources, want 4", len(acked))
	}
	h.checkReleased(t)
}

func TestAddAndRemoveSourceWhileRunning(t *testing.T) {
	h := newHarness(t, Config{MaxWait: 5 * time.Millisecond}, nil)
	a := h.add(t, &fakeSource{idx: 0, n: -1, live: true, interval: 2 * time.Millisecond}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := h.run(ctx)
	s := h.sinks[0]
	waitFor(t, "records of src0", 5*time.Second, func() bool { return s.count("src0") >= 5 })

	b := h.add(t, &fakeSource{idx: 1, n: -1, live: true, interval: 2 * time.Millisecond}, nil)
	before := s.count("src0")
	waitFor(t, "records of the added src1", 5*time.Second, func() bool { return s.count("src1") >= 5 })
	if s.count("src0") <= before {
		t.Error("src0 stalled while src1 was added")
	}
	if err := h.p.AddSource(SourceSpec{ID: "src1"}, func(context.Context) (ingest.Source, error) { return b, nil }); err == nil {
		t.Error("adding a duplicate source id succeeded")
	}

	if err := h.p.RemoveSource("src0"); err != nil {
		t.Fatal(err)
	}
	if a.closed.Load() != 1 {
		t.Errorf("removed source closed %d times, want 1", a.closed.Load())
	}
	time.Sleep(50 * time.Millisecond) // let batches already formed drain
	after := s.count("src0")
	fromB := s.count("src1")
	waitFor(t, "src1 to keep flowing", 5*time.Second, func() bool { return s.count("src1") >= fromB+10 })
	if got := s.count("src0"); got != after {
		t.Errorf("src0 gave %d records after removal", got-after)
	}
	if st := h.p.Sources(); len(st) != 1 || st[0].ID != "src1" || st[0].State != "running" {
		t.Errorf("Sources() = %+v, want only src1 running", st)
	}
	if err := h.p.RemoveSource("src0"); err == nil {
		t.Error("removing an unknown source succeeded")
	}
	cancel()
	if err, ok := wait(5 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	if b.closed.Load() != 1 {
		t.Errorf("src1 closed %d times at shutdown, want 1", b.closed.Load())
	}
	h.checkReleased(t)
}

func TestGracefulShutdownCaptionsQueuedFramesThenFlushes(t *testing.T) {
	capt := newFakeCaptioner()
	capt.delay = func(int) time.Duration { return 10 * time.Millisecond }
	h := newHarness(t, Config{MaxBatch: 2, QueueSize: 4, MaxWait: time.Millisecond}, capt)
	h.add(t, &fakeSource{idx: 0, n: -1}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	wait := h.run(ctx)
	waitFor(t, "a full queue behind the slow captioner", 5*time.Second, func() bool {
		return h.m.get("QueueDepth", "src0") == 4 && len(h.sinks[0].records()) >= 2
	})
	cancel()
	if err, ok := wait(5 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	recs := h.sinks[0].records()
	received := h.m.get("FramesReceived", "src0")
	if float64(len(recs)) != received {
		t.Errorf("%d records for %v received frames: queued frames were not captioned", len(recs), received)
	}
	for i, r := range recs {
		if r.Seq != int64(i) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
	}
	ev := h.sinks[0].events
	if h.sinks[0].flushes != 1 || ev[len(ev)-1] != "flush" {
		t.Errorf("sink events end %v with %d flushes: want one flush after the last write", ev[max(0, len(ev)-3):], h.sinks[0].flushes)
	}
	h.checkReleased(t)
}

func TestKillAbortsAtOnce(t *testing.T) {
	capt := newFakeCaptioner()
	capt.block = true
	h := newHarness(t, Config{}, capt)
	h.add(t, &fakeSource{idx: 0, n: -1}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	wait := h.run(ctx)
	<-capt.started
	cancel() // graceful: waits for the caption in flight
	if _, ok := wait(100 * time.Millisecond); ok {
		t.Fatal("graceful shutdown returned while a batch was still being captioned")
	}
	start := time.Now()
	h.p.Kill()
	err, ok := wait(2 * time.Second)
	if !ok {
		t.Fatal("Run did not return within 2s of Kill")
	}
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Run after Kill returned %v, want an error counting lost frames", err)
	}
	t.Logf("Kill took %s: %v", time.Since(start), err)
	h.checkReleased(t)
}

func TestGapRecordPrecedesCaption(t *testing.T) {
	h := newHarness(t, Config{ExitWhenSourcesDone: true, QueueSize: 8}, nil)
	h.add(t, &fakeSource{idx: 0, n: 5, live: true, gapAt: 2, gapDur: 3 * time.Second}, nil)
	if err, ok := h.run(context.Background())(5 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	recs := h.sinks[0].records()
	if len(recs) != 6 {
		t.Fatalf("%d records, want 5 captions and 1 gap", len(recs))
	}
	g, c := recs[2], recs[3]
	pts := (2 * framePeriod).Milliseconds()
	if g.Kind != sink.KindGap || g.GapMillis != 3000 || g.PTSMillis != pts || g.Caption != "" {
		t.Errorf("gap record %+v", g)
	}
	if c.Kind != sink.KindCaption || c.PTSMillis != pts {
		t.Errorf("record after the gap %+v, want the caption of the same frame", c)
	}
	if g.Run == "" || c.Run != g.Run {
		t.Errorf("live records' runs: gap %q, caption %q; want one non-empty run", g.Run, c.Run)
	}
	if g.ID != sink.RecordID("src0", g.Run, pts, "sha256:fake", sink.KindGap) || g.ID == c.ID {
		t.Errorf("gap id %s, caption id %s", g.ID, c.ID)
	}
	if got := h.m.get("Records", sink.KindGap); got != 1 {
		t.Errorf("lookout_records_total{kind=gap} = %v", got)
	}
	h.checkReleased(t)
}

func TestFailingSourceRestartedWithBackoffWhileOthersFlow(t *testing.T) {
	const minBackoff = 30 * time.Millisecond
	h := newHarness(t, Config{MaxWait: 2 * time.Millisecond, RestartBackoffMin: minBackoff, RestartBackoffMax: time.Second, RestartJitter: 1e-9}, nil)
	h.add(t, &fakeSource{idx: 0, n: -1, live: true, interval: 2 * time.Millisecond}, nil)
	var mu sync.Mutex
	var opens []time.Time
	bad := func(ctx context.Context) (ingest.Source, error) {
		mu.Lock()
		defer mu.Unlock()
		opens = append(opens, time.Now())
		switch len(opens) {
		case 1, 2:
			return nil, fmt.Errorf("connect: %w", ingest.ErrTransient)
		case 3:
			return &fakeSource{idx: 1, n: -1, live: true, failAfter: 2, failErr: errors.New("decoder exploded"), emitted: &h.emitted}, nil
		case 4:
			return nil, errors.New("camera refused")
		}
		return &fakeSource{idx: 1, n: -1, live: true, interval: 2 * time.Millisecond, emitted: &h.emitted, seq: 100}, nil
	}
	if err := h.p.AddSource(SourceSpec{ID: "src1", Live: true}, bad); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := h.run(ctx)
	s := h.sinks[0]
	waitFor(t, "src1 to recover", 5*time.Second, func() bool { return s.count("src1") >= 5 })
	cancel()
	if err, ok := wait(5 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(opens) != 5 {
		t.Fatalf("src1 opened %d times, want 5", len(opens))
	}
	// Backoff doubles per failure and restarts from the minimum after a frame.
	want := []time.Duration{minBackoff, 2 * minBackoff, minBackoff, 2 * minBackoff}
	for i, w := range want {
		if got := opens[i+1].Sub(opens[i]); got < w-2*time.Millisecond || got > w+500*time.Millisecond {
			t.Errorf("reopen %d after %s, want about %s", i+1, got, w)
		}
	}
	if got := h.m.get("SourceRestarts", "src1"); got != 4 {
		t.Errorf("lookout_source_restarts_total{src1} = %v, want 4", got)
	}
	// src0 kept flowing while src1 failed.
	during := 0
	for _, r := range s.records() {
		if r.SourceID == "src0" && r.CaptureTime.After(opens[0]) && r.CaptureTime.Before(opens[4]) {
			during++
		}
	}
	if during < 10 {
		t.Errorf("src0 delivered %d records while src1 was failing for %s", during, opens[4].Sub(opens[0]))
	}
	h.checkReleased(t)
}

func TestReplayFatalErrorEndsSourceAndRunReportsIt(t *testing.T) {
	h := newHarness(t, Config{ExitWhenSourcesDone: true, RestartBackoffMin: time.Millisecond}, nil)
	h.add(t, &fakeSource{idx: 0, n: 10}, nil)
	var opens atomic.Int32
	if err := h.p.AddSource(SourceSpec{ID: "missing"}, func(context.Context) (ingest.Source, error) {
		opens.Add(1)
		return nil, errors.New("open /videos/missing.mp4: no such file")
	}); err != nil {
		t.Fatal(err)
	}
	err, ok := h.run(context.Background())(5 * time.Second)
	if !ok {
		t.Fatal("Run did not end after its replays ended")
	}
	if err == nil || !strings.Contains(err.Error(), "source missing") || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Run returned %v, want the failed source named", err)
	}
	if opens.Load() != 1 {
		t.Errorf("failed replay opened %d times, want 1", opens.Load())
	}
	if got := h.sinks[0].count("src0"); got != 10 {
		t.Errorf("healthy replay gave %d records, want 10", got)
	}
	st := h.p.Sources()
	if len(st) != 2 || st[0].State != "failed" || !strings.Contains(st[0].LastError, "no such file") {
		t.Errorf("Sources() = %+v", st)
	}
	h.checkReleased(t)
}

func TestSinkFailuresAreRetriedAndNothingIsLost(t *testing.T) {
	release := make(chan struct{})
	flaky := &fakeSink{name: "flaky", failWrite: func(attempt int) string {
		if attempt == 1 {
			return "hang" // beyond SinkTimeout
		}
		select {
		case <-release:
			return ""
		default:
			return "fail"
		}
	}}
	good := &fakeSink{name: "good"}
	h := newHarness(t, Config{ExitWhenSourcesDone: true, SinkTimeout: 20 * time.Millisecond, SinkRetryMin: 2 * time.Millisecond, SinkRetryMax: 10 * time.Millisecond}, nil, flaky, good)
	h.add(t, &fakeSource{idx: 0, n: 20}, nil)
	wait := h.run(context.Background())
	waitFor(t, "failed writes", 5*time.Second, func() bool {
		return h.m.get("SinkFailed", "flaky") > 0 && h.p.Ready() != nil
	})
	if err := h.p.Ready(); !strings.Contains(fmt.Sprint(err), "sink flaky is down") {
		t.Errorf("Ready() = %v while the sink fails", err)
	}
	close(release)
	if err, ok := wait(5 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	for _, s := range []*fakeSink{flaky, good} {
		recs := s.records()
		if len(recs) != 20 {
			t.Errorf("sink %s holds %d records, want 20", s.name, len(recs))
		}
		for i, r := range recs {
			if r.Seq != int64(i) {
				t.Errorf("sink %s record %d seq %d", s.name, i, r.Seq)
				break
			}
		}
	}
	if got := h.m.get("SinkWritten", "flaky"); got != 20 {
		t.Errorf("lookout_sink_written_total{flaky} = %v, want 20", got)
	}
	h.checkReleased(t)
}

func TestCaptionFailureIsolatesTheBadFrame(t *testing.T) {
	capt := newFakeCaptioner()
	capt.fail = func(caps []string) error {
		for _, c := range caps {
			if c == captionOf(0, 3) {
				return errors.New("fake: cannot caption frame 3")
			}
		}
		return nil
	}
	h := newHarness(t, Config{ExitWhenSourcesDone: true, MaxWait: 50 * time.Millisecond, QueueSize: 10}, capt)
	h.add(t, &fakeSource{idx: 0, n: 10, gapAt: 3, gapDur: time.Second}, nil)
	err, ok := h.run(context.Background())(5 * time.Second)
	if !ok || err == nil || !strings.Contains(err.Error(), "1 frames could not be captioned") {
		t.Fatalf("Run of a replay with a failed frame: ended %v, err %v", ok, err)
	}
	recs := h.sinks[0].records()
	if len(recs) != 10 {
		t.Fatalf("%d records, want 9 captions (all but the failing frame) and its gap record", len(recs))
	}
	for _, r := range recs {
		if r.Seq == 3 && r.Kind != sink.KindGap {
			t.Error("the failing frame got a caption record")
		}
	}
	if recs[3].Kind != sink.KindGap || recs[3].Seq != 3 {
		t.Errorf("record 3 = %+v, want the gap record of the failed frame", recs[3])
	}
	if got := h.m.get("CaptionFailures", "src0"); got != 1 {
		t.Errorf("lookout_caption_failures_total = %v, want 1", got)
	}
	h.checkReleased(t)
}

func TestRecordFields(t *testing.T) {
	h := newHarness(t, Config{ExitWhenSourcesDone: true}, nil)
	labels := map[string]string{"site": "gate"}
	h.add(t, &fakeSource{idx: 4, n: 2}, labels)
	labels["site"] = "changed after AddSource"
	if err, ok := h.run(context.Background())(5 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	recs := h.sinks[0].records()
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[1]
	pts := framePeriod.Milliseconds()
	want := sink.Record{
		SchemaVersion: sink.SchemaVersion, ID: sink.RecordID("src4", "", pts, "sha256:fake", sink.KindCaption),
		Kind: sink.KindCaption, SourceID: "src4", Seq: 1, PTSMillis: pts, Caption: "4/1", Confidence: math.Exp(-0.5),
		Model: "fake-model", ModelDigest: "sha256:fake",
	}
	got := r
	got.Labels, got.Attributes, got.CaptureTime, got.LatencyMillis = nil, nil, time.Time{}, sink.Latency{}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("record\n got %+v\nwant %+v", got, want)
	}
	if r.Labels["site"] != "gate" || r.Attributes["scene"] != (sink.Attr{Value: "street", Prob: 0.9}) || r.CaptureTime.IsZero() {
		t.Errorf("labels %v, attributes %v, capture time %v", r.Labels, r.Attributes, r.CaptureTime)
	}
	l := r.LatencyMillis
	if l.Preprocess != 1 || l.Encode != 2 || l.Decode != 3 || l.Queue < 0 || l.Total <= 0 {
		t.Errorf("latency %+v", l)
	}
	if got := h.m.get("CaptionLatency"); got != 2 {
		t.Errorf("lookout_caption_latency_seconds has %v samples, want 2", got)
	}
}

func TestReadyFollowsTheRun(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	if h.p.Ready() == nil {
		t.Error("Ready() = nil before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait := h.run(ctx)
	waitFor(t, "readiness", 2*time.Second, func() bool { return h.p.Ready() == nil })
	cancel()
	if err, ok := wait(5 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	if h.p.Ready() == nil {
		t.Error("Ready() = nil after Run returned")
	}
	if err := h.p.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestAddSourceRejectsBadSpecs(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	open := func(context.Context) (ingest.Source, error) { return nil, errors.New("unused") }
	for _, tc := range []struct {
		spec SourceSpec
		open func(context.Context) (ingest.Source, error)
		want string
	}{
		{SourceSpec{}, open, "source ID is empty"},
		{SourceSpec{ID: "x"}, nil, "no open function"},
	} {
		if err := h.p.AddSource(tc.spec, tc.open); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddSource(%+v) = %v, want %q", tc.spec, err, tc.want)
		}
	}
}

func TestNoGoroutineLeakAfterRun(t *testing.T) {
	before := runtime.NumGoroutine()
	capt := newFakeCaptioner()
	capt.delay = func(int) time.Duration { return time.Millisecond }
	h := newHarness(t, Config{Workers: 3, MaxWait: 2 * time.Millisecond}, capt, &fakeSink{name: "a"}, &fakeSink{name: "b"})
	h.add(t, &fakeSource{idx: 0, n: -1, live: true, interval: time.Millisecond}, nil)
	h.add(t, &fakeSource{idx: 1, n: -1, live: true, blockAfter: 2}, nil)
	h.add(t, &fakeSource{idx: 2, n: 50}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	wait := h.run(ctx)
	waitFor(t, "records", 5*time.Second, func() bool { return len(h.sinks[0].records()) >= 60 })
	if err := h.p.RemoveSource("src0"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err, ok := wait(5 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	waitFor(t, fmt.Sprintf("goroutines back to %d", before), 2*time.Second, func() bool {
		return runtime.NumGoroutine() <= before
	})
	h.checkReleased(t)
}

func TestRemoveBlockedReplayReturnsAndCountsDiscards(t *testing.T) {
	capt := newFakeCaptioner()
	capt.block = true
	h := newHarness(t, Config{QueueSize: 3, MaxBatch: 1}, capt)
	fs := h.add(t, &fakeSource{idx: 0, n: -1}, nil)
	wait := h.run(context.Background())
	waitFor(t, "a full queue", 5*time.Second, func() bool { return h.m.get("QueueDepth", "src0") == 3 })
	waitFor(t, "the replay to block on its full queue", 5*time.Second, func() bool { return h.emitted.Load() == 1+1+3+1 })
	done := make(chan error, 1)
	go func() { done <- h.p.RemoveSource("src0") }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("RemoveSource hung on a replay blocked by a full queue")
	}
	// 3 queued + 1 waiting to be queued; the one in the batcher and the one
	// in the captioner stay in flight.
	if got := h.m.get("FramesDropped", "src0", "removed"); got != 4 {
		t.Errorf("frames dropped as removed = %v, want 4", got)
	}
	if fs.closed.Load() != 1 {
		t.Errorf("removed source closed %d times", fs.closed.Load())
	}
	h.p.Kill()
	if _, ok := wait(2 * time.Second); !ok {
		t.Fatal("Run did not return after Kill")
	}
	h.checkReleased(t)
}

type notReadySink struct{ fakeSink }

func (*notReadySink) Ready() error { return errors.New("no broker reachable") }

func TestReadyReportsSinkReadier(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	s := &notReadySink{fakeSink{name: "kafka"}}
	h.p = New(Config{}, h.capt, []sink.Sink{s}, h.p.log, nil)
	ctx, cancel := context.WithCancel(context.Background())
	wait := h.run(ctx)
	waitFor(t, "workers", 2*time.Second, func() bool { return h.p.workers.up.Load() > 0 })
	if err := h.p.Ready(); err == nil || !strings.Contains(err.Error(), "sink kafka is not ready: no broker reachable") {
		t.Errorf("Ready() = %v", err)
	}
	cancel()
	if err, ok := wait(2 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
}

// BenchmarkPipelineOverhead measures the pipeline's own cost per frame with
// a captioner that does nothing but read the image mean.
func BenchmarkPipelineOverhead(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprint("workers=", workers), func(b *testing.B) {
			var emitted atomic.Int64
			p := New(Config{Workers: workers, QueueSize: 16, MaxWait: time.Millisecond, ExitWhenSourcesDone: true},
				newFakeCaptioner(), []sink.Sink{&fakeSink{}}, zerolog.Nop(), nil)
			per := int64(b.N/4 + 1)
			for i := range 4 {
				fs := &fakeSource{idx: i, n: per, emitted: &emitted}
				if err := p.AddSource(SourceSpec{ID: fmt.Sprint("src", i)}, func(context.Context) (ingest.Source, error) { return fs, nil }); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			if err := p.Run(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(emitted.Load())/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// A live source's PTS starts again at 0 each time it is opened; its records'
// ids must not repeat across openings (a consumer deduplicating by id would
// drop the new captions), while a replay's ids are the same on every replay.
func TestRecordIDsUniqueAcrossLiveRestartsAndStableForReplays(t *testing.T) {
	h := newHarness(t, Config{MaxWait: 2 * time.Millisecond, RestartBackoffMin: time.Millisecond, RestartBackoffMax: time.Millisecond}, nil)
	var opens atomic.Int32
	live := func(context.Context) (ingest.Source, error) {
		opens.Add(1)
		// Each opening restarts the PTS at 0 and fails after 3 frames.
		return &fakeSource{idx: 1, n: -1, live: true, failAfter: 3, failErr: fmt.Errorf("drop: %w", ingest.ErrTransient), emitted: &h.emitted}, nil
	}
	if err := h.p.AddSource(SourceSpec{ID: "src1", Live: true}, live); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := h.run(ctx)
	waitFor(t, "three openings of src1", 5*time.Second, func() bool { return h.sinks[0].count("src1") >= 9 })
	cancel()
	if err, ok := wait(5 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	ids := map[string]sink.Record{}
	runs := map[string]int{}
	for _, r := range h.sinks[0].records() {
		if r.Run == "" {
			t.Fatalf("live record without a run: %+v", r)
		}
		if r.ID != sink.RecordID(r.SourceID, r.Run, r.PTSMillis, r.ModelDigest, r.Kind) {
			t.Errorf("record id %s is not RecordID of its own fields", r.ID)
		}
		if prev, dup := ids[r.ID]; dup {
			t.Errorf("id %s repeats: pts %d of run %s and pts %d of run %s", r.ID, prev.PTSMillis, prev.Run, r.PTSMillis, r.Run)
		}
		ids[r.ID] = r
		runs[r.Run]++
	}
	if len(runs) < 3 || int(opens.Load()) < len(runs) {
		t.Errorf("%d runs over %d openings, want one run per opening and at least 3", len(runs), opens.Load())
	}

	// Replays: two pipelines replaying the same input give the same ids.
	replay := func() []string {
		h := newHarness(t, Config{ExitWhenSourcesDone: true}, nil)
		h.add(t, &fakeSource{idx: 2, n: 4}, nil)
		if err, ok := h.run(context.Background())(5 * time.Second); !ok || err != nil {
			t.Fatalf("Run: ended %v, err %v", ok, err)
		}
		var out []string
		for _, r := range h.sinks[0].records() {
			if r.Run != "" {
				t.Errorf("replay record has run %q, want none", r.Run)
			}
			out = append(out, r.ID)
		}
		return out
	}
	first, second := replay(), replay()
	if len(first) != 4 || fmt.Sprint(first) != fmt.Sprint(second) {
		t.Errorf("replay ids differ between two replays:\n%v\n%v", first, second)
	}
}
