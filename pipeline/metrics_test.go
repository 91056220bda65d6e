package pipeline

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"lookout/sink"
)

// The service registers every package's metrics on one registry, so names
// must not collide with the sink package's.
func TestMetricsShareARegistryWithSinkMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := sink.NewPromMetrics(reg, "kafka"); err != nil {
		t.Fatal(err)
	}
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("pipeline metrics collide with sink metrics: %v", err)
	}
	m.FramesReceived.WithLabelValues("a").Inc()
	m.SinkFailed.WithLabelValues("kafka").Inc()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "lookout_") {
			t.Errorf("metric %s lacks the lookout_ prefix", f.GetName())
		}
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering the pipeline metrics twice succeeded")
	}
}

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
	sp, err := sink.NewSpoolingSink(k, sink.SpoolingConfig{Spool: sink.SpoolConfig{Dir: t.TempDir()}, CloseTimeout: time.Millisecond})
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
