package ingest

import "testing"

// A supervisor leaves reopening to sources that reconnect by themselves:
// Reconnecting says so through Health, and a Sampler or Gate around it
// passes that on; a plain source, wrapped or not, does not say it.
func TestHealthTellsWhoReconnects(t *testing.T) {
	r := NewReconnecting("cam", (&script{steps: []func() (Source, error){refuse()}}).open, ReconnectConfig{})
	defer r.Close()
	smp, err := NewSampler(r, "cam", SampleConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGate(smp, "cam", GateConfig{Threshold: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]HealthReporter{"Reconnecting": r, "Sampler around it": smp, "Gate around that": g} {
		if !h.Health().Reconnects {
			t.Errorf("%s: Health().Reconnects = false, want true", name)
		}
	}
	plain, err := NewSampler(&fakeLive{}, "dev", SampleConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Health().Reconnects {
		t.Error("a Sampler around a source that does not reconnect says Reconnects")
	}
}
