package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
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
	for _, bad := range []string{"", "null", "{}", "[1,2]", `{"source_id":3}`, "not json"} {
		if _, err := formatTailLine([]byte(bad)); err == nil {
			t.Errorf("%q accepted as a record", bad)
		}
	}
}

func TestTailFlagsAreValidated(t *testing.T) {
	cases := map[string][]string{
		"bad broker":   {"tail", "--brokers", "nohost"},
		"empty topic":  {"tail", "--topic", ""},
		"neg count":    {"tail", "--count", "-1"},
		"neg timeout":  {"tail", "--timeout", "-1s"},
		"unknown flag": {"tail", "--nope"},
	}
	for name, args := range cases {
		root := newRootCmd()
		root.SetArgs(args)
		root.SetOut(&bytes.Buffer{})
		root.SetErr(&bytes.Buffer{})
		err := root.Execute()
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%s: got %v, want a usage error (exit 2)", name, err)
		}
	}
}

// tailTestPort is the broker port of this package's tests, apart from the
// sink tests' so both can run at once.
const tailTestPort = "19492"

func TestTailReadsRecordsFromARealBroker(t *testing.T) {
	out, err := exec.Command("../../scripts/kafka.sh", "start", "--port", tailTestPort).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/kafka.sh start --port %s failed (needs java 17+, mvn for the first fetch, kcat): %v\n%s", tailTestPort, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("../../scripts/kafka.sh", "stop", "--port", tailTestPort).Run() })
	addr := "127.0.0.1:" + tailTestPort
	topic := fmt.Sprintf("tail-test-%d", time.Now().UnixNano())
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
	// The first write may race the topic's creation: retry briefly.
	for {
		if err = k.Write(ctx, recs); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	w := kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, RequiredAcks: kafka.RequireAll}
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("not a record")}); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()

	var stdout, stderr bytes.Buffer
	o := tailOptions{brokers: []string{addr}, topic: topic, fromBeginning: true, count: 5, timeout: 15 * time.Second}
	if err := runTail(context.Background(), o, &stdout, &stderr); err != nil {
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
	o.json, o.count, o.timeout = true, 7, 3*time.Second
	err = runTail(context.Background(), o, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "6 of 7") {
		t.Fatalf("tail past the end: %v", err)
	}
	var first sink.Record
	if err := json.Unmarshal([]byte(strings.SplitN(stdout.String(), "\n", 2)[0]), &first); err != nil || first.ID != recs[0].ID {
		t.Fatalf("--json first line: %v %+v", err, first)
	}
	// A group reader sees the same records.
	stdout.Reset()
	o = tailOptions{brokers: []string{addr}, topic: topic, group: "tail-test", fromBeginning: true, count: 5, timeout: 20 * time.Second}
	if err := runTail(context.Background(), o, &stdout, &stderr); err != nil {
		t.Fatalf("tail --group: %v", err)
	}
	// Missing topic and unreachable broker are one-line errors.
	o = tailOptions{brokers: []string{addr}, topic: topic + "-missing", timeout: 5 * time.Second}
	if err := runTail(context.Background(), o, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing topic: %v", err)
	}
	o.brokers = []string{"127.0.0.1:1"}
	if err := runTail(context.Background(), o, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "cannot reach Kafka") {
		t.Fatalf("unreachable broker: %v", err)
	}
}
