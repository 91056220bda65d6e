package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"lookout/internal/tail"
	"lookout/sink"
)

// The broker tests share the end-to-end tests' broker (LOOKOUT_E2E_KAFKA_PORT,
// started by e2eStartKafka, stopped by TestMain), each on fresh topics.

func TestTailReadsRecordsFromARealBroker(t *testing.T) {
	addr := e2eStartKafka(t)
	topic := e2eUniqueTopic("tail-test")
	k, err := sink.NewKafkaSink(sink.KafkaConfig{Brokers: []string{addr}, Topic: topic, AllowAutoTopicCreation: true})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	var recs []sink.Record
	for i := 0; i < 5; i++ {
		pts := int64(i) * 1000
		recs = append(recs, sink.Record{SchemaVersion: 1, ID: sink.RecordID("cam-t", "", pts, "d", sink.KindCaption),
			Kind: sink.KindCaption, SourceID: "cam-t", PTSMillis: pts, Caption: fmt.Sprintf("caption %d", i), CaptureTime: time.Now()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The first write creates the topic: no retry needed.
	if err := k.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	w := kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("not a record")}); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()

	var stdout, stderr bytes.Buffer
	o := tail.Options{Brokers: []string{addr}, Topic: topic, FromBeginning: true, Count: 5, Timeout: 15 * time.Second}
	if err := tail.Run(context.Background(), o, &stdout, &stderr); err != nil {
		t.Fatalf("tail: %v\nstderr: %s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("got %d lines:\n%s", len(lines), stdout.String())
	}
	for i, l := range lines {
		if !strings.Contains(l, "cam-t") || !strings.HasSuffix(l, fmt.Sprintf("caption %d", i)) {
			t.Fatalf("line %d: %q", i, l)
		}
	}
	// --json prints the raw values; asking for more than there are times out
	// with an error that says how many came.
	stdout.Reset()
	o.JSON, o.Count, o.Timeout = true, 7, 3*time.Second
	err = tail.Run(context.Background(), o, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "6 of 7") {
		t.Fatalf("tail past the end: %v", err)
	}
	var first sink.Record
	if err := json.Unmarshal([]byte(strings.SplitN(stdout.String(), "\n", 2)[0]), &first); err != nil || first.ID != recs[0].ID {
		t.Fatalf("--json first line: %v %+v", err, first)
	}
	// A group reader sees the same records.
	stdout.Reset()
	o = tail.Options{Brokers: []string{addr}, Topic: topic, Group: "tail-test", FromBeginning: true, Count: 5, Timeout: 20 * time.Second}
	if err := tail.Run(context.Background(), o, &stdout, &stderr); err != nil {
		t.Fatalf("tail --group: %v", err)
	}
	// An unreachable broker is a one-line error.
	o = tail.Options{Brokers: []string{"127.0.0.1:1"}, Topic: topic, Timeout: 5 * time.Second}
	if err := tail.Run(context.Background(), o, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "cannot reach Kafka") {
		t.Fatalf("unreachable broker: %v", err)
	}
}

// tailRecord is caption record i of source cam-t, as JSON.
func tailRecord(i int) []byte {
	pts := int64(i) * 1000
	b, _ := json.Marshal(sink.Record{SchemaVersion: 1, ID: sink.RecordID("cam-t", "", pts, "d", sink.KindCaption),
		Kind: sink.KindCaption, SourceID: "cam-t", PTSMillis: pts, Caption: fmt.Sprintf("caption %d", i), CaptureTime: time.Now()})
	return b
}

// tailCaptions returns the record numbers of tail's summary lines.
func tailCaptions(t *testing.T, out string) []int {
	t.Helper()
	var got []int
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var i int
		if _, err := fmt.Sscanf(l[strings.LastIndex(l, "caption "):], "caption %d", &i); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		got = append(got, i)
	}
	return got
}

// Successive `tail --group G --count 2` runs read each record exactly once:
// the group's offset is committed for what a run printed, never for the
// record its reader fetched after the last one printed (issue #16: three
// runs printed offsets 0-1, 3-4, 6-7). A value that is not a record is
// reported on stderr once and committed with the records around it.
func TestTailGroupCommitsOnlyWhatItPrinted(t *testing.T) {
	addr := e2eStartKafka(t)
	topic := e2eUniqueTopic("tail-group")
	e2eCreateTopic(t, addr, topic) // one partition: offsets in write order
	// Records 0-6 at offsets 0-2 and 4-7; offset 3 is not a record.
	var msgs []kafka.Message
	for i := 0; i < 7; i++ {
		if i == 3 {
			msgs = append(msgs, kafka.Message{Value: []byte("not a record")})
		}
		msgs = append(msgs, kafka.Message{Key: []byte("cam-t"), Value: tailRecord(i)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A Transport of its own: the shared default one caches metadata from
	// before the topic existed.
	w := kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()

	group := "tail-group-" + topic
	var runs [][]int
	var reports int
	for run := 1; run <= 4; run++ {
		var stdout, stderr bytes.Buffer
		o := tail.Options{Brokers: []string{addr}, Topic: topic, Group: group, FromBeginning: true, Count: 2, Timeout: 20 * time.Second}
		if run == 4 {
			o.Timeout = 4 * time.Second // one record is left: it times out with 1 of 2
		}
		start := time.Now()
		err := tail.Run(context.Background(), o, &stdout, &stderr)
		if run < 4 && err != nil {
			t.Fatalf("run %d: %v\nstderr: %s", run, err, stderr.String())
		}
		if run == 4 && (err == nil || !strings.Contains(err.Error(), "1 of 2")) {
			t.Fatalf("run 4: %v, want a timeout with 1 of 2 records", err)
		}
		got := tailCaptions(t, stdout.String())
		t.Logf("run %d: records %v in %s", run, got, time.Since(start).Round(time.Millisecond))
		runs = append(runs, got)
		reports += strings.Count(stderr.String(), "not a lookout record")
	}
	if got, want := fmt.Sprint(runs), "[[0 1] [2 3] [4 5] [6]]"; got != want {
		t.Errorf("records per run %s, want %s", got, want)
	}
	if reports != 1 {
		t.Errorf("the value that is not a record was reported %d times, want 1", reports)
	}
	// The group's committed offset is the end of the partition: nothing
	// is left behind, nothing was committed twice over.
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	res, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0}}})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Topics[topic]; len(p) != 1 || p[0].CommittedOffset != 8 {
		t.Errorf("committed offset %+v, want 8", p)
	}
}

// tail on a topic that does not exist yet waits for it (without creating
// it), says so once on stderr, and prints the records written once it
// appears, from its first one.
func TestTailWaitsForATopicThatDoesNotExistYet(t *testing.T) {
	addr := e2eStartKafka(t)
	for _, group := range []string{"", "tail-wait"} {
		name := "partitions"
		if group != "" {
			name = "group"
		}
		t.Run(name, func(t *testing.T) {
			topic := e2eUniqueTopic("tail-wait")
			var stdout, stderr e2eLockedBuffer
			o := tail.Options{Brokers: []string{addr}, Topic: topic, Group: group, Count: 2, Timeout: 60 * time.Second}
			done := make(chan error, 1)
			go func() { done <- tail.Run(context.Background(), o, &stdout, &stderr) }()
			note := fmt.Sprintf("tail: topic %q does not exist yet on %s; waiting (Ctrl-C to stop)", topic, addr)
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(stderr.String(), note) {
				select {
				case err := <-done:
					t.Fatalf("tail ended before the topic existed: %v\nstderr: %s", err, stderr.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("no waiting note after 20s; stderr: %q", stderr.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(time.Second) // several polls: tail must not create the topic
			if tailTopicExists(t, addr, topic) {
				t.Fatal("tail created the topic it waits for")
			}
			k, err := sink.NewKafkaSink(sink.KafkaConfig{Brokers: []string{addr}, Topic: topic, AllowAutoTopicCreation: true})
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			var recs []sink.Record
			for i := 0; i < 2; i++ {
				var r sink.Record
				_ = json.Unmarshal(tailRecord(i), &r)
				recs = append(recs, r)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := k.Write(ctx, recs); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("tail: %v\nstderr: %s", err, stderr.String())
				}
			case <-time.After(40 * time.Second):
				t.Fatalf("tail printed %q 40s after the topic appeared", stdout.String())
			}
			if got := fmt.Sprint(tailCaptions(t, stdout.String())); got != "[0 1]" {
				t.Errorf("records %s, want [0 1]", got)
			}
			if n := strings.Count(stderr.String(), "does not exist yet"); n != 1 {
				t.Errorf("waiting note written %d times, want once:\n%s", n, stderr.String())
			}
		})
	}
	// --timeout bounds the wait: exit 1 with a line that names the topic.
	topic := e2eUniqueTopic("tail-never")
	var stdout, stderr bytes.Buffer
	o := tail.Options{Brokers: []string{addr}, Topic: topic, Timeout: 1500 * time.Millisecond}
	err := tail.Run(context.Background(), o, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "still does not exist") || !strings.Contains(err.Error(), "check --topic") {
		t.Fatalf("missing topic with --timeout: %v", err)
	}
	if tailTopicExists(t, addr, topic) {
		t.Error("tail created the missing topic")
	}
	// Ctrl-C while waiting ends it without an error.
	o.Timeout = 0
	cctx, ccancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, ccancel)
	if err := tail.Run(cctx, o, &stdout, &stderr); err != nil {
		t.Errorf("Ctrl-C while waiting: %v, want nil", err)
	}
}

// tailTopicExists asks the broker directly (no cache, no auto-creation).
func tailTopicExists(t *testing.T, addr, topic string) bool {
	t.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second, Transport: tr}
	md, err := client.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range md.Topics {
		if tp.Name == topic && tp.Error == nil {
			return true
		}
	}
	return false
}
