package pipeline

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"lookout/sink"
	"lookout/spool"
)

// Sinks are labelled by what they are (kafka, jsonl), not by their
// position, so that the pipeline's sink metrics and the sink package's
// (lookout_sink_delivered_total{sink="kafka"}) agree; a repeated name gets
// a number and an unnamed sink its position.
func TestSinkLabelsAreStableNames(t *testing.T) {
	j1, j2 := sink.NewJSONLWriter(io.Discard), sink.NewJSONLWriter(io.Discard)
	k, err := sink.NewKafkaSink(sink.KafkaConfig{Brokers: []string{"127.0.0.1:1"}, Topic: "t"})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.NewSink(k, spool.SinkConfig{Spool: spool.Config{Dir: t.TempDir()}, CloseTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	p := New(Config{}, nil, []sink.Sink{sp, j1, j2, &fakeSink{}}, zerolog.Nop(), nil)
	var got []string
	for _, s := range p.sinks {
		got = append(got, s.name)
	}
	if want := "kafka jsonl jsonl2 sink3"; strings.Join(got, " ") != want {
		t.Errorf("sink labels %q, want %q", strings.Join(got, " "), want)
	}
}
