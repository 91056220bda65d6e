package sink_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"lookout/sink"
	"lookout/spool"
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

// countingMetrics counts every record the Kafka sink and the spool report.
type countingMetrics struct{ delivered, failed, spooled, rejected atomic.Int64 }

func (c *countingMetrics) Delivered(_ string, n int) { c.delivered.Add(int64(n)) }
func (c *countingMetrics) Failed(_ string, n int)    { c.failed.Add(int64(n)) }
func (c *countingMetrics) Spooled(_ string, n int)   { c.spooled.Add(int64(n)) }
func (c *countingMetrics) Dropped(string, int)       {}
func (c *countingMetrics) Rejected(_ string, n int)  { c.rejected.Add(int64(n)) }

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
	addr := sink.NeedBroker(t)
	t.Run("direct", func(t *testing.T) {
		topic := fmt.Sprintf("sink-newtopic-direct-%d", time.Now().UnixNano())
		var log lockedBuffer
		var m countingMetrics
		k, err := sink.NewKafkaSink(sink.KafkaConfig{Brokers: []string{addr}, Topic: topic, AllowAutoTopicCreation: true,
			Metrics: &m, Logger: zerolog.New(&log)})
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		if err := k.Write(ctx, sink.TestRecords("cam-1", 0, 3)); err != nil {
			t.Fatalf("first write to new topic %s: %v", topic, err)
		}
		t.Logf("first write to a new topic took %s", time.Since(start).Round(time.Millisecond))
		if err := k.Write(ctx, sink.TestRecords("cam-1", 3, 2)); err != nil {
			t.Fatalf("second write: %v", err)
		}
		if f, d := m.failed.Load(), m.delivered.Load(); f != 0 || d != 5 {
			t.Errorf("failed=%d delivered=%d, want 0 and 5", f, d)
		}
		if w := warnLines(log.String()); len(w) > 0 {
			t.Errorf("a first write to a new topic logged:\n%s", strings.Join(w, "\n"))
		}
		if got := sink.ReadAll(t, addr, topic, 5, 15*time.Second); len(got) != 5 {
			t.Errorf("read %d records back, want 5", len(got))
		}
	})
	t.Run("spooled", func(t *testing.T) {
		topic := fmt.Sprintf("sink-newtopic-spool-%d", time.Now().UnixNano())
		var log lockedBuffer
		var m countingMetrics
		k, err := sink.NewKafkaSink(sink.KafkaConfig{Brokers: []string{addr}, Topic: topic, AllowAutoTopicCreation: true,
			Metrics: &m, Logger: zerolog.New(&log)})
		if err != nil {
			t.Fatal(err)
		}
		s, err := spool.NewSink(k, spool.SinkConfig{Spool: spool.Config{Dir: t.TempDir()}, Metrics: &m, Logger: zerolog.New(&log)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Write(ctx, sink.TestRecords("cam-1", 0, 4)); err != nil {
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
		if got := sink.ReadAll(t, addr, topic, 4, 15*time.Second); len(got) != 4 {
			t.Errorf("read %d records back, want 4", len(got))
		}
	})
}

// duplicateKeys returns the keys that occur twice in one JSON object of
// line, at any depth. encoding/json accepts duplicates (the last wins), so
// the tokens are walked.
func duplicateKeys(line []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	var dups []string
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				if seen[key] {
					dups = append(dups, key)
				}
				seen[key] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // '}'
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // ']'
			return err
		}
		return nil
	}
	if err := walk(); err != nil && err != io.EOF {
		return nil, err
	}
	return dups, nil
}

func TestDuplicateKeys(t *testing.T) {
	cases := map[string]string{
		`{"a":1,"b":2}`: "",
		`{"a":1,"a":2}`: "a",
		`{"a":{"b":1,"b":2},"c":[{"d":1,"d":1}]}`:         "b,d",
		`{"component":"kafka","x":{"component":"spool"}}`: "",
	}
	for in, want := range cases {
		got, err := duplicateKeys([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if strings.Join(got, ",") != want {
			t.Errorf("%s: duplicates %v, want %q", in, got, want)
		}
	}
}

// Each log line of a spool.Sink and its spool carries one component:
// kafka for broker state, spool for the spool's reports. (The service
// used to pass a logger that already had component=kafka, and the spool
// added component=spool to it: both keys in one line.)
func TestSpoolingSinkLogLinesHaveOneComponent(t *testing.T) {
	dir := t.TempDir()
	var log lockedBuffer
	open := func() *spool.Sink {
		t.Helper()
		// Port 1 refuses connections: every delivery fails at once.
		k, err := sink.NewKafkaSink(sink.KafkaConfig{Brokers: []string{"127.0.0.1:1"}, Topic: "t", Logger: zerolog.New(&log).With().Str("component", "kafka").Logger()})
		if err != nil {
			t.Fatal(err)
		}
		s, err := spool.NewSink(k, spool.SinkConfig{Spool: spool.Config{Dir: dir}, CloseTimeout: 100 * time.Millisecond,
			RetryInterval: time.Hour, Logger: zerolog.New(&log)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	if err := s.Write(context.Background(), sink.TestRecords("cam-1", 0, 2)); err != nil {
		t.Fatal(err)
	}
	_ = s.Close() // records stay spooled
	s = open()    // the spool reports the unsent records it found
	_ = s.Close()

	byComponent := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(log.String()))
	for sc.Scan() {
		line := sc.Bytes()
		dups, err := duplicateKeys(line)
		if err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, line)
		}
		if len(dups) > 0 {
			t.Errorf("keys %v twice in %s", dups, line)
		}
		var f struct{ Component string }
		_ = json.Unmarshal(line, &f)
		byComponent[f.Component]++
	}
	if byComponent["kafka"] == 0 || byComponent["spool"] == 0 || byComponent[""] != 0 {
		t.Errorf("lines per component: %v; want some kafka and spool lines and none without\n%s", byComponent, log.String())
	}
}
