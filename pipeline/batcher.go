package pipeline

import (
	"time"
)

// batch is a set of frames captioned together. seq orders batches for the
// deliverer.
type batch struct {
	seq   uint64
	items []queued
}

// batcher forms cross-source batches and hands them to the workers. A batch
// is sent when it holds MaxBatch frames or MaxWait after its first frame was
// taken; while every worker is busy it keeps topping the batch up. After the
// drain signal it sends what is left without waiting and ends once every
// queue is empty; on Kill it releases its batch and ends.
func (p *Pipeline) batcher(work chan<- *batch) {
	defer close(work)
	max := p.cfg.MaxBatch
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	drain := (<-chan struct{})(p.drainCh)
	draining := false
	hard := p.hardCtx.Done()
	var seq uint64

	for {
		b := &batch{seq: seq}
		// Wait for a first frame.
		for len(b.items) == 0 {
			p.fill(b, max)
			if len(b.items) > 0 {
				break
			}
			if draining {
				return // queues closed and empty
			}
			select {
			case <-p.wake:
			case <-drain:
				draining, drain = true, nil
			case <-hard:
				return
			}
		}
		// Top up until full or MaxWait passed.
		timer.Reset(p.cfg.MaxWait)
	collect:
		for len(b.items) < max && !draining {
			select {
			case <-p.wake:
				p.fill(b, max)
			case <-timer.C:
				break collect
			case <-drain:
				draining, drain = true, nil
				p.fill(b, max)
			case <-hard:
				p.releaseBatch(b, "killed")
				return
			}
		}
		timer.Stop()
		// Hand over; keep topping up while every worker is busy.
		for sent := false; !sent; {
			select {
			case work <- b:
				sent = true
				seq++
			case <-p.wake:
				p.fill(b, max)
			case <-drain:
				draining, drain = true, nil
				p.fill(b, max)
			case <-hard:
				p.releaseBatch(b, "killed")
				return
			}
		}
	}
}

// fill takes frames round robin from the source queues into b until it holds
// max frames or the queues are empty, and forgets queues that are closed and
// empty. The starting queue rotates so that no source is favoured.
func (p *Pipeline) fill(b *batch, max int) {
	p.mu.Lock()
	qs := p.queues
	start := p.rr
	p.rr++
	p.mu.Unlock()
	n := len(qs)
	for progress := true; progress && len(b.items) < max; {
		progress = false
		for i := 0; i < n && len(b.items) < max; i++ {
			if it, ok := qs[(start+i)%n].pop(); ok {
				b.items = append(b.items, it)
				progress = true
			}
		}
	}
	finished := false
	for _, q := range qs {
		if q.finished() {
			finished = true
			break
		}
	}
	if finished {
		p.mu.Lock()
		kept := p.queues[:0:0]
		for _, q := range p.queues {
			if !q.finished() {
				kept = append(kept, q)
			}
		}
		p.queues = kept
		p.mu.Unlock()
	}
}

// releaseBatch discards every frame of b.
func (p *Pipeline) releaseBatch(b *batch, reason string) {
	for _, it := range b.items {
		p.discard(it, reason)
	}
	b.items = nil
}
