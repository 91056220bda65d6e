package pipeline

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

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
