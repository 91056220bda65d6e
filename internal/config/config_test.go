package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `
data_dir: /tmp/lookout
sources:
  - id: gate
    uri: rtsp://viewer:${CAM_PASS}@10.0.0.5/stream
    labels: {site: north}
  - id: replay
    uri: /videos/drive.mp4
    fps: 2
sinks:
  kafka:
    enabled: true
    brokers: [127.0.0.1:9092]
`

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseAppliesDefaultsAndEnv(t *testing.T) {
	c, err := Parse([]byte(good), env(map[string]string{"CAM_PASS": "s3cret"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Sources[0].URI; got != "rtsp://viewer:s3cret@10.0.0.5/stream" {
		t.Errorf("uri = %q", got)
	}
	if c.Sources[0].Every != time.Second || c.Sources[1].Every != 0 || c.Sources[1].FPS != 2 {
		t.Errorf("sampling defaults wrong: %+v", c.Sources)
	}
	if c.Pipeline.MaxBatch != 8 || c.Sinks.Kafka.Topic != "lookout.captions" || c.HTTP.Listen != "127.0.0.1:9464" {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestBadConfigsNameTheField(t *testing.T) {
	base := "sinks: {jsonl: {path: '-'}}\n"
	cases := []struct{ yaml, field string }{
		{"sources: [{id: a, uri: x}, {id: a, uri: y}]\n" + base, "sources[1].id"},
		{"sources: [{id: 'a b', uri: x}]\n" + base, "sources[0].id"},
		{"sources: [{id: a}]\n" + base, "sources[0].uri"},
		{"sources: [{id: a, uri: x, every: 1s, fps: 3}]\n" + base, "sources[0].every"},
		{"pipeline: {max_batch: 0}\n" + base, "pipeline.max_batch"},
		{"pipeline: {workers: -1}\n" + base, "pipeline.workers"},
		{"model: {provider: tpu}\n" + base, "model.provider"},
		{"model: {resize: nearest}\n" + base, "model.resize"},
		{"model: {decoder: newest}\n" + base, "model.decoder"},
		{"model: {generation: {num_beams: 0}}\n" + base, "model.generation.num_beams"},
		{"log: {level: loud}\n" + base, "log.level"},
		{"http: {listen: '0.0.0.0:9464'}\n" + base, "http.token"},
		{"sinks: {kafka: {enabled: true, brokers: [nohost]}}\n", "sinks.kafka.brokers"},
		{"sinks: {kafka: {enabled: true, compression: brotli}}\n", "sinks.kafka.compression"},
		{"sinks: {kafka: {enabled: true, sasl: {mechanism: scram-sha-512, username: u}}}\n", "sinks.kafka.sasl.password"},
		{"sinks: {}\n", "sinks"},
		{"sourcez: []\n" + base, "sourcez"},
		{"pipeline: {max_wait: soon}\n" + base, "invalid YAML"},
		{"sources: [{id: a, uri: 'rtsp://u:${NOPE}@h/x'}]\n" + base, "NOPE"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.yaml), env(nil))
		if err == nil {
			t.Errorf("%q: no error, want one naming %s", tc.yaml, tc.field)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %q does not name %s on one line", tc.yaml, err, tc.field)
		}
	}
}

func TestSASLStringRedacts(t *testing.T) {
	s := SASL{Mechanism: "plain", Username: "u", Password: "hunter2"}
	if strings.Contains(s.String(), "hunter2") {
		t.Fatalf("password printed: %s", s)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("err = %v", err)
	}
}

func TestShippedExamplesAreValid(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	if len(files) == 0 {
		t.Fatal("no configs/*.yaml examples found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b, func(string) string { return "set" }); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("sources: [{id: a, uri: x}]\nsinks: {jsonl: {path: '-'}}\n"))
	f.Add([]byte("pipeline: {max_wait: 5ms, max_batch: 300}"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b, func(string) string { return "x" })
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config Validate rejects: %v", verr)
			}
		} else if strings.Contains(err.Error(), "\n") {
			t.Fatalf("multi-line error: %q", err)
		}
	})
}
