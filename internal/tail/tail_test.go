package tail

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"lookout/sink"
)

func TestFormatTailLine(t *testing.T) {
	r := sink.Record{SchemaVersion: 1, Kind: sink.KindCaption, SourceID: "cam-1", PTSMillis: 12500,
		Confidence: 0.8, Caption: "a car on a road", CaptureTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)}
	b, _ := json.Marshal(r)
	line, err := formatTailLine(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := "03:04:05.000  cam-1  pts=12.500s  conf=0.80  a car on a road"; line != want {
		t.Fatalf("got %q, want %q", line, want)
	}
	r.Kind, r.GapMillis = sink.KindGap, 4200
	b, _ = json.Marshal(r)
	if line, _ := formatTailLine(b); !strings.Contains(line, "gap") || !strings.Contains(line, "4.2s") {
		t.Fatalf("gap line: %q", line)
	}
	r.Kind, r.GapMillis, r.HeldMillis = sink.KindHeartbeat, 0, 60000
	b, _ = json.Marshal(r)
	if line, _ := formatTailLine(b); !strings.HasSuffix(line, "[unchanged for 60.0s] a car on a road") {
		t.Fatalf("heartbeat line: %q", line)
	}
	r.Kind, r.PrevCaption, r.HeldMillis = sink.KindCaption, "an empty road", 3000
	b, _ = json.Marshal(r)
	if line, _ := formatTailLine(b); !strings.HasSuffix(line, "a car on a road  [was for 3.0s: an empty road]") {
		t.Fatalf("change line: %q", line)
	}
	for _, bad := range []string{"", "null", "{}", "[1,2]", `{"source_id":3}`, "not json"} {
		if _, err := formatTailLine([]byte(bad)); err == nil {
			t.Errorf("%q accepted as a record", bad)
		}
	}
}

func TestTailKindFilter(t *testing.T) {
	o := Options{Kinds: []string{"heartbeat", "gap"}}
	for value, want := range map[string]bool{
		`{"kind":"caption","source_id":"a"}`:   false,
		`{"kind":"heartbeat","source_id":"a"}`: true,
		`{"kind":"gap","source_id":"a"}`:       true,
		`not json`:                             true, // reported by printTailRecord
	} {
		if got := o.wantKind([]byte(value)); got != want {
			t.Errorf("--kind heartbeat,gap on %s: %v, want %v", value, got, want)
		}
	}
	if (Options{}).wantKind([]byte(`{"kind":"caption"}`)) != true {
		t.Errorf("no --kind must print every kind")
	}
	o = Options{Kinds: []string{"change", "alert"}}
	for value, want := range map[string]bool{
		`{"kind":"caption","source_id":"a"}`:                     false, // a source's first record, or emit: every
		`{"kind":"caption","source_id":"a","prev_caption":"x"}`:  true,
		`{"kind":"heartbeat","source_id":"a","prev_caption":""}`: false,
		`{"kind":"alert","source_id":"a","rule":"r"}`:            true,
	} {
		if got := o.wantKind([]byte(value)); got != want {
			t.Errorf("--kind change,alert on %s: %v, want %v", value, got, want)
		}
	}
	line, err := formatTailLine([]byte(`{"kind":"alert","source_id":"cam","pts_ms":19000,"rule":"crossing","held_ms":2000,"caption":"a pedestrian"}`))
	if err != nil || !strings.Contains(line, "cam  pts=19.000s  conf=0.00  [alert crossing, held 2.0s] a pedestrian") {
		t.Errorf("alert line %q (%v)", line, err)
	}
}

func TestReadyPartitions(t *testing.T) {
	leader := kafka.Broker{Host: "127.0.0.1", Port: 9092, ID: 1}
	md := func(topicErr error, parts ...kafka.Partition) *kafka.MetadataResponse {
		return &kafka.MetadataResponse{Topics: []kafka.Topic{{Name: "t", Error: topicErr, Partitions: parts}}}
	}
	cases := []struct {
		name        string
		md          *kafka.MetadataResponse
		needLeaders bool
		want        int
		wantErr     bool
	}{
		{"missing", md(kafka.UnknownTopicOrPartition), false, 0, false},
		{"being created", md(kafka.LeaderNotAvailable), true, 0, false},
		{"not in the answer", &kafka.MetadataResponse{}, false, 0, false},
		{"ready", md(nil, kafka.Partition{ID: 0, Leader: leader}, kafka.Partition{ID: 1, Leader: leader}), true, 2, false},
		{"no leader yet, just appeared", md(nil, kafka.Partition{ID: 0, Leader: leader}, kafka.Partition{ID: 1}), true, 0, false},
		{"a partition offline, found at once", md(nil, kafka.Partition{ID: 0, Leader: leader}, kafka.Partition{ID: 1}), false, 2, false},
		{"other error", md(kafka.TopicAuthorizationFailed), false, 0, true},
	}
	for _, c := range cases {
		parts, err := readyPartitions(c.md, "t", c.needLeaders)
		if len(parts) != c.want || (err != nil) != c.wantErr {
			t.Errorf("%s: %d partitions, err %v; want %d, error %t", c.name, len(parts), err, c.want, c.wantErr)
		}
	}
}

// The broker tests share the end-to-end tests' broker (LOOKOUT_E2E_KAFKA_PORT,
// started by e2eStartKafka, stopped by TestMain), each on fresh topics.
