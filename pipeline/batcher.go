package pipeline

import (
	"sync"
	"time"
)

// batch is a set of frames captioned together. seq orders batches for the
// deliverer.
type batch struct {
	seq   uint64
	items []queued
}

// batcher is the stage between the source queues and the workers. It
// forms cross-source batches: round robin over the queues, starting at a
// different queue each time so that no source is favoured, up to maxBatch
// frames or maxWait after the batch's first frame. While every worker is
// busy it keeps topping the held batch up to maxBatch (and the queues
// fill). The queue list is its own: the pipeline adds a source's queue
// when the source starts and removes it when the source is removed; a
// queue that is closed and empty is forgotten.
type batcher struct {
	maxBatch int
	maxWait  time.Duration
	drop     dropper
	// wake is signalled by the queues when a frame arrives or a queue
	// closes; capacity 1.
	wake chan struct{}

	mu     sync.Mutex
	queues []*frameQueue
	rr     int // where the next fill starts
}

func newBatcher(maxBatch int, maxWait time.Duration, drop dropper) *batcher {
	return &batcher{maxBatch: maxBatch, maxWait: maxWait, drop: drop, wake: make(chan struct{}, 1)}
}

// add makes q one of the queues batches are taken from.
func (b *batcher) add(q *frameQueue) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queues = append(b.queues, q)
}

// remove forgets q; frames still in it stay there.
func (b *batcher) remove(q *frameQueue) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queues = without(b.queues, func(x *frameQueue) bool { return x == q })
}

// closeQueues closes every queue, for a graceful shutdown: what they hold
// is still batched.
func (b *batcher) closeQueues() {
	b.mu.Lock()
	qs := b.queues
	b.mu.Unlock()
	for _, q := range qs {
		q.close()
	}
}

// detach forgets every queue and returns them, for the end of Run.
func (b *batcher) detach() []*frameQueue {
	b.mu.Lock()
	defer b.mu.Unlock()
	qs := b.queues
	b.queues = nil
	return qs
}

// run sends batches on out until the queues are drained or hard ends, then
// closes out. After drain is closed (the queues are closed by then) it
// sends what is left without waiting and ends once every queue is empty;
// when hard ends it discards the batch it holds and ends at once.
func (b *batcher) run(drain, hard <-chan struct{}, out chan<- *batch) {
	defer close(out)
	r := &batchRun{b: b, drain: drain, hard: hard, timer: time.NewTimer(time.Hour)}
	r.timer.Stop()
	defer r.timer.Stop()
	for seq := uint64(0); ; seq++ {
		bt := &batch{seq: seq}
		if !r.first(bt) || !r.topUp(bt) || !r.handOver(bt, out) {
			return
		}
	}
}

// batchRun is the state of one batcher.run.
type batchRun struct {
	b           *batcher
	drain, hard <-chan struct{}
	draining    bool
	timer       *time.Timer
}

// drained notes the drain signal and takes what the closed queues hold.
func (r *batchRun) drained(bt *batch) {
	r.draining, r.drain = true, nil
	r.b.fill(bt)
}

// first waits for bt's first frame; false when the run ends.
func (r *batchRun) first(bt *batch) bool {
	for {
		r.b.fill(bt)
		if len(bt.items) > 0 {
			return true
		}
		if r.draining {
			return false // queues closed and empty
		}
		select {
		case <-r.b.wake:
		case <-r.drain:
			r.draining, r.drain = true, nil
		case <-r.hard:
			return false
		}
	}
}

// topUp adds frames until bt is full or maxWait passed since its first.
func (r *batchRun) topUp(bt *batch) bool {
	r.timer.Reset(r.b.maxWait)
	defer r.timer.Stop()
	for len(bt.items) < r.b.maxBatch && !r.draining {
		select {
		case <-r.b.wake:
			r.b.fill(bt)
		case <-r.timer.C:
			return true
		case <-r.drain:
			r.drained(bt)
		case <-r.hard:
			r.b.discard(bt)
			return false
		}
	}
	return true
}

// handOver sends bt to a worker, topping it up while every worker is busy.
func (r *batchRun) handOver(bt *batch, out chan<- *batch) bool {
	for {
		select {
		case out <- bt:
			return true
		case <-r.b.wake:
			r.b.fill(bt)
		case <-r.drain:
			r.drained(bt)
		case <-r.hard:
			r.b.discard(bt)
			return false
		}
	}
}

// fill takes frames round robin from the queues into bt until it holds
// maxBatch frames or the queues are empty, and forgets queues that are
// closed and empty.
func (b *batcher) fill(bt *batch) {
	b.mu.Lock()
	qs := b.queues
	start := b.rr
	b.rr++
	b.mu.Unlock()
	n := len(qs)
	for progress := true; progress && len(bt.items) < b.maxBatch; {
		progress = false
		for i := 0; i < n && len(bt.items) < b.maxBatch; i++ {
			if it, ok := qs[(start+i)%n].pop(); ok {
				bt.items = append(bt.items, it)
				progress = true
			}
		}
	}
	for _, q := range qs {
		if q.finished() {
			b.mu.Lock()
			b.queues = without(b.queues, (*frameQueue).finished)
			b.mu.Unlock()
			return
		}
	}
}

// discard releases every frame of bt at a Kill.
func (b *batcher) discard(bt *batch) {
	for _, it := range bt.items {
		b.drop.discard(it, "killed")
	}
	bt.items = nil
}

// without returns a new slice of the queues for which drop is false.
func without(qs []*frameQueue, drop func(*frameQueue) bool) []*frameQueue {
	kept := make([]*frameQueue, 0, len(qs))
	for _, q := range qs {
		if !drop(q) {
			kept = append(kept, q)
		}
	}
	return kept
}
