package pipeline

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"lookout/ingest"
)

func TestReconcileAddsRemovesAndRestartsChangedSources(t *testing.T) {
	h := newHarness(t, Config{MaxWait: 2 * time.Millisecond}, nil)
	var mu sync.Mutex
	made := map[string][]*fakeSource{}
	opened := func(id string) []*fakeSource {
		mu.Lock()
		defer mu.Unlock()
		return append([]*fakeSource(nil), made[id]...)
	}
	desired := func(idx int, version string) Desired {
		id := fmt.Sprint("src", idx)
		return Desired{
			Spec:    SourceSpec{ID: id, Live: true},
			Version: version,
			Open: func(context.Context) (ingest.Source, error) {
				fs := &fakeSource{idx: idx, n: -1, live: true, interval: 2 * time.Millisecond, emitted: &h.emitted}
				mu.Lock()
				made[id] = append(made[id], fs)
				mu.Unlock()
				return fs, nil
			},
		}
	}
	if _, _, _, err := h.p.Reconcile([]Desired{desired(0, "v1"), desired(1, "v1")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := h.run(ctx)
	s := h.sinks[0]
	waitFor(t, "both sources", 5*time.Second, func() bool { return s.count("src0") > 3 && s.count("src1") > 3 })

	added, removed, restarted, err := h.p.Reconcile([]Desired{desired(0, "v1"), desired(1, "v2"), desired(2, "v1")})
	if err != nil || fmt.Sprint(added, removed, restarted) != "[src2] [] [src1]" {
		t.Fatalf("Reconcile = added %v removed %v restarted %v err %v", added, removed, restarted, err)
	}
	waitFor(t, "the added source", 5*time.Second, func() bool { return s.count("src2") > 3 })
	waitFor(t, "the restarted source", 5*time.Second, func() bool { return len(opened("src1")) == 2 })
	if o := opened("src0"); len(o) != 1 || o[0].closed.Load() != 0 {
		t.Errorf("unchanged src0 was disturbed: opened %d times", len(o))
	}
	if o := opened("src1"); len(o) != 2 || o[0].closed.Load() != 1 {
		t.Errorf("changed src1: opened %d times, want 2 with the first closed", len(o))
	}

	_, removed, _, err = h.p.Reconcile([]Desired{desired(2, "v1"), desired(2, "v1")})
	if err == nil || !strings.Contains(err.Error(), "listed twice") || fmt.Sprint(removed) != "[src0 src1]" {
		t.Errorf("Reconcile with a duplicate: removed %v err %v", removed, err)
	}
	if st := h.p.Sources(); len(st) != 1 || st[0].ID != "src2" || st[0].Version != "v1" {
		t.Errorf("Sources() = %+v, want src2 v1 only", st)
	}
	cancel()
	if err, ok := wait(5 * time.Second); !ok || err != nil {
		t.Fatalf("Run: ended %v, err %v", ok, err)
	}
	h.checkReleased(t)
}
