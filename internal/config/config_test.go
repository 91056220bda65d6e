package config

import (
	"errors"
	"fmt"
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
		{"pipeline: {max_wait: soon}\n" + base, "pipeline.max_wait"},
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

// TestConfigErrorMessages pins the exact text of config errors: file:line,
// the field path, and what is wrong in lookout's words; one line per
// distinct mistake.
func TestConfigErrorMessages(t *testing.T) {
	const sink = "sinks: {jsonl: {path: '-'}}\n"
	const known = "(known: id, uri, every, fps, decode, gate, emit, heartbeat, realtime, labels, topic, task, weight)"
	cases := []struct{ name, yaml, want string }{
		{"unknown field", "sources:\n  - id: a\n    uri: x\n    codec: true\n" + sink,
			`c.yaml:4: sources[0]: unknown field "codec" ` + known},
		{"misspelt field", "sources:\n  - id: a\n    uri: x\n    evry: 1s\n" + sink,
			`c.yaml:4: sources[0]: unknown field "evry"; did you mean "every"? ` + known},
		{"misspelt top-level field", "sourcez: []\n" + sink,
			`c.yaml:1: unknown field "sourcez"; did you mean "sources"? (known: data_dir, log, http, model, pipeline, sources, sinks, rules, cluster)`},
		{"swapped letters", "sources: [{id: a, uri: x, fsp: 2}]\n" + sink,
			`c.yaml:1: sources[0]: unknown field "fsp"; did you mean "fps"? ` + known},
		{"unknown nested field", "sinks:\n  jsonl: {path: x}\n  kafka:\n    tls: {ca: x}\n",
			`c.yaml:4: sinks.kafka.tls: unknown field "ca" (known: enabled, ca_file, cert_file, key_file, insecure_skip_verify)`},
		{"wrong type: duration", "sources:\n  - id: a\n    uri: x\n    every: fast\n" + sink,
			`c.yaml:4: sources[0].every: "fast" is not a duration (e.g. 500ms, 1s, 2m)`},
		{"wrong type: integer", "pipeline: {workers: many}\n" + sink,
			`c.yaml:1: pipeline.workers: "many" is not an integer`},
		{"wrong type: fraction for integer", "pipeline:\n  max_batch: 1.5\n" + sink,
			`c.yaml:2: pipeline.max_batch: "1.5" is not an integer`},
		{"wrong type: bool", sink + "model: {allow_cpu_fallback: sure}\n",
			`c.yaml:2: model.allow_cpu_fallback: "sure" is not true or false`},
		{"wrong type: list", "sources: x\n" + sink,
			`c.yaml:1: sources: "x" is not a list (one "- item" line each, or [a, b])`},
		{"wrong type: mapping", "model: models/demo\n" + sink,
			`c.yaml:1: model: "models/demo" is not a mapping (key: value lines, or {key: value})`},
		{"duplicate source id", "sources:\n  - id: cam1\n    uri: x\n  - id: cam2\n    uri: y\n  - id: cam1\n    uri: z\n" + sink,
			`c.yaml:6: sources[2].id: "cam1" is used by another source (line 2)`},
		{"key set twice", "sources:\n  - id: a\n    uri: x\n    uri: y\n" + sink,
			`c.yaml:4: sources[0].uri: set twice (first on line 3); keep one`},
		{"syntax: unclosed list", "sources: [\n",
			`c.yaml:1: invalid YAML: a value is missing (an unclosed "[" or "{", or a stray "-" or ",")`},
		{"syntax: colon in a value", "sources:\n  - id: a\n    uri: rtsp://h/x?a: b\n",
			`c.yaml:3: invalid YAML: a ":" where none may be (check the indentation, or quote a value holding ": ")`},
		{"syntax: bad indentation", "model:\n  dir: x\n provider: cpu\n",
			`c.yaml:3: invalid YAML: a line in this block is indented unlike the keys before it`},
		{"two distinct mistakes", "pipeline:\n  workers: many\nsources:\n  - {id: a, uri: x, codec: 1}\n" + sink,
			"c.yaml:2: pipeline.workers: \"many\" is not an integer\n" +
				`c.yaml:4: sources[0]: unknown field "codec" ` + known},
		{"same mistake in three sources: once", "sources:\n  - {id: a, uri: x, codec: 1}\n  - {id: b, uri: x, codec: 1}\n  - {id: c, uri: x, codec: 1}\n" + sink,
			`c.yaml:2: sources[0]: unknown field "codec" ` + known},
		{"invalid value", "pipeline:\n  max_batch: 0\n" + sink,
			`c.yaml:2: pipeline.max_batch: must be between 1 and 256, got 0`},
		{"invalid value, field not in the file", "log: {level: info}\n",
			`c.yaml: sinks: enable at least one of kafka, jsonl, video`},
		{"unset environment variable", "sources:\n  - {id: a, uri: 'rtsp://u:${NOPE}@h/x'}\n" + sink,
			`c.yaml:2: environment variable NOPE is referenced but not set; export it or remove the reference`},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			_, err := parse("c.yaml", []byte(tc.yaml), env(nil))
			if err == nil {
				t.Fatalf("no error, want:\n%s", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tc.want)
			}
		})
	}
}

func TestManyMistakesAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("sources:\n")
	for i := range 15 {
		fmt.Fprintf(&b, "  - {id: s%d, uri: x, bad%d: 1}\n", i, i)
	}
	_, err := parse("c.yaml", []byte(b.String()), env(nil))
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxReported+1 || lines[maxReported] != "c.yaml: 5 more mistakes not shown; fix these first" {
		t.Fatalf("got %d lines:\n%s", len(lines), err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Line != 2 || fe.Path != "sources[0]" {
		t.Errorf("errors.As: %+v", fe)
	}
}

func TestParseSourceErrors(t *testing.T) {
	const known = "(known: id, uri, every, fps, decode, gate, emit, heartbeat, realtime, labels, topic, task, weight)"
	cases := []struct{ body, want string }{
		{`{"id":"a","uri":"x","evry":"1s"}`, `source: line 1: unknown field "evry"; did you mean "every"? ` + known},
		{`{"id":"a","uri":"x","every":"fast"}`, `source: line 1: every: "fast" is not a duration (e.g. 500ms, 1s, 2m)`},
		{`{"uri":"x"}`, `source: id: "" must be non-empty and use only letters, digits, '.', '_' and '-'`},
		{"id: a\nuri: x\nfps: 900\n", `source: line 3: fps: must be between 0 and 240, got 900`},
		{`{"id":"a"`, `source: line 1: invalid YAML: a "{" mapping is not closed by "}" (or lacks a ",")`},
		{"id: a\nurl: x\nevry: 1s\n", "source: line 2: unknown field \"url\"; did you mean \"uri\"? " + known + "\n" +
			"source: line 3: unknown field \"evry\"; did you mean \"every\"? " + known},
	}
	for _, tc := range cases {
		_, err := ParseSource([]byte(tc.body))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.body, err, tc.want)
		}
	}
	s, err := ParseSource([]byte(`{"id":"cam2","uri":"rtsp://h/x","every":"2s","labels":{"zone":"gate"}}`))
	if err != nil || s.ID != "cam2" || s.Every != 2*time.Second || s.Labels["zone"] != "gate" {
		t.Errorf("good body: %+v, %v", s, err)
	}
}

// TestDecodeStrictOtherDocuments: the machinery serves any struct with yaml
// tags, not only Config.
func TestDecodeStrictOtherDocuments(t *testing.T) {
	type rule struct {
		Match string        `yaml:"match"`
		After time.Duration `yaml:"after"`
	}
	type rules struct {
		Rules []rule `yaml:"rules"`
	}
	r := rules{}
	err := DecodeStrict("rules.yaml", []byte("rules:\n  - match: car\n    afterr: 1s\n"), &r)
	want := `rules.yaml:3: rules[0]: unknown field "afterr"; did you mean "after"? (known: match, after)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if err := DecodeStrict("rules.yaml", []byte("rules: [{match: car, after: 1s}]\n"), &r); err != nil || r.Rules[0].After != time.Second {
		t.Errorf("good document: %+v, %v", r, err)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"id", "uri", "every", "fps", "max_batch"}
	for in, want := range map[string]string{"evry": "every", "Every": "every", "eveyr": "every", "ur": "uri", "fsp": "fps",
		"max-batch": "max_batch", "maxbatch": "max_batch", "x": "", "codec": "", "idd": "id"} {
		if got := suggest(in, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
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

// TestLoadResolvesPathsAgainstTheFile: paths written in a config are
// relative to its folder, whatever the working directory; URIs with a
// scheme, "-" and defaults the file leaves alone are not touched.
func TestLoadResolvesPathsAgainstTheFile(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "conf")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	body := `data_dir: state
model: {dir: ../m, library: lib/libonnxruntime.so}
sources:
  - {id: clip, uri: clips/a.mp4}
  - {id: abs, uri: /videos/b.mp4}
  - {id: fileuri, uri: "file:///videos/c.mp4"}
  - {id: cam, uri: "rtsp://h/x"}
  - {id: syn, uri: "synth://driving"}
  - {id: dev, uri: "device://0"}
sinks:
  jsonl: {path: out/records.jsonl}
  video: {path: ../v.mp4}
  kafka:
    enabled: true
    tls: {enabled: true, ca_file: ca.pem, cert_file: /etc/c.pem}
    sasl: {mechanism: plain, username: u, password_file: secret}
`
	if err := os.WriteFile(filepath.Join(conf, "c.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	want := func(c Config) {
		t.Helper()
		got := map[string]string{
			"data_dir": c.DataDir, "model.dir": c.Model.Dir, "model.library": c.Model.Library,
			"jsonl": c.Sinks.JSONL.Path, "video": c.Sinks.Video.Path,
			"ca_file": c.Sinks.Kafka.TLS.CAFile, "cert_file": c.Sinks.Kafka.TLS.CertFile, "key_file": c.Sinks.Kafka.TLS.KeyFile,
			"password_file": c.Sinks.Kafka.SASL.PasswordFile,
		}
		for i, s := range c.Sources {
			got[s.ID] = c.Sources[i].URI
		}
		for k, v := range map[string]string{
			"data_dir": conf + "/state", "model.dir": root + "/m", "model.library": conf + "/lib/libonnxruntime.so",
			"jsonl": conf + "/out/records.jsonl", "video": root + "/v.mp4",
			"ca_file": conf + "/ca.pem", "cert_file": "/etc/c.pem", "key_file": "", "password_file": conf + "/secret",
			"clip": conf + "/clips/a.mp4", "abs": "/videos/b.mp4", "fileuri": "file:///videos/c.mp4",
			"cam": "rtsp://h/x", "syn": "synth://driving", "dev": "device://0",
		} {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
	}
	c, err := Load(filepath.Join(conf, "c.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want(c)
	// From another working directory, with the file named relatively.
	other := filepath.Join(root, "elsewhere", "deeper")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(other)
	c, err = Load("../../conf/c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want(c)

	// Defaults the file does not set stay relative to the working
	// directory; "-" stays stdout.
	if err := os.WriteFile(filepath.Join(conf, "d.yaml"), []byte("sinks: {jsonl: {path: '-'}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = Load("../../conf/d.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "lookout-data" || c.Model.Dir != "models/demo" || c.Sinks.JSONL.Path != "-" {
		t.Errorf("defaults changed: data_dir %q, model.dir %q, jsonl %q", c.DataDir, c.Model.Dir, c.Sinks.JSONL.Path)
	}
}

// TestLoadPlacesErrorsInTheFile: Load's errors name the file as given and
// the line, also for checks made outside the package (FieldErr).
func TestLoadPlacesErrorsInTheFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("c.yaml", []byte("sources:\n  - id: a\n    uri: gopher://x\n  - id: a\n    uri: y\nsinks: {jsonl: {path: '-'}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load("c.yaml")
	if want := `c.yaml:4: sources[1].id: "a" is used by another source (line 2)`; err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if err := os.WriteFile("c.yaml", []byte("sources:\n  - id: a\n    uri: gopher://x\nsinks: {jsonl: {path: '-'}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load("c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fe := c.FieldErr("sources[0].uri", errors.New("unsupported scheme"))
	if want := "c.yaml:3: sources[0].uri: unsupported scheme"; fe.Error() != want {
		t.Errorf("got %s\nwant %s", fe, want)
	}
	if got, want := c.FieldErr("sources[0].topic", errors.New("x")).Error(), "c.yaml:2: sources[0].topic: x"; got != want {
		t.Errorf("an unset field falls back to its source's line: got %s, want %s", got, want)
	}
}

// TestShippedExamplesLoadFromAnyFolder: the configs in configs/ name the
// repository's model and data folders relative to themselves.
func TestShippedExamplesLoadFromAnyFolder(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAM_PASSWORD", "x")
	t.Setenv("LOOKOUT_HTTP_TOKEN", "x")
	t.Chdir(t.TempDir())
	files, _ := filepath.Glob(filepath.Join(repo, "configs", "*.yaml"))
	for _, f := range files {
		c, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if c.Model.Dir != "/opt/lookout/models/demo" && c.Model.Dir != filepath.Join(repo, "models", "demo") {
			t.Errorf("%s: model.dir resolves to %s, want %s/models/demo", f, c.Model.Dir, repo)
		}
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
			return
		}
		// One distinct mistake a line, each in lookout's words: never a
		// Go type name, never an empty line.
		lines := strings.Split(err.Error(), "\n")
		if len(lines) > maxReported+1 {
			t.Fatalf("%d lines: %q", len(lines), err)
		}
		for _, l := range lines {
			if strings.TrimSpace(l) == "" || strings.Contains(l, "config.") || strings.Contains(l, "unmarshal") {
				t.Fatalf("bad error line %q in %q", l, err)
			}
		}
	})
}

// The per-source decode, gate and emit settings: defaults and one-line
// errors naming the field.
func TestSourceDecodeGateEmit(t *testing.T) {
	const sink = "sinks: {jsonl: {path: x}}\n"
	src := func(extra string) string {
		return "sources:\n  - {id: a, uri: 'synth://driving'" + extra + "}\n" + sink
	}
	c, err := Parse([]byte(src(", decode: keyframes, emit: changes, heartbeat: 30s, gate: {threshold: 3, max_interval: 2m}")), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sources[0]
	if s.Decode != "keyframes" || s.Emit != "changes" || s.Heartbeat == nil || *s.Heartbeat != 30*time.Second ||
		s.Gate.Threshold != 3 || s.Gate.MaxInterval != 2*time.Minute {
		t.Errorf("parsed %+v", s)
	}
	if c, err := Parse([]byte(src("")), func(string) string { return "" }); err != nil || c.Sources[0].Decode != "" || c.Sources[0].Emit != "" || c.Sources[0].Gate.Threshold != 0 {
		t.Errorf("defaults: %+v, %v (want decode auto, emit every, no gate)", c.Sources, err)
	}
	for _, c := range []struct{ extra, want string }{
		{", decode: gpu", `line 2: sources[0].decode: "gpu" is not one of all, keyframes, auto`},
		{", emit: change", `line 2: sources[0].emit: "change" is not one of every, changes`},
		{", heartbeat: 30s", `line 2: sources[0].heartbeat: only applies with emit: changes`},
		{", emit: changes, heartbeat: -1s", `line 2: sources[0].heartbeat: must be >= 0 (0s: no heartbeats), got -1s`},
		{", gate: {threshold: 300}", `line 2: sources[0].gate.threshold: must be between 0 and 255 grey levels, got 300`},
		{", gate: {threshhold: 3}", `line 2: sources[0].gate: unknown field "threshhold"; did you mean "threshold"? (known: threshold, max_interval)`},
	} {
		_, err := Parse([]byte(src(c.extra)), func(string) string { return "" })
		if err == nil || err.Error() != c.want {
			t.Errorf("%s:\n got %v\nwant %s", c.extra, err, c.want)
		}
	}
}

func TestModelTaskValidated(t *testing.T) {
	_, err := Parse([]byte("model:\n  task: \"<DETECT>\"\nsources:\n  - id: a\n    uri: synth://driving\nsinks:\n  jsonl:\n    path: \"-\"\n"), func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "model.task") {
		t.Fatalf("want a model.task error, got %v", err)
	}
	c, err := Parse([]byte("model:\n  task: \"<OD>\"\nsources:\n  - id: a\n    uri: synth://driving\nsinks:\n  jsonl:\n    path: \"-\"\n"), func(string) string { return "" })
	if err != nil || c.Model.Task != "<OD>" {
		t.Fatalf("task <OD>: %v %+v", err, c)
	}
}
