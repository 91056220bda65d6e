package sink

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// lockedBuffer is a log destination written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// countingMetrics counts every callback's records.
type countingMetrics struct{ delivered, failed, spooled atomic.Int64 }

func (c *countingMetrics) metrics() Metrics {
	return Metrics{
		Delivered: func(_ string, n int) { c.delivered.Add(int64(n)) },
		Failed:    func(_ string, n int) { c.failed.Add(int64(n)) },
		Spooled:   func(_ string, n int) { c.spooled.Add(int64(n)) },
	}
}

// logLines returns the JSON log lines at or above level warn.
func warnLines(log string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) {
			out = append(out, l)
		}
	}
	return out
}

// The first write to a topic that does not exist yet creates it (auto
// creation) and is neither logged as an error nor counted as a failure,
// directly or behind the spool: the README promises topics are created on
// first use.
func TestKafkaSinkFirstWriteToANewTopicIsNotAFailure(t *testing.T) {
	addr := needBroker(t)
	t.Run("direct", func(t *testing.T) {
		topic := fmt.Sprintf("sink-newtopic-direct-%d", time.Now().UnixNano())
		var log lockedBuffer
		var m countingMetrics
		k, err := NewKafkaSink(KafkaConfig{Brokers: []string{addr}, Topic: topic, AllowAutoTopicCreation: true,
			Metrics: m.metrics(), Logger: zerolog.New(&log)})
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		if err := k.Write(ctx, testRecords("cam-1", 0, 3)); err != nil {
			t.Fatalf("first write to new topic %s: %v", topic, err)
		}
		t.Logf("first write to a new topic took %s", time.Since(start).Round(time.Millisecond))
		if err := k.Write(ctx, testRecords("cam-1", 3, 2)); err != nil {
			t.Fatalf("second write: %v", err)
		}
		if f, d := m.failed.Load(), m.delivered.Load(); f != 0 || d != 5 {
			t.Errorf("failed=%d delivered=%d, want 0 and 5", f, d)
		}
		if w := warnLines(log.String()); len(w) > 0 {
			t.Errorf("a first write to a new topic logged:\n%s", strings.Join(w, "\n"))
		}
		if got := readAll(t, addr, topic, 5, 15*time.Second); len(got) != 5 {
			t.Errorf("read %d records back, want 5", len(got))
		}
	})
	t.Run("spooled", func(t *testing.T) {
		topic := fmt.Sprintf("sink-newtopic-spool-%d", time.Now().UnixNano())
		var log lockedBuffer
		var m countingMetrics
		k, err := NewKafkaSink(KafkaConfig{Brokers: []string{addr}, Topic: topic, AllowAutoTopicCreation: true,
			Metrics: m.metrics(), Logger: zerolog.New(&log)})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSpoolingSink(k, SpoolingConfig{Spool: SpoolConfig{Dir: t.TempDir()}, Metrics: m.metrics(), Logger: zerolog.New(&log)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Write(ctx, testRecords("cam-1", 0, 4)); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if f, sp, d := m.failed.Load(), m.spooled.Load(), m.delivered.Load(); f != 0 || sp != 0 || d != 4 {
			t.Errorf("failed=%d spooled=%d delivered=%d, want 0, 0 and 4", f, sp, d)
		}
		if w := warnLines(log.String()); len(w) > 0 {
			t.Errorf("a first write to a new topic logged:\n%s", strings.Join(w, "\n"))
		}
		if !s.State().BrokerUp {
			t.Error("broker reported down after the first write to a new topic")
		}
		if got := readAll(t, addr, topic, 4, 15*time.Second); len(got) != 4 {
			t.Errorf("read %d records back, want 4", len(got))
		}
	})
}
