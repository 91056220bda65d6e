package service

import (
	"strings"
	"testing"

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
	pm := pipeline.NewMetrics()
	if err := register(reg, pm.Collectors()...); err != nil {
		t.Fatalf("pipeline metrics collide with the service's: %v", err)
	}
	pm.FramesReceived.WithLabelValues("a").Inc()
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
