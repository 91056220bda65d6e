package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"lookout/sink"
)

// Unit tests of the deliverer: the test sends captioned batches on the in
// edge; fake sinks and the OnDelivered hook are the out edge.

// deliverKit is a deliverer fed by the test.
type deliverKit struct {
	*stageKit
	d     *deliverer
	in    chan *doneBatch
	ended chan error

	mu    sync.Mutex
	acked []string // source/pts in OnDelivered order
}

func newDeliverKit(t *testing.T, sinks ...*fakeSink) *deliverKit {
	k := &deliverKit{stageKit: newStageKit(t), in: make(chan *doneBatch), ended: make(chan error, 1)}
	raw := make([]sink.Sink, len(sinks))
	for i, s := range sinks {
		raw[i] = s
	}
	k.d = &deliverer{sinks: newSinkSlots(raw, k.m), emitter: newEmitter(),
		onDelivered: func(src string, pts int64) {
			k.mu.Lock()
			defer k.mu.Unlock()
			k.acked = append(k.acked, fmt.Sprintf("%s/%d", src, pts))
		},
		timeout: time.Second, retryMin: time.Millisecond, retryMax: 5 * time.Millisecond,
		log: zerolog.Nop(), limit: k.drop.limit, m: k.m, lost: k.lost}
	go func() { k.ended <- k.d.run(context.Background(), k.in) }()
	return k
}

func (k *deliverKit) acks() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.acked...)
}

// done is captioned batch seq holding one caption record per frame, each
// named by a one-letter source and its pts ("a4").
func done(seq uint64, emit Emit, frames ...string) *doneBatch {
	d := &doneBatch{seq: seq}
	for _, f := range frames {
		src := f[:1]
		pts, _ := strconv.ParseInt(f[1:], 10, 64)
		d.recs = append(d.recs, sink.Record{Kind: sink.KindCaption, SourceID: src, PTSMillis: pts, Caption: "same"})
		d.emits = append(d.emits, emit)
		d.acks = append(d.acks, ack{source: src, pts: pts, captured: time.Now()})
	}
	return d
}

func names(recs []sink.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, fmt.Sprintf("%s/%d", r.SourceID, r.PTSMillis))
	}
	return out
}

// Batches finish out of order (three workers); the sinks and OnDelivered
// still see every source's records in order.
func TestDelivererKeepsPerSourceOrderWhenBatchesCompleteOutOfOrder(t *testing.T) {
	s := &fakeSink{name: "mem"}
	k := newDeliverKit(t, s)
	k.in <- done(2, Emit{}, "a4", "b4")
	k.in <- done(1, Emit{}, "a2", "b2", "a3")
	time.Sleep(20 * time.Millisecond)
	if n := len(s.records()); n != 0 {
		t.Errorf("%d records written before batch 0 arrived: batch 1 and 2 must wait for it", n)
	}
	k.in <- done(0, Emit{}, "a0", "b0", "a1")
	close(k.in)
	if err := <-k.ended; err != nil {
		t.Fatal(err)
	}
	want := "[a/0 b/0 a/1 a/2 b/2 a/3 a/4 b/4]"
	if got := fmt.Sprint(names(s.records())); got != want {
		t.Errorf("sink got %s, want %s", got, want)
	}
	if got := fmt.Sprint(k.acks()); got != want {
		t.Errorf("OnDelivered saw %s, want %s", got, want)
	}
}

// OnDelivered (the checkpoints) advances only once every sink accepted the
// records: a sink that fails is retried, and the frames wait for it.
func TestDelivererAcksOnlyAfterEverySinkAccepted(t *testing.T) {
	release := make(chan struct{})
	flaky := &fakeSink{name: "flaky", failWrite: func(int) string {
		select {
		case <-release:
			return ""
		default:
			return "fail"
		}
	}}
	good := &fakeSink{name: "good"}
	k := newDeliverKit(t, good, flaky)
	k.in <- done(0, Emit{}, "a0", "a1")
	waitFor(t, "the good sink's write and the flaky one's retries", 2*time.Second, func() bool {
		return len(good.records()) == 2 && k.m.get("SinkFailed", "flaky") >= 20 // 10 failed attempts: it keeps retrying
	})
	if got := k.acks(); len(got) != 0 {
		t.Errorf("OnDelivered saw %v while a sink had not accepted them", got)
	}
	if err := k.d.sinks[1].ready(); err == nil {
		t.Error("the failing sink reports ready")
	}
	close(release)
	waitFor(t, "the acks", 2*time.Second, func() bool { return len(k.acks()) == 2 })
	close(k.in)
	if err := <-k.ended; err != nil {
		t.Fatal(err)
	}
	if len(flaky.records()) != 2 || len(good.records()) != 2 || k.d.sinks[1].ready() != nil {
		t.Errorf("flaky holds %d, good %d records (want 2 each, once); flaky ready: %v", len(flaky.records()), len(good.records()), k.d.sinks[1].ready())
	}
}

// Records the emit policy keeps back are not written, but their frames
// are acknowledged in order all the same (a replay's checkpoint moves).
func TestDelivererAcksSuppressedRecords(t *testing.T) {
	s := &fakeSink{name: "mem"}
	k := newDeliverKit(t, s)
	changes := Emit{Changes: true}
	k.in <- done(0, changes, "a0", "a1", "a2")
	close(k.in)
	if err := <-k.ended; err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(names(s.records())); got != "[a/0]" {
		t.Errorf("sink got %s, want only the first of three equal captions", got)
	}
	if got := fmt.Sprint(k.acks()); got != "[a/0 a/1 a/2]" {
		t.Errorf("OnDelivered saw %s, want every frame", got)
	}
	if got := k.m.get("RecordsSuppressed", "a"); got != 2 {
		t.Errorf("suppressed %v, want 2", got)
	}
}
