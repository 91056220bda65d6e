package cluster

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"lookout/internal/kafkatest"
)

// These tests run a real broker, started by scripts/kafka.sh on
// LOOKOUT_TEST_KAFKA_PORT+5 (default 19397), a port of their own so that
// the sink's tests, which stop and restart theirs, never disturb them.

var broker = kafkatest.New(5)

func TestMain(m *testing.M) {
	code := m.Run()
	broker.Close()
	os.Exit(code)
}

func needBroker(t *testing.T) []kgo.Opt {
	return []kgo.Opt{kgo.SeedBrokers(broker.Start(t))}
}

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

// fakeInstance is a Member with a catalogue that records what it is told
// to run, as the service would run it.
type fakeInstance struct {
	name   string
	cat    *Catalogue
	m      *Member
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	owned  []string
	starts map[string]int // how often each source was (re)started here
}

func (f *fakeInstance) Owned() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.owned...)
}

func startInstance(t *testing.T, opts []kgo.Opt, group, topic, name, digest string) *fakeInstance {
	t.Helper()
	ctx := context.Background()
	f := &fakeInstance{name: name, starts: map[string]int{}, done: make(chan error, 1)}
	cat, err := OpenCatalogue(ctx, opts, CatalogueConfig{Topic: topic, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := cat.WaitSynced(sctx); err != nil {
		t.Fatal(err)
	}
	f.cat = cat
	m, err := NewMember(opts, MemberConfig{Group: group, Instance: name, Digest: digest,
		SessionTimeout: 6 * time.Second, Heartbeat: 300 * time.Millisecond,
		Owned: f.Owned,
		Work:  func() []Work { return WorkOf(cat.Sources()) },
		OnAssign: func(_ int32, ids []string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			had := map[string]bool{}
			for _, id := range f.owned {
				had[id] = true
			}
			for _, id := range ids {
				if !had[id] {
					f.starts[id]++
				}
			}
			f.owned = ids
		},
		Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	rctx, rcancel := context.WithCancel(ctx)
	f.cancel = rcancel
	go func() {
		for {
			select {
			case <-rctx.Done():
				return
			case <-cat.Changed():
				m.CatalogueChanged()
			}
		}
	}()
	go func() { f.done <- m.Run(rctx) }()
	t.Cleanup(func() { f.stop(); cat.Close() })
	return f
}

func (f *fakeInstance) stop() {
	if f.cancel != nil {
		f.cancel()
		<-f.done
		f.cancel = nil
	}
}

// waitOwned waits until the instances own want sources in all, each one
// between lo and hi.
func waitOwned(t *testing.T, fs []*fakeInstance, want, lo, hi int, within time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		owner := map[string]string{}
		ok := true
		for _, f := range fs {
			o := f.Owned()
			if len(o) < lo || len(o) > hi {
				ok = false
			}
			for _, id := range o {
				if _, dup := owner[id]; dup {
					ok = false
				}
				owner[id] = f.name
			}
		}
		if ok && len(owner) == want {
			return owner
		}
		if time.Now().After(deadline) {
			var s string
			for _, f := range fs {
				s += fmt.Sprintf(" %s=%v", f.name, f.Owned())
			}
			t.Fatalf("after %s: want %d sources, %d..%d each; have%s", within, want, lo, hi, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
