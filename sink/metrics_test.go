package sink

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestPromMetricsCountPerSource(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewPromMetrics(reg, "kafka")
	if err != nil {
		t.Fatal(err)
	}
	m.delivered("cam-1", 3)
	m.delivered("cam-1", 2)
	m.failed("cam-2", 1)
	m.spooled("cam-2", 4)
	m.dropped("cam-3", 1)
	m.delivered("cam-9", 0) // zero counts are not reported
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
	}
	if len(got) != len(want) {
		t.Fatalf("got series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, err := NewPromMetrics(reg, "kafka"); err == nil {
		t.Fatal("registering twice succeeded")
	}
	var nilMetrics Metrics
	nilMetrics.delivered("x", 1) // nil callbacks are skipped, not called
}
