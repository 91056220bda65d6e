package sink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"lookout/sink"
	"lookout/spool"
)

// checkDelivery verifies that msgs hold every id in want, per-source order
// by pts once duplicates are dropped, and returns the duplicate count.
func checkDelivery(t *testing.T, msgs []kafka.Message, want map[string]sink.Record) (dups int) {
	t.Helper()
	seen := map[string]bool{}
	lastPTS := map[string]int64{}
	for _, m := range msgs {
		var r sink.Record
		if err := json.Unmarshal(m.Value, &r); err != nil {
			t.Fatalf("value is not a record: %v", err)
		}
		if string(m.Key) != r.SourceID {
			t.Fatalf("key %q for source %q", m.Key, r.SourceID)
		}
		if seen[r.ID] {
			dups++
			continue
		}
		seen[r.ID] = true
		if last, ok := lastPTS[r.SourceID]; ok && r.PTSMillis <= last {
			t.Errorf("source %s: pts %d after %d (out of order)", r.SourceID, r.PTSMillis, last)
		}
		lastPTS[r.SourceID] = r.PTSMillis
	}
	lost := 0
	for id, r := range want {
		if !seen[id] {
			lost++
			if lost <= 5 {
				t.Errorf("lost record %s (source %s pts %d)", id, r.SourceID, r.PTSMillis)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d records lost", lost, len(want))
	}
	return dups
}

func uniqueIDs(msgs []kafka.Message) int {
	seen := map[string]bool{}
	for _, m := range msgs {
		seen[sink.HeaderID(m)] = true
	}
	return len(seen)
}

// The broker is stopped (gracefully, then by SIGKILL) while four sources
// write, and restarted: every record arrives, in per-source order;
// duplicates are counted.
func TestSpoolingSinkSurvivesBrokerOutage(t *testing.T) {
	for _, kill := range []bool{false, true} {
		name := "graceful-stop"
		if kill {
			name = "sigkill"
		}
		t.Run(name, func(t *testing.T) { testBrokerOutage(t, kill) })
	}
}

func testBrokerOutage(t *testing.T, kill bool) {
	addr := sink.NeedBroker(t)
	topic := sink.CreateTopic(t, addr, "sink-outage", 2)
	k, err := sink.NewKafkaSink(sink.KafkaConfig{Brokers: []string{addr}, Topic: topic, WriteTimeout: 3 * time.Second, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	var cm countingMetrics
	s, err := spool.NewSink(k, spool.SinkConfig{
		Spool:            spool.Config{Dir: t.TempDir(), MaxBytes: 8 << 20},
		SendTimeout:      3 * time.Second,
		RetryInterval:    100 * time.Millisecond,
		MaxRetryInterval: 500 * time.Millisecond,
		Logger:           zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
		Metrics:          &cm,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	sources := []string{"cam-1", "cam-2", "cam-3", "cam-4"}
	want := map[string]sink.Record{}
	round := 0
	write := func() {
		var batch []sink.Record
		for _, src := range sources {
			r := sink.TestRecord(src, round)
			batch = append(batch, r)
			want[r.ID] = r
		}
		round++
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Write(ctx, batch); err != nil {
			t.Fatalf("write round %d: %v (a spooling write must succeed while the disk has room)", round, err)
		}
	}
	// A writer keeps going through the outage, like a pipeline would.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeMu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				writeMu.Lock()
				write()
				writeMu.Unlock()
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	if kill {
		sink.KillBroker(t)
	} else {
		sink.StopBroker(t)
	}
	// Wait until the sink noticed and spooled something.
	deadline := time.Now().Add(10 * time.Second)
	for st := s.State(); st.BrokerUp || st.SpoolRecords == 0; st = s.State() {
		if time.Now().After(deadline) {
			t.Fatalf("sink never reported the broker down with records spooled: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	down := s.State()
	if down.OldestUnsentAge < 500*time.Millisecond || down.SpoolBytes <= 0 || down.LastError == "" {
		t.Fatalf("state while down: %+v", down)
	}
	t.Logf("while down: %d records, %d bytes spooled, oldest %s", down.SpoolRecords, down.SpoolBytes, down.OldestUnsentAge)
	t0 := time.Now()
	sink.RestartBroker(t)
	t.Logf("broker restarted in %s", time.Since(t0).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t1 := time.Now()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("spool did not drain after the restart: %v (state %+v)", err, s.State())
	}
	if st := s.State(); !st.BrokerUp || st.SpoolRecords != 0 || st.OldestUnsentAge != 0 {
		t.Fatalf("state after the drain: %+v", st)
	}
	t.Logf("drained in %s after the restart finished", time.Since(t1).Round(time.Millisecond))

	msgs := sink.ReadUntil(t, addr, topic, func(ms []kafka.Message) bool { return uniqueIDs(ms) >= len(want) }, 20*time.Second)
	if os.Getenv("LOOKOUT_DEBUG_ORDER") != "" {
		var seq []string
		for _, m := range msgs {
			if string(m.Key) == "cam-1" {
				var r sink.Record
				_ = json.Unmarshal(m.Value, &r)
				seq = append(seq, fmt.Sprintf("%d@%d", r.PTSMillis/1000, m.Offset))
			}
		}
		t.Logf("cam-1 sequence: %v", seq)
	}
	dups := checkDelivery(t, msgs, want)
	spooled := cm.spooled.Load()
	if spooled == 0 {
		t.Fatal("no record went through the spool")
	}
	t.Logf("%d records written (%d rounds x %d sources), %d spooled, %d read back, %d duplicates, 0 lost",
		len(want), round, len(sources), spooled, len(msgs), dups)
	fmt.Printf("outage (kill=%t): records=%d spooled=%d duplicates=%d lost=0\n", kill, len(want), spooled, dups)
}

// Records spooled by a sink that could never reach its broker are sent by
// the next sink opened on the same directory (a restart of lookout).
func TestSpoolingSinkDeliversSpoolLeftByPreviousRun(t *testing.T) {
	addr := sink.NeedBroker(t)
	topic := sink.CreateTopic(t, addr, "sink-resume", 1)
	dir := t.TempDir()
	dead, err := sink.NewKafkaSink(sink.KafkaConfig{Brokers: []string{"127.0.0.1:1"}, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	s1, err := spool.NewSink(dead, spool.SinkConfig{Spool: spool.Config{Dir: dir}, CloseTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]sink.Record{}
	for i := 0; i < 10; i++ {
		batch := append(sink.TestRecords("file-a", i*3, 3), sink.TestRecords("file-b", i*3, 3)...)
		for _, r := range batch {
			want[r.ID] = r
		}
		if err := s1.Write(context.Background(), batch); err != nil {
			t.Fatalf("write with the broker unreachable: %v", err)
		}
	}
	if st := s1.State(); st.BrokerUp || st.SpoolRecords != 60 {
		t.Fatalf("state with an unreachable broker: %+v", st)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	live, err := sink.NewKafkaSink(sink.KafkaConfig{Brokers: []string{addr}, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := spool.NewSink(live, spool.SinkConfig{Spool: spool.Config{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	// A new record written now must come after the spooled ones.
	late := sink.TestRecord("file-a", 30)
	want[late.ID] = late
	if err := s2.Write(context.Background(), []sink.Record{late}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	msgs := sink.ReadUntil(t, addr, topic, func(ms []kafka.Message) bool { return uniqueIDs(ms) >= len(want) }, 15*time.Second)
	if dups := checkDelivery(t, msgs, want); dups != 0 {
		t.Fatalf("%d duplicates without any retry", dups)
	}
}

// A record the broker refuses for good (larger than the topic's
// max.message.bytes) is moved to rejected.jsonl instead of blocking the
// records behind it forever; the records around it are delivered in order.
func TestSpoolingSinkSetsAsideARecordTheBrokerRefuses(t *testing.T) {
	addr := sink.NeedBroker(t)
	topic := fmt.Sprintf("sink-poison-%d", time.Now().UnixNano())
	conn, err := kafka.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	err = conn.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: "4096"}}})
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	sink.CreateTopicWait(t, addr, topic, 1)
	k, err := sink.NewKafkaSink(sink.KafkaConfig{Brokers: []string{addr}, Topic: topic, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	var cm countingMetrics
	dir := t.TempDir()
	s, err := spool.NewSink(k, spool.SinkConfig{Spool: spool.Config{Dir: dir}, RetryInterval: 50 * time.Millisecond,
		Metrics: &cm})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs := sink.TestRecords("cam-p", 0, 4)
	recs[1].Caption = strings.Repeat("too long ", 1000)
	if err := s.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("the spool did not drain past the refused record: %v (%+v)", err, s.State())
	}
	if st := s.State(); st.Rejected != 1 || cm.rejected.Load() != 1 {
		t.Fatalf("rejected: state %d, metric %d, want 1", st.Rejected, cm.rejected.Load())
	}
	want := map[string]sink.Record{recs[0].ID: recs[0], recs[2].ID: recs[2], recs[3].ID: recs[3]}
	msgs := sink.ReadUntil(t, addr, topic, func(ms []kafka.Message) bool { return uniqueIDs(ms) >= 3 }, 10*time.Second)
	checkDelivery(t, msgs, want)
	for _, m := range msgs {
		if sink.HeaderID(m) == recs[1].ID {
			t.Fatal("the oversized record reached the topic")
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, spool.RejectedFile))
	if err != nil {
		t.Fatal(err)
	}
	var r sink.Record
	if err := json.Unmarshal(b, &r); err != nil || r.ID != recs[1].ID {
		t.Fatalf("rejected.jsonl holds %q, want record %s", b, recs[1].ID)
	}
}
