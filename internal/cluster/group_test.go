package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"lookout/internal/config"
)

func putSynth(t *testing.T, c *Catalogue, n int) {
	t.Helper()
	for i := range n {
		src := config.Source{ID: fmt.Sprintf("cam%02d", i), URI: fmt.Sprintf("synth://driving?seed=%d", i), Every: time.Second}
		if err := c.Put(context.Background(), src); err != nil {
			t.Fatal(err)
		}
	}
}

func uniq(t *testing.T) (group, topic string) {
	s := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
	return "g-" + s, "cat-" + s
}

// TestGroupBalanceJoinLeave: 3 instances share 12 sources 4/4/4; a 4th
// joining takes exactly 3 and nobody else restarts anything; one leaving
// hands its sources over in about a second.
func TestGroupBalanceJoinLeave(t *testing.T) {
	opts := needBroker(t)
	group, topic := uniq(t)
	var fs []*fakeInstance
	for i := range 3 {
		fs = append(fs, startInstance(t, opts, group, topic, fmt.Sprintf("i%d", i), "d1"))
	}
	t0 := time.Now()
	putSynth(t, fs[0].cat, 12)
	before := waitOwned(t, fs, 12, 4, 4, 15*time.Second)
	t.Logf("3 instances own 4 sources each %s after the puts", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()

	fs = append(fs, startInstance(t, opts, group, topic, "i3", "d1"))
	after := waitOwned(t, fs, 12, 3, 3, 15*time.Second)
	moved := 0
	for id, o := range after {
		if before[id] != o {
			moved++
			if o != "i3" {
				t.Errorf("%s moved from %s to %s, not to the newcomer", id, before[id], o)
			}
		}
	}
	if moved != 3 {
		t.Fatalf("%d sources moved, want 3", moved)
	}
	t.Logf("4th instance took its 3 sources %s after it started", time.Since(t0).Round(time.Millisecond))
	for _, f := range fs[:3] {
		f.mu.Lock()
		for id, n := range f.starts {
			if n != 1 {
				t.Errorf("%s started %s %d times", f.name, id, n)
			}
		}
		f.mu.Unlock()
	}

	t0 = time.Now()
	fs[1].stop() // a graceful leave
	waitOwned(t, []*fakeInstance{fs[0], fs[2], fs[3]}, 12, 4, 4, 5*time.Second)
	t.Logf("graceful leave handed over in %s", time.Since(t0).Round(time.Millisecond))
}

// TestGroupCatalogueChanges: a put reaches an owner, a remove takes the
// source away, both within 2 s; a bad record is skipped and counted.
func TestGroupCatalogueChanges(t *testing.T) {
	opts := needBroker(t)
	group, topic := uniq(t)
	fs := []*fakeInstance{startInstance(t, opts, group, topic, "a", "d1"), startInstance(t, opts, group, topic, "b", "d1")}
	putSynth(t, fs[0].cat, 2)
	waitOwned(t, fs, 2, 1, 1, 15*time.Second)
	if err := fs[0].cat.t.Put(context.Background(), "broken", []byte(`{"id":"broken","uri":`)); err != nil {
		t.Fatal(err)
	}
	if err := fs[0].cat.t.Put(context.Background(), "wrongkey", []byte(`{"id":"other","uri":"synth://driving"}`)); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	putSynth(t, fs[0].cat, 3)
	waitOwned(t, fs, 3, 1, 2, 2*time.Second)
	t.Logf("put reached its owner in %s", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	if err := fs[0].cat.Remove(context.Background(), "cam00"); err != nil {
		t.Fatal(err)
	}
	waitOwned(t, fs, 2, 1, 1, 2*time.Second)
	t.Logf("rm reached its owner in %s", time.Since(t0).Round(time.Millisecond))
	for _, f := range fs {
		if f.cat.Bad() != 2 {
			t.Errorf("%s counted %d bad records, want 2", f.name, f.cat.Bad())
		}
	}
}

// TestGroupRefusesOtherDigest: a newcomer with another model is refused
// with both digests named, and the group keeps its sources.
func TestGroupRefusesOtherDigest(t *testing.T) {
	opts := needBroker(t)
	group, topic := uniq(t)
	a := startInstance(t, opts, group, topic, "a", "sha256:aaa")
	putSynth(t, a.cat, 2)
	waitOwned(t, []*fakeInstance{a}, 2, 2, 2, 15*time.Second)
	b := startInstance(t, opts, group, topic, "b", "sha256:bbb")
	select {
	case err := <-b.done:
		b.cancel = nil
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "sha256:aaa") || !strings.Contains(err.Error(), "sha256:bbb") {
			t.Fatalf("newcomer ended with %v, want a refusal naming both digests", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the newcomer with another model was not refused")
	}
	waitOwned(t, []*fakeInstance{a}, 2, 2, 2, 10*time.Second)
}

func TestEncodeSourceRoundTrip(t *testing.T) {
	hb := 30 * time.Second
	src := config.Source{ID: "c1", URI: "rtsp://h/x", Every: 2 * time.Second, Emit: "changes", Heartbeat: &hb,
		Labels: map[string]string{"site": "n"}, Weight: 4, Realtime: true}
	b, err := EncodeSource(src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseSourceValue("c1", b)
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if got.Every != src.Every || *got.Heartbeat != hb || got.Weight != 4 || got.Labels["site"] != "n" || !got.Realtime {
		t.Fatalf("round trip changed the source: %s -> %+v", b, got)
	}
}
