package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"lookout/ingest"
	"lookout/internal/logthrottle"
)

// Unit tests of the source runner and its queue: a fake source on the in
// edge, the source's frameQueue on the out edge, no batcher behind it.

// stageKit holds what the stages share in their unit tests: a dropper that
// counts releases, fresh metrics and the loss counters.
type stageKit struct {
	m        *recMetrics
	lost     *losses
	drop     dropper
	released atomic.Int64
	wake     chan struct{}
}

func newStageKit(t *testing.T) *stageKit {
	t.Helper()
	m := newRecMetrics()
	k := &stageKit{m: m, lost: &losses{}, wake: make(chan struct{}, 1)}
	k.drop = dropper{
		release: func(f *ingest.Frame) {
			if f.Image.Ptr() != nil {
				k.released.Add(1)
			}
			_ = f.Close()
		},
		m: m, lost: k.lost,
		limit: logthrottle.New(time.Second), interval: time.Second,
	}
	return k
}

func (k *stageKit) info(id string, live bool) *sourceInfo {
	return &sourceInfo{spec: SourceSpec{ID: id, Live: live}, log: zerolog.Nop()}
}

// queue makes a queue of size for a source, dropping through the kit.
func (k *stageKit) queue(live bool, size int) *frameQueue {
	return newFrameQueue(live, size, k.wake, func(int) {}, k.drop.overflow)
}

// frame is queued frame seq of src, with a real image.
func (k *stageKit) frame(src *sourceInfo, idx int, seq int64) queued {
	return queued{src: src, enqueued: time.Now(), frame: ingest.Frame{
		SourceID: src.spec.ID, Seq: seq, PTS: time.Duration(seq) * framePeriod, CaptureTime: time.Now(), Image: frameMat(idx, seq)}}
}

// runner starts a runner over open feeding q and returns a channel that
// gets its end.
func (k *stageKit) runner(ctx context.Context, info *sourceInfo, q *frameQueue, open openFunc) (*sourceRunner, chan error) {
	r := newSourceRunner(context.Background(), info, "", open, q, runnerConfig{
		backoffMin: 5 * time.Millisecond, backoffMax: 20 * time.Millisecond, jitter: 1e-9,
		received:  func() { k.m.FrameReceived(info.spec.ID) },
		restarted: func() { k.m.SourceRestarted(info.spec.ID) },
		drop:      k.drop,
	})
	ended := make(chan error, 1)
	r.start(ctx, func(err error) { ended <- err })
	return r, ended
}

// popAll takes every frame out of q, releasing them.
func (k *stageKit) popAll(q *frameQueue) []queued {
	var out []queued
	for it, ok := q.pop(); ok; it, ok = q.pop() {
		out = append(out, it)
		k.drop.release(&it.frame)
	}
	return out
}

func TestLiveQueueDropsOldestAndNeverBlocks(t *testing.T) {
	k := newStageKit(t)
	src := k.info("cam", true)
	q := k.queue(true, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := range int64(5) {
			if err := q.push(context.Background(), k.frame(src, 0, seq)); err != nil {
				t.Error(err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("a live queue blocked its pusher: it must drop the oldest frame instead")
	}
	var seqs []int64
	for _, it := range k.popAll(q) {
		seqs = append(seqs, it.frame.Seq)
	}
	if fmt.Sprint(seqs) != "[3 4]" {
		t.Errorf("queue kept seqs %v, want the newest two [3 4]", seqs)
	}
	if got := k.m.get("FramesDropped", "cam", "overflow"); got != 3 {
		t.Errorf("overflow drops counted %v, want 3", got)
	}
	if got := k.released.Load(); got != 5 {
		t.Errorf("%d of 5 frames released: dropped frames must be released", got)
	}
}

func TestReplayQueueBlocksAndLosesNothing(t *testing.T) {
	k := newStageKit(t)
	src := k.info("file", false)
	q := k.queue(false, 2)
	for seq := range int64(2) {
		if err := q.push(context.Background(), k.frame(src, 0, seq)); err != nil {
			t.Fatal(err)
		}
	}
	pushed := make(chan error, 1)
	go func() { pushed <- q.push(context.Background(), k.frame(src, 0, 2)) }()
	select {
	case err := <-pushed:
		t.Fatalf("push into a full replay queue returned (%v) instead of waiting", err)
	case <-time.After(50 * time.Millisecond):
	}
	first, _ := q.pop()
	k.drop.release(&first.frame)
	select {
	case err := <-pushed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("push still blocked after a pop made room")
	}
	// A wait cut off by its context leaves the frame with the caller.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	last := k.frame(src, 0, 3)
	if err := q.push(ctx, last); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("push after its context ended = %v", err)
	}
	k.drop.release(&last.frame)
	var seqs []int64
	for _, it := range k.popAll(q) {
		seqs = append(seqs, it.frame.Seq)
	}
	if fmt.Sprint(first.frame.Seq, seqs) != "0 [1 2]" {
		t.Errorf("popped %d then %v, want 0 then [1 2]: nothing lost, in order", first.frame.Seq, seqs)
	}
	if got := k.m.get("FramesDropped", "file", "overflow"); got != 0 {
		t.Errorf("a replay queue dropped %v frames", got)
	}
}

// selfHealing is a live source that reconnects by itself, as a Sampler
// around an ingest.Reconnecting does: it says so through Health.
type selfHealing struct{ fakeSource }

func (*selfHealing) Health() ingest.Health { return ingest.Health{Reconnects: true} }

// A live source whose reader reconnects by itself is never reopened by the
// runner: the error it returns ends it as failed, and the runner reports it.
func TestRunnerLeavesLiveRestartsToASelfReconnectingReader(t *testing.T) {
	k := newStageKit(t)
	var opens atomic.Int32
	q := k.queue(true, 8)
	r, ended := k.runner(context.Background(), k.info("cam", true), q, func(context.Context) (ingest.Source, error) {
		opens.Add(1)
		return &selfHealing{fakeSource{live: true, n: -1, failAfter: 2, failErr: errors.New("unsupported codec"), emitted: new(atomic.Int64)}}, nil
	})
	var err error
	select {
	case err = <-ended:
	case <-time.After(2 * time.Second):
		t.Fatalf("the runner is still running after %d opens: it reopened a self-reconnecting source", opens.Load())
	}
	if err == nil || !strings.Contains(err.Error(), "source cam: next frame: unsupported codec") {
		t.Errorf("runner ended with %v, want the reader's error", err)
	}
	st := r.snapshot()
	if opens.Load() != 1 || st.State != StateFailed || st.Restarts != 0 || !strings.Contains(st.LastError, "unsupported codec") {
		t.Errorf("opens %d, state %+v; want one open, failed with the error, no restart", opens.Load(), st)
	}
	if got := len(k.popAll(q)); got != 2 {
		t.Errorf("%d frames queued, want the 2 read before the failure", got)
	}
}

// A live source without a reconnecting reader is reopened by the runner
// after any failure, with backoff, each opening a new run; a replay only
// after ErrTransient.
func TestRunnerReopensSourcesThatCannotReopenThemselves(t *testing.T) {
	for _, tc := range []struct {
		name      string
		live      bool
		err       error
		wantOpens int32 // at least
		wantState string
	}{
		{"bare live source, fatal error", true, errors.New("device unplugged"), 3, StateBackoff},
		{"replay, transient error", false, fmt.Errorf("nfs: %w", ingest.ErrTransient), 3, StateBackoff},
		{"replay, fatal error", false, errors.New("corrupt file"), 1, StateFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newStageKit(t)
			var opens atomic.Int32
			q := k.queue(tc.live, 256)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r, ended := k.runner(ctx, k.info("src", tc.live), q, func(context.Context) (ingest.Source, error) {
				opens.Add(1)
				return &fakeSource{live: tc.live, n: -1, failAfter: 2, failErr: tc.err, emitted: new(atomic.Int64)}, nil
			})
			waitFor(t, "the runner to settle", 2*time.Second, func() bool {
				return opens.Load() >= tc.wantOpens && r.snapshot().State == tc.wantState
			})
			time.Sleep(30 * time.Millisecond) // room for a wrong reopen
			cancel()
			<-ended
			got := opens.Load()
			if tc.wantOpens == 1 && got != 1 {
				t.Errorf("opened %d times, want once", got)
			}
			if restarts := k.m.get("SourceRestarts", "src"); restarts != float64(got-1) {
				t.Errorf("lookout_source_restarts_total = %v after %d opens", restarts, got)
			}
			runs := map[string]int{} // frames per run
			last := ""               // the run of the last frame queued
			for _, it := range k.popAll(q) {
				runs[it.run]++
				last = it.run
			}
			if tc.live {
				// One run per opening: each gave 2 frames, bar the last one,
				// which the cancel may have cut off before its first or
				// second frame.
				if len(runs) < int(got)-1 {
					t.Errorf("%d runs over %d openings of a live source, want one per opening", len(runs), got)
				}
				for run, n := range runs {
					if n != 2 && !(run == last && n == 1) {
						t.Errorf("run %s has %d frames, want the 2 of one opening", run, n)
					}
				}
			}
			if !tc.live && (len(runs) != 1 || runs[""] == 0) {
				t.Errorf("replay frames carry runs %v, want none", runs)
			}
		})
	}
}

// Through the whole pipeline: the self-reconnecting source's final error
// shows in Sources and is returned by Run, and the other source flows on.
func TestRunReportsALiveSourceItsReaderGaveUpOn(t *testing.T) {
	h := newHarness(t, Config{MaxWait: 2 * time.Millisecond, ExitWhenSourcesDone: true}, nil)
	h.add(t, &fakeSource{idx: 0, n: 20, interval: time.Millisecond}, nil)
	var opens atomic.Int32
	if err := h.p.AddSource(SourceSpec{ID: "cam", Live: true}, func(context.Context) (ingest.Source, error) {
		opens.Add(1)
		return &selfHealing{fakeSource{idx: 1, live: true, n: -1, failAfter: 3, failErr: errors.New("unsupported codec"), emitted: &h.emitted}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	err, ok := h.run(context.Background())(5 * time.Second)
	if !ok || err == nil || !strings.Contains(err.Error(), "source cam: next frame: unsupported codec") {
		t.Fatalf("Run: ended %v, err %v; want the reader's error", ok, err)
	}
	if opens.Load() != 1 || h.m.get("SourceRestarts", "cam") != 0 {
		t.Errorf("cam opened %d times, restarts %v: the pipeline reopened a self-reconnecting source", opens.Load(), h.m.get("SourceRestarts", "cam"))
	}
	st := h.p.Sources()
	if st[0].ID != "cam" || st[0].State != StateFailed || h.sinks[0].count("src0") != 20 || h.sinks[0].count("cam") != 3 {
		t.Errorf("Sources() = %+v; records src0 %d, cam %d; want cam failed, 20 and 3", st, h.sinks[0].count("src0"), h.sinks[0].count("cam"))
	}
	h.checkReleased(t)
}
