package pipeline

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestConfigValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // "" means valid
	}{
		{Config{}, ""},
		{Config{MaxBatch: 16, MaxWait: time.Millisecond, Workers: 4, QueueSize: 1, RestartJitter: 0.5}, ""},
		{Config{MaxBatch: -1}, "MaxBatch"},
		{Config{MaxWait: -time.Second}, "MaxWait"},
		{Config{Workers: -2}, "Workers"},
		{Config{QueueSize: -1}, "QueueSize"},
		{Config{SinkTimeout: -1}, "SinkTimeout"},
		{Config{RestartJitter: 1}, "RestartJitter"},
		{Config{RestartJitter: -0.1}, "RestartJitter"},
		{Config{RestartBackoffMin: time.Minute}, "RestartBackoffMin (1m0s) must not exceed RestartBackoffMax (30s)"},
		{Config{SinkRetryMin: time.Second, SinkRetryMax: time.Millisecond}, "SinkRetryMin"},
		{Config{LogInterval: -1}, "LogInterval"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Validate(%+v) = %v, want nil", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Validate(%+v) = %v, want it to name %q", tc.cfg, err, tc.want)
		}
	}
}

func TestRunRefusesInvalidConfig(t *testing.T) {
	h := newHarness(t, Config{Workers: -1}, nil)
	if err := h.p.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "Workers") {
		t.Errorf("Run with Workers -1 = %v", err)
	}
}

func TestDefaultsApplied(t *testing.T) {
	d := Config{}.withDefaults()
	if d.MaxBatch != 8 || d.MaxWait != 50*time.Millisecond || d.Workers != 1 || d.QueueSize != 4 ||
		d.SinkTimeout != 10*time.Second || d.RestartBackoffMin != 500*time.Millisecond || d.RestartBackoffMax != 30*time.Second {
		t.Errorf("defaults %+v differ from the documented ones", d)
	}
}
