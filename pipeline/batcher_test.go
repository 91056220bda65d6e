package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Unit tests of the batcher: frame queues filled by the test on the in
// edge, the work channel read by the test on the out edge.

// batcherKit is a batcher over queues the test fills.
type batcherKit struct {
	*stageKit
	b           *batcher
	out         chan *batch
	drain, hard chan struct{}
	ended       chan struct{}
}

func newBatcherKit(t *testing.T, maxBatch int, maxWait time.Duration) *batcherKit {
	k := &batcherKit{stageKit: newStageKit(t), out: make(chan *batch), drain: make(chan struct{}),
		hard: make(chan struct{}), ended: make(chan struct{})}
	k.b = newBatcher(maxBatch, maxWait, k.drop)
	k.wake = k.b.wake
	return k
}

// fill adds a replay queue for source idx holding n frames.
func (k *batcherKit) fill(t *testing.T, idx, n int) *frameQueue {
	src := k.info(fmt.Sprint("src", idx), false)
	q := k.queue(false, max(n, 1))
	for seq := range int64(n) {
		if err := q.push(context.Background(), k.frame(src, idx, seq)); err != nil {
			t.Fatal(err)
		}
	}
	k.b.add(q)
	return q
}

func (k *batcherKit) start() {
	select { // the fill's wakeups: the batcher looks at the queues first anyway
	case <-k.b.wake:
	default:
	}
	go func() {
		defer close(k.ended)
		k.b.run(k.drain, k.hard, k.out)
	}()
}

// next receives one batch, releasing its frames, and names them src/seq.
func (k *batcherKit) next(t *testing.T, within time.Duration) []string {
	t.Helper()
	select {
	case b, ok := <-k.out:
		if !ok {
			t.Fatal("the batcher closed its output")
		}
		var names []string
		for _, it := range b.items {
			names = append(names, fmt.Sprintf("%s/%d", it.src.spec.ID, it.frame.Seq))
			k.drop.release(&it.frame)
		}
		return names
	case <-time.After(within):
		t.Fatalf("no batch within %s", within)
		return nil
	}
}

// end drains and waits for the batcher to close its output.
func (k *batcherKit) end(t *testing.T) {
	t.Helper()
	k.b.closeQueues()
	close(k.drain)
	for {
		select {
		case b, ok := <-k.out:
			if !ok {
				<-k.ended
				return
			}
			for _, it := range b.items {
				k.drop.release(&it.frame)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("the batcher did not end after the drain")
		}
	}
}

// A source with a backlog does not starve one with a few frames: batches
// take the sources round robin, each batch at most MaxBatch.
func TestBatcherIsFairAcrossSourcesUpToMaxBatch(t *testing.T) {
	k := newBatcherKit(t, 4, time.Hour)
	k.fill(t, 0, 12)
	k.fill(t, 1, 4)
	k.start()
	first, second := k.next(t, time.Second), k.next(t, time.Second)
	if len(first) != 4 || len(second) != 4 {
		t.Fatalf("batches %v and %v, want 4 frames each (MaxBatch)", first, second)
	}
	want := "[src0/0 src1/0 src0/1 src1/1] [src1/2 src0/2 src1/3 src0/3]"
	if got := fmt.Sprint(first, second); got != want {
		t.Errorf("batches %s, want %s: round robin, starting at the next source each time", got, want)
	}
	for range 2 {
		if b := k.next(t, time.Second); len(b) != 4 {
			t.Errorf("batch %v from the backlog, want 4 frames", b)
		}
	}
	k.end(t)
}

// A batch that cannot fill is sent MaxWait after its first frame, not
// before and not much later.
func TestBatcherSendsAPartialBatchAfterMaxWait(t *testing.T) {
	const maxWait = 60 * time.Millisecond
	k := newBatcherKit(t, 8, maxWait)
	k.fill(t, 0, 3)
	start := time.Now()
	k.start()
	b := k.next(t, 2*time.Second)
	waited := time.Since(start)
	if len(b) != 3 {
		t.Errorf("batch %v, want the 3 queued frames", b)
	}
	if waited < maxWait-5*time.Millisecond || waited > maxWait+500*time.Millisecond {
		t.Errorf("partial batch sent after %s, want about MaxWait %s", waited, maxWait)
	}
	k.end(t)
}

// While no worker takes the batch, the batcher tops it up to MaxBatch.
func TestBatcherTopsUpWhileWorkersAreBusy(t *testing.T) {
	k := newBatcherKit(t, 4, time.Millisecond)
	k.fill(t, 0, 1)
	k.start()
	time.Sleep(30 * time.Millisecond) // MaxWait passed: the batch of 1 waits for a worker
	q := k.fill(t, 1, 3)
	waitFor(t, "the batcher to take the new frames", 2*time.Second, func() bool { return q.len() == 0 })
	if b := k.next(t, time.Second); len(b) != 4 {
		t.Errorf("batch %v, want it topped up to 4 while no worker was free", b)
	}
	k.end(t)
}

// After the drain signal the batcher sends what is left at once and ends;
// at a Kill it discards the batch it holds, counting the frames as killed.
func TestBatcherDrainsThenEndsAndDiscardsAtKill(t *testing.T) {
	k := newBatcherKit(t, 8, time.Hour)
	k.fill(t, 0, 3)
	k.start()
	time.Sleep(10 * time.Millisecond)
	k.b.closeQueues()
	close(k.drain)
	if b := k.next(t, time.Second); len(b) != 3 {
		t.Errorf("batch after the drain %v, want the 3 frames at once (not after MaxWait)", b)
	}
	select {
	case _, ok := <-k.out:
		if ok {
			t.Error("a batch after the queues were drained")
		}
	case <-time.After(time.Second):
		t.Fatal("the batcher did not close its output after the drain")
	}

	k = newBatcherKit(t, 8, time.Hour)
	k.fill(t, 0, 2)
	k.start()
	time.Sleep(10 * time.Millisecond)
	close(k.hard)
	select {
	case <-k.ended:
	case <-time.After(time.Second):
		t.Fatal("the batcher did not end at the Kill")
	}
	if got := k.m.get("FramesDropped", "src0", "killed"); got != 2 || k.lost.uncaptioned.Load() != 2 || k.released.Load() != 2 {
		t.Errorf("at Kill: dropped %v, lost %d, released %d; want the 2 held frames", got, k.lost.uncaptioned.Load(), k.released.Load())
	}
}
