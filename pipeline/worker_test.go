package pipeline

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"lookout/sink"
)

// Unit tests of the worker pool: the test sends batches on the in edge and
// reads captioned batches on the out edge; the captioner is the fake.

// poolKit is a worker pool between two channels the test holds.
type poolKit struct {
	*stageKit
	pool  *workerPool
	capt  *fakeCaptioner
	in    chan *batch
	out   chan *doneBatch
	ended chan struct{}
}

func newPoolKit(t *testing.T, n int, capt *fakeCaptioner) *poolKit {
	k := &poolKit{stageKit: newStageKit(t), capt: capt, in: make(chan *batch), out: make(chan *doneBatch), ended: make(chan struct{})}
	k.pool = &workerPool{n: n, capt: capt, records: recordMaker{model: "fake-model", digest: "sha256:fake"},
		release: k.drop.release, log: zerolog.Nop(), limit: k.drop.limit,
		m: k.m, lost: k.lost}
	go func() {
		defer close(k.ended)
		k.pool.run(context.Background(), k.in, k.out)
	}()
	return k
}

// batch builds batch seq of source 0's frames seqs.
func (k *poolKit) batch(seq uint64, frames ...int64) *batch {
	src := k.info("src0", false)
	b := &batch{seq: seq}
	for _, s := range frames {
		b.items = append(b.items, k.frame(src, 0, s))
	}
	return b
}

// Up to n Caption calls run at once, never more.
func TestWorkerPoolRunsUpToNCaptionsAtOnce(t *testing.T) {
	capt := newFakeCaptioner()
	gate := make(chan struct{})
	capt.delay = func(int) time.Duration { <-gate; return 0 }
	k := newPoolKit(t, 3, capt)
	go func() {
		for i := range 6 {
			k.in <- k.batch(uint64(i), int64(i))
		}
		close(k.in)
	}()
	waitFor(t, "3 Caption calls in flight", 2*time.Second, func() bool { return capt.inflight.Load() >= 3 })
	time.Sleep(30 * time.Millisecond) // a fourth would start now if the pool allowed it
	if n := capt.inflight.Load(); n != 3 {
		t.Errorf("%d Caption calls in flight with 3 workers", n)
	}
	if n := k.pool.up.Load(); n != 3 {
		t.Errorf("workers up = %d, want 3", n)
	}
	close(gate)
	seqs := map[uint64]bool{}
	for d := range k.out {
		seqs[d.seq] = true
		if len(d.recs) != 1 || d.recs[0].Caption != captionOf(0, int64(d.seq)) {
			t.Errorf("batch %d gave %+v", d.seq, d.recs)
		}
	}
	<-k.ended
	if len(seqs) != 6 || capt.maxIn.Load() != 3 || k.pool.up.Load() != 0 {
		t.Errorf("%d batches out, at most %d calls at once, %d workers up at the end; want 6, 3, 0", len(seqs), capt.maxIn.Load(), k.pool.up.Load())
	}
	if k.released.Load() != 6 {
		t.Errorf("%d of 6 frames released", k.released.Load())
	}
}

// A failed batch call is retried frame by frame: the bad frame alone gives
// no caption (its gap record stays), is counted, and the others are
// captioned. A call that fails for every frame marks the captioner failed
// until one succeeds.
func TestWorkerPoolRetriesAFailedBatchFrameByFrame(t *testing.T) {
	capt := newFakeCaptioner()
	bad := map[string]bool{captionOf(0, 2): true}
	capt.fail = func(caps []string) error {
		for _, c := range caps {
			if bad[c] {
				return errors.New("fake: cannot caption " + c)
			}
		}
		return nil
	}
	k := newPoolKit(t, 1, capt)
	b := k.batch(0, 1, 2, 3)
	b.items[1].frame.Gap, b.items[1].frame.GapDuration = true, time.Second
	k.in <- b
	d := <-k.out
	var got []string
	for _, r := range d.recs {
		got = append(got, fmt.Sprintf("%s:%d:%s", r.Kind, r.Seq, r.Caption))
	}
	want := fmt.Sprintf("[%s:1:0/1 %s:2: %s:3:0/3]", sink.KindCaption, sink.KindGap, sink.KindCaption)
	if fmt.Sprint(got) != want {
		t.Errorf("records %v, want %s", got, want)
	}
	if len(d.acks) != 2 || k.m.get("CaptionFailures", "src0") != 1 || k.pool.failed.Load() != 1 {
		t.Errorf("acks %v, failures counted %v/%d; want 2 acks and 1 failure", d.acks, k.m.get("CaptionFailures", "src0"), k.pool.failed.Load())
	}
	if k.pool.failedOutright.Load() {
		t.Error("captioner marked failed though most frames were captioned")
	}

	bad[captionOf(0, 4)], bad[captionOf(0, 5)] = true, true
	k.in <- k.batch(1, 4, 5)
	if d := <-k.out; len(d.recs) != 0 || !k.pool.failedOutright.Load() {
		t.Errorf("a batch failing for every frame: records %v, failed outright %v", d.recs, k.pool.failedOutright.Load())
	}
	k.in <- k.batch(2, 6)
	if d := <-k.out; len(d.recs) != 1 || k.pool.failedOutright.Load() {
		t.Errorf("after a good batch: records %v, failed outright %v", d.recs, k.pool.failedOutright.Load())
	}
	close(k.in)
	<-k.ended
	if k.released.Load() != 6 {
		t.Errorf("%d of 6 frames released", k.released.Load())
	}
}
