package service

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lookout/pipeline"
	"lookout/spool"
)

// Every collector the service builds shares one registry: no name collides
// and every name has the lookout_ prefix.
func TestMetricsShareOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newSourceMetrics(reg); err != nil {
		t.Fatal(err)
	}
	dm, err := newDeliveryMetrics(reg, "kafka")
	if err != nil {
		t.Fatal(err)
	}
	if err := registerSpoolGauges(reg, func() spool.State { return spool.State{BrokerUp: true} }); err != nil {
		t.Fatal(err)
	}
	pm, err := newPipelineMetrics(reg)
	if err != nil {
		t.Fatalf("pipeline metrics collide with the service's: %v", err)
	}
	pm.FrameReceived("a")
	dm.Delivered("a", 1)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "lookout_") {
			t.Errorf("metric %s lacks the lookout_ prefix", f.GetName())
		}
	}
	if _, err := newDeliveryMetrics(reg, "kafka"); err == nil {
		t.Error("registering the delivery metrics twice succeeded")
	}
}

// The Kafka sink's and the spool's counts land in
// lookout_sink_*_total{sink, source}; a count of 0 makes no series.
func TestDeliveryMetricsCountPerSource(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newDeliveryMetrics(reg, "kafka")
	if err != nil {
		t.Fatal(err)
	}
	m.Delivered("cam-1", 3)
	m.Delivered("cam-1", 2)
	m.Failed("cam-2", 1)
	m.Spooled("cam-2", 4)
	m.Dropped("cam-3", 1)
	m.Rejected("cam-4", 2)
	m.Delivered("cam-9", 0)
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := ""
			for _, l := range m.GetLabel() {
				labels += l.GetName() + "=" + l.GetValue() + ","
			}
			got[mf.GetName()+"{"+labels+"}"] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"lookout_sink_delivered_total{sink=kafka,source=cam-1,}": 5,
		"lookout_sink_failed_total{sink=kafka,source=cam-2,}":    1,
		"lookout_sink_spooled_total{sink=kafka,source=cam-2,}":   4,
		"lookout_sink_dropped_total{sink=kafka,source=cam-3,}":   1,
		"lookout_sink_rejected_total{sink=kafka,source=cam-4,}":  2,
	}
	if len(got) != len(want) {
		t.Fatalf("got series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// Each pipeline event lands in its lookout_ series with its labels, and
// the source-state gauges follow the watched pipeline's sources: up is 1
// only while running, exactly one state is 1, and a source gone from the
// list has no series.
func TestPipelineMetricsSeries(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := newPipelineMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.FrameReceived("a")
	m.FramesDropped("a", "overflow", 3)
	m.SourceRestarted("a")
	m.QueueDepth("a", 4)
	m.CaptionFailed("a")
	m.BatchFormed(8)
	m.StageLatency("queue", 20*time.Millisecond)
	m.CaptionLatency(time.Second)
	m.WorkersBusy(1)
	m.WorkersBusy(1)
	m.WorkersBusy(-1)
	m.SinkWrite("kafka", 5, time.Millisecond, nil)
	m.SinkWrite("kafka", 2, time.Millisecond, errors.New("down"))
	m.RecordsEmitted("gap", 1)
	m.RecordSuppressed("a")
	sources := []pipeline.SourceState{{ID: "a", State: pipeline.StateRunning}, {ID: "b", State: pipeline.StateReconnecting}}
	m.watch(func() []pipeline.SourceState { return sources })

	want := map[string]float64{
		`lookout_source_frames_received_total{source="a"}`:                  1,
		`lookout_source_frames_dropped_total{reason="overflow",source="a"}`: 3,
		`lookout_source_restarts_total{source="a"}`:                         1,
		`lookout_source_queue_depth{source="a"}`:                            4,
		`lookout_caption_failures_total{source="a"}`:                        1,
		`lookout_batch_size{}`:                                              1,
		`lookout_stage_latency_seconds{stage="queue"}`:                      1,
		`lookout_caption_latency_seconds{}`:                                 1,
		`lookout_workers_busy{}`:                                            1,
		`lookout_sink_written_total{sink="kafka"}`:                          5,
		`lookout_sink_write_failed_total{sink="kafka"}`:                     2,
		`lookout_sink_write_seconds{sink="kafka"}`:                          2,
		`lookout_records_total{kind="gap"}`:                                 1,
		`lookout_records_suppressed_total{source="a"}`:                      1,
		`lookout_source_up{source="a"}`:                                     1,
		`lookout_source_up{source="b"}`:                                     0,
		`lookout_source_state{source="a",state="running"}`:                  1,
		`lookout_source_state{source="b",state="reconnecting"}`:             1,
		`lookout_source_state{source="b",state="running"}`:                  0,
	}
	got := gatherSeries(t, reg)
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	ones := 0
	for k, v := range got {
		if strings.HasPrefix(k, `lookout_source_state{source="b"`) {
			ones += int(v)
		}
	}
	if ones != 1 {
		t.Errorf("source b has %d states at 1, want 1", ones)
	}

	m.SourceRemoved("a")
	sources = sources[1:]
	got = gatherSeries(t, reg)
	for k := range got {
		if strings.Contains(k, `source="a"`) && (strings.HasPrefix(k, "lookout_source_queue_depth") ||
			strings.HasPrefix(k, "lookout_source_up") || strings.HasPrefix(k, "lookout_source_state")) {
			t.Errorf("%s still exposed after source a was removed", k)
		}
	}
	if got[`lookout_source_frames_received_total{source="a"}`] != 1 {
		t.Error("a removed source's counters must stay (rates stay correct)")
	}
}

// gatherSeries is every series of reg as name{labels} -> value (the
// sample count for histograms).
func gatherSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			out[f.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	return out
}
