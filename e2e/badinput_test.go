package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// e2eBadInput is one row of the bad-input table (docs/RELIABILITY.md).
type e2eBadInput struct {
	name string
	args []string
	// code is the documented exit code: 1 runtime failure, 2 bad usage or
	// configuration (main.go).
	code int
	// want are substrings the error line must hold (naming the thing).
	want []string
	// limit bounds the run; default 30 s.
	limit time.Duration
}

// TestE2EBadInputs runs at least 20 bad inputs through the binary: each
// must exit non-zero with the documented code, print exactly one stderr
// line "lookout: ..." that names the bad thing, and never panic.
func TestE2EBadInputs(t *testing.T) {
	dir := t.TempDir()
	model := e2eTinyModel()
	garbage := filepath.Join(dir, "garbage.mp4")
	junk := make([]byte, 256<<10)
	for i := range junk {
		junk[i] = byte(i*7919 + i>>8)
	}
	if err := os.WriteFile(garbage, junk, 0o644); err != nil {
		t.Fatal(err)
	}
	emptyModel := filepath.Join(dir, "empty-model")
	badModel := filepath.Join(dir, "bad-config-model")
	for _, d := range []string{emptyModel, badModel, filepath.Join(dir, "conf")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(model)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "config.json" {
			if err := os.Symlink(filepath.Join(model, e.Name()), filepath.Join(badModel, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	e2eWriteFile(t, filepath.Join(badModel, "config.json"), `{"model_type": "vision-encoder-decoder", "encoder": `)
	// The demo model with another model's domain profile.
	badProfile := filepath.Join(dir, "bad-profile-model")
	demoDir := filepath.Join(e2e.root, "models", "demo")
	demoEntries, err := os.ReadDir(demoDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(badProfile, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range demoEntries {
		if e.Name() != "domain_profile.json" {
			if err := os.Symlink(filepath.Join(demoDir, e.Name()), filepath.Join(badProfile, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	e2eWriteFile(t, filepath.Join(badProfile, "domain_profile.json"), `{"version": 1, "trained_on": "x", "threshold": 0.1, "mean": [0.5, 0.5], "components": [[1, 0]]}`)
	video := e2eSmallClip(t)
	goodTruth := strings.TrimSuffix(video, ".mp4") + ".truth.jsonl"
	truth := e2eWriteFile(t, filepath.Join(dir, "bad.truth.jsonl"), "{\"frame\":0,\"pts_ms\":0,\n garbage\n")
	captions := e2eWriteFile(t, filepath.Join(dir, "caps.jsonl"), "")
	out := filepath.Join(dir, "out.jsonl")
	// config writes a run config from a sources/sinks body.
	config := func(name, body string) string {
		return e2eWriteFile(t, filepath.Join(dir, name+".yaml"), fmt.Sprintf("data_dir: %s/data\nhttp: {listen: \"\"}\nmodel: {dir: %s}\n%s", dir, model, body))
	}
	// demoConfig is config with the demo model, whose attribute heads the
	// rules' slots are checked against.
	demoConfig := func(name, body string) string {
		return e2eWriteFile(t, filepath.Join(dir, name+".yaml"), fmt.Sprintf("data_dir: %s/data\nhttp: {listen: \"\"}\nmodel: {dir: %s}\n%s", dir, filepath.Join(e2e.root, "models", "demo"), body))
	}
	badCaptions := e2eWriteFile(t, filepath.Join(dir, "bad.captions.jsonl"), `{"kind":"caption","source_id":"a","id":"00","pts_ms":0}`+"\n{\"kind\": \"caption\",\n")
	okSources := "sources:\n  - {id: a, uri: \"synth://driving?seed=1&fps=5&size=320x180\"}\n"
	okSinks := "sinks:\n  jsonl: {path: " + out + "}\n"
	cases := []e2eBadInput{
		{"missing video file", []string{"caption", filepath.Join(dir, "nope.mp4"), "--model", model}, 2, []string{"nope.mp4", "does not exist"}, 0},
		{"corrupt video (garbage bytes)", []string{"caption", garbage, "--model", model}, 1, []string{"garbage.mp4", "cannot decode"}, 0},
		{"bad URI scheme", []string{"caption", "ftp://example.com/x.mp4", "--model", model}, 2, []string{"ftp"}, 0},
		{"unreachable RTSP host", []string{"caption", "rtsp://127.0.0.1:1/x", "--model", model}, 1, []string{"rtsp://127.0.0.1:1/x"}, 15 * time.Second},
		{"RTSP URL without host", []string{"caption", "rtsp:///x", "--model", model}, 2, []string{"rtsp"}, 0},
		{"missing config file", []string{"run", "--config", filepath.Join(dir, "nope.yaml")}, 2, []string{"nope.yaml", "not found"}, 0},
		{"no --config", []string{"run"}, 2, []string{"--config"}, 0},
		{"invalid config field", []string{"run", "--config", config("max-batch", "pipeline: {max_batch: 0}\n"+okSources+okSinks)}, 2, []string{"pipeline.max_batch"}, 0},
		{"unknown config field", []string{"run", "--config", config("unknown", "sources:\n  - {id: a, uri: \"synth://driving\", codec: h265}\n"+okSinks)}, 2, []string{"codec"}, 0},
		{"misspelt config field", []string{"run", "--config", config("misspelt", "sources:\n  - id: a\n    uri: \"synth://driving\"\n    evry: 1s\n"+okSinks)}, 2, []string{"evry", "every"}, 0},
		{"wrong type in config", []string{"run", "--config", config("type", "sources:\n  - id: a\n    uri: \"synth://driving\"\n    every: fast\n"+okSinks)}, 2, []string{"sources[0].every", "fast"}, 0},
		{"invalid YAML", []string{"run", "--config", config("yaml", "sources: [\n")}, 2, []string{"YAML"}, 0},
		{"duplicate source id", []string{"run", "--config", config("dup", "sources:\n  - {id: a, uri: \"synth://driving\"}\n  - {id: a, uri: \"synth://driving\"}\n"+okSinks)}, 2, []string{"sources[1].id"}, 0},
		{"every and fps both set", []string{"run", "--config", config("both", "sources:\n  - {id: a, uri: \"synth://driving\", every: 1s, fps: 2}\n"+okSinks)}, 2, []string{"sources[0].every"}, 0},
		{"unset ${ENV} reference", []string{"run", "--config", config("env", okSources+"sinks:\n  jsonl: {path: ${LOOKOUT_E2E_UNSET_VAR}}\n")}, 2, []string{"LOOKOUT_E2E_UNSET_VAR"}, 0},
		{"bad source URI in config", []string{"run", "--config", config("uri", "sources:\n  - {id: a, uri: \"gopher://x/y\"}\n"+okSinks)}, 2, []string{"gopher"}, 0},
		{"no sink enabled", []string{"run", "--config", config("nosink", okSources)}, 2, []string{"sinks"}, 0},
		{"broker address not host:port", []string{"run", "--config", config("broker", okSources+"sinks:\n  kafka: {enabled: true, brokers: [\"nohost\"]}\n")}, 2, []string{"sinks.kafka.brokers", "nohost"}, 0},
		{"http.listen off loopback without token", []string{"run", "--config", e2eWriteFile(t, filepath.Join(dir, "http.yaml"), fmt.Sprintf("http: {listen: \"0.0.0.0:9999\"}\nmodel: {dir: %s}\n%s%s", model, okSources, okSinks))}, 2, []string{"http.token"}, 0},
		{"wrong model folder in config (empty)", []string{"run", "--config", e2eWriteFile(t, filepath.Join(dir, "model.yaml"), fmt.Sprintf("data_dir: %s/data\nhttp: {listen: \"\"}\nmodel: {dir: %s}\n%s%s", dir, emptyModel, okSources, okSinks))}, 1, []string{"empty-model", "encoder_model.onnx"}, 0},
		{"relative model folder, resolved against the config's folder", []string{"run", "--config", e2eWriteFile(t, filepath.Join(dir, "conf", "rel.yaml"), "data_dir: data\nhttp: {listen: \"\"}\nmodel: {dir: ../empty-model}\n"+okSources+okSinks)}, 1, []string{"empty-model"}, 0},
		{"wrong model folder (empty dir)", []string{"caption", video, "--model", emptyModel}, 1, []string{"empty-model", "encoder_model.onnx"}, 0},
		{"wrong model folder (bad config.json)", []string{"caption", video, "--model", badModel}, 1, []string{"bad-config-model", "config.json"}, 0},
		{"domain profile of another model", []string{"caption", video, "--model", badProfile}, 1, []string{"bad-profile-model", "domain_profile.json", "does not belong to this model"}, 0},
		{"model info on a missing folder", []string{"model", "info", filepath.Join(dir, "no-model")}, 2, []string{"no-model"}, 0},
		{"negative --every", []string{"caption", video, "--model", model, "--every", "-1s"}, 2, []string{"every", "-1s"}, 0},
		{"unknown flag", []string{"caption", "--frobnicate"}, 2, []string{"--frobnicate"}, 0},
		{"unknown command", []string{"frobnicate"}, 2, []string{"frobnicate"}, 0},
		{"scenes: bad size", []string{"scenes", "video", "--size", "12x", "--out", filepath.Join(dir, "v.mp4")}, 2, []string{"--size", "12x"}, 0},
		{"scenes: bad domain", []string{"scenes", "video", "--domain", "mars", "--out", filepath.Join(dir, "v.mp4")}, 2, []string{"mars"}, 0},
		{"scenes score: corrupt truth", []string{"scenes", "score", "--truth", truth, "--captions", captions}, 2, []string{"--truth", "bad.truth.jsonl"}, 0},
		{"scenes score: missing captions", []string{"scenes", "score", "--truth", goodTruth, "--captions", filepath.Join(dir, "none.jsonl")}, 2, []string{"none.jsonl"}, 0},
		{"tail: unreachable broker", []string{"tail", "--brokers", "127.0.0.1:1", "--topic", "x", "--timeout", "3s"}, 1, []string{"127.0.0.1:1"}, 0},
		{"rule: regex that does not compile", []string{"run", "--config", config("regex", okSources+okSinks+"rules:\n  - {name: r, sources: [a], regex: 'light is (green'}\n")}, 2, []string{"rules[0].regex", "does not compile"}, 0},
		{"rule: no source", []string{"run", "--config", config("nosrc", okSources+okSinks+"rules:\n  - {name: r, keywords: [pedestrian]}\n")}, 2, []string{"rules[0].sources", "selects no source"}, 0},
		{"rule: threshold out of range", []string{"run", "--config", config("prob", okSources+okSinks+"rules:\n  - {name: r, sources: [a], attributes: {light: green}, min_prob: 1.5}\n")}, 2, []string{"rules[0].min_prob", "1.5"}, 0},
		{"rule: unknown slot", []string{"run", "--config", demoConfig("slot", okSources+okSinks+"rules:\n  - {name: r, sources: [a], attributes: {colour: red}}\n")}, 2, []string{"rules[0].attributes.colour", "unknown slot"}, 0},
		{"rule: unknown value", []string{"rules", "test", "--config", demoConfig("value", okSources+okSinks+"rules:\n  - {name: r, sources: [a], attributes: {light: blue}}\n"), "--captions", captions}, 2, []string{"rules[0].attributes.light", `"blue"`, "red, green"}, 0},
		{"rules test: bad captions line", []string{"rules", "test", "--config", config("okrule", okSources+okSinks+"rules:\n  - {name: r, sources: [a]}\n"), "--captions", badCaptions}, 2, []string{"bad.captions.jsonl:2", "not a lookout record"}, 0},
		{"tail: broker not host:port", []string{"tail", "--brokers", "nohost", "--topic", "x"}, 2, []string{"nohost"}, 0},
	}
	// exact holds the whole stderr line of the config rows ($TMP for dir):
	// the wording docs/RELIABILITY.md shows.
	exact := map[string]string{
		"invalid config field":              "lookout: $TMP/max-batch.yaml:4: pipeline.max_batch: must be between 1 and 256, got 0",
		"unknown config field":              `lookout: $TMP/unknown.yaml:5: sources[0]: unknown field "codec" (known: id, uri, every, fps, decode, gate, emit, heartbeat, realtime, labels, topic, task, weight)`,
		"misspelt config field":             `lookout: $TMP/misspelt.yaml:7: sources[0]: unknown field "evry"; did you mean "every"? (known: id, uri, every, fps, decode, gate, emit, heartbeat, realtime, labels, topic, task, weight)`,
		"wrong type in config":              `lookout: $TMP/type.yaml:7: sources[0].every: "fast" is not a duration (e.g. 500ms, 1s, 2m)`,
		"invalid YAML":                      "lookout: $TMP/yaml.yaml:4: invalid YAML: a value is missing (an unclosed \"[\" or \"{\", or a stray \"-\" or \",\")",
		"duplicate source id":               `lookout: $TMP/dup.yaml:6: sources[1].id: "a" is used by another source (line 5)`,
		"bad source URI in config":          `lookout: $TMP/uri.yaml:5: sources[0].uri: source "gopher://x/y": unsupported scheme "gopher": use a file path, file:///abs/path, rtsp://host/path, device://N, /dev/videoN or synth://driving`,
		"rule: regex that does not compile": "lookout: $TMP/regex.yaml:9: rules[0].regex: does not compile: missing closing ): `light is (green`",
		"rule: unknown value":               `lookout: $TMP/value.yaml:9: rules[0].attributes.light: unknown value "blue" for slot light (known: red, green, n/a)`,
		"relative model folder, resolved against the config's folder": "lookout: model $TMP/empty-model: encoder_model.onnx: missing; export the model with optimum task image-to-text-with-past",
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			limit := c.limit
			if limit == 0 {
				limit = 30 * time.Second
			}
			code, stdout, stderr, took := e2eRunLookout(t, dir, limit+15*time.Second, c.args...)
			e2eCheckOneLineError(t, c, code, stdout, stderr)
			if want, ok := exact[c.name]; ok {
				if got := strings.TrimSpace(strings.ReplaceAll(stderr, dir, "$TMP")); got != want {
					t.Errorf("stderr:\n%s\nwant:\n%s", got, want)
				}
			}
			if took > limit {
				t.Errorf("took %.1fs, want under %s", took.Seconds(), limit)
			}
			t.Logf("TABLE | %s | `lookout %s` | %d | %s | %.1fs", c.name, e2eShortArgs(c.args, dir), code, strings.TrimSpace(strings.ReplaceAll(stderr, dir, "$TMP")), took.Seconds())
		})
	}
}

var e2ePanicRe = regexp.MustCompile(`panic|goroutine \d+ \[`)

func e2eCheckOneLineError(t *testing.T, c e2eBadInput, code int, stdout, stderr string) {
	t.Helper()
	if code != c.code {
		t.Errorf("exit code %d, want %d; stderr:\n%s", code, c.code, stderr)
	}
	if e2ePanicRe.MatchString(stdout + stderr) {
		t.Errorf("output mentions a panic:\n%s%s", stdout, stderr)
	}
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "lookout: ") {
		t.Errorf("stderr is %d lines, want one line starting with \"lookout: \":\n%s", len(lines), stderr)
	}
	for _, w := range c.want {
		if !strings.Contains(stderr, w) {
			t.Errorf("the error does not name %q:\n%s", w, stderr)
		}
	}
}

// e2eShortArgs prints args with the scratch folder abbreviated.
func e2eShortArgs(args []string, dir string) string {
	s := strings.Join(args, " ")
	s = strings.ReplaceAll(s, dir, "$TMP")
	return strings.ReplaceAll(s, e2e.root+"/", "")
}

// TestE2EBrokerUnreachableAtStart: `lookout run` with Kafka at an address
// nobody listens on. The documented behaviour (docs/RELIABILITY.md): it
// starts, captions, and keeps every record in the disk spool; /metrics
// counts them as spooled. On SIGINT it exits 0 when everything was
// delivered, else 1 with one line saying how many records stay spooled for
// the next start. Either way nothing is lost.
func TestE2EBrokerUnreachableAtStart(t *testing.T) {
	video := e2eSmallClip(t)
	dir := t.TempDir()
	cfg, httpAddr := e2eServiceConfig(t, dir, "", "info", fmt.Sprintf(`sources:
  - {id: replay, uri: "%s", every: 1s}
sinks:
  kafka: {enabled: true, brokers: ["127.0.0.1:1"], topic: never}
`, video))
	p := e2eStartLookout(t, dir, "run", "--config", cfg)
	e2eWaitHTTP(t, p, "http://"+httpAddr+"/healthz", 60*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	var spooled float64
	for {
		m := e2eMetrics(t, httpAddr)
		if spooled = e2eMetricSum(m, "lookout_sink_spooled_total"); spooled >= 40 {
			break
		}
		if time.Now().After(deadline) || p.exited() {
			t.Fatalf("the 40 replayed records were not spooled within 30s (spooled %g, exited %v); stderr:\n%s", spooled, p.exited(), e2eTail(p.stderr.String(), 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	readyCode, ready, _, _ := e2eHttpGet("http://"+httpAddr+"/readyz", time.Second)
	if readyCode != 503 {
		t.Errorf("/readyz answered %d (%q) with the broker unreachable, want 503", readyCode, strings.TrimSpace(ready))
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "data", "spool", "*"))
	var spoolBytes int64
	for _, s := range segs {
		if fi, err := os.Stat(s); err == nil {
			spoolBytes += fi.Size()
		}
	}
	t.Logf("broker unreachable: %g records spooled, %d bytes in %d spool files; /readyz: %q", spooled, spoolBytes, len(segs), strings.TrimSpace(ready))
	if spoolBytes == 0 {
		t.Errorf("the spool folder is empty although %g records were spooled", spooled)
	}
	if !strings.Contains(p.stderr.String(), "127.0.0.1:1") {
		t.Errorf("the logs never name the unreachable broker 127.0.0.1:1")
	}
	sigAt := time.Now()
	code := p.stop(syscall.SIGINT, 60*time.Second)
	lines := strings.Split(strings.TrimRight(p.stderr.String(), "\n"), "\n")
	lastLine := lines[len(lines)-1]
	t.Logf("SIGINT with the broker away: exit %d after %.1fs; last line: %s", code, time.Since(sigAt).Seconds(), lastLine)
	switch code {
	case 0:
	case 1:
		if !strings.HasPrefix(lastLine, "lookout: ") || !strings.Contains(lastLine, "spool") {
			t.Errorf("exit 1 but the last stderr line does not say what stays spooled: %q", lastLine)
		}
	default:
		t.Errorf("exit code %d, want 0 or 1", code)
	}
	if e2ePanicRe.MatchString(p.stderr.String()) {
		t.Errorf("output mentions a panic")
	}
}

// TestE2ESecretsRedacted: a run with a credential-bearing RTSP URL (whose
// camera is unreachable, so the failure paths log it repeatedly), debug
// logging and the ops server on. The password must not appear in stdout,
// stderr, the JSONL records, /metrics, /readyz or /sources; nor in the
// one-shot caption error for the same URL.
func TestE2ESecretsRedacted(t *testing.T) {
	const secret = "SuperSecret123"
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cfg, httpAddr := e2eServiceConfig(t, dir, "", "debug", fmt.Sprintf(`sources:
  - {id: cam, uri: "rtsp://user:%s@127.0.0.1:1/x", every: 1s}
  - {id: synth, uri: "synth://driving?seed=1&fps=5&size=320x180", every: 1s}
sinks:
  jsonl: {path: %s}
`, secret, out))
	p := e2eStartLookout(t, dir, "run", "--config", cfg)
	e2eWaitHTTP(t, p, "http://"+httpAddr+"/healthz", 60*time.Second)
	time.Sleep(4 * time.Second)
	var bodies strings.Builder
	for _, path := range []string{"/metrics", "/readyz", "/sources", "/healthz"} {
		_, body, _, err := e2eHttpGet("http://"+httpAddr+path, 5*time.Second)
		if err != nil {
			t.Errorf("GET %s: %v", path, err)
		}
		fmt.Fprintf(&bodies, "== %s\n%s\n", path, body)
	}
	if code := p.stop(syscall.SIGINT, 60*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGINT, want 0", code)
	}
	records, _ := os.ReadFile(out)
	_, cstdout, cstderr, _ := e2eRunLookout(t, dir, 30*time.Second, "caption", "rtsp://user:"+secret+"@127.0.0.1:1/x", "--model", e2eTinyModel())
	_, vstdout, vstderr, _ := e2eRunLookout(t, dir, 30*time.Second, "run", "--config",
		e2eWriteFile(t, filepath.Join(dir, "bad.yaml"), fmt.Sprintf("model: {dir: %s}\nsources:\n  - {id: cam, uri: \"rtsp://user:%s@[::1/x\"}\nsinks:\n  jsonl: {path: x}\n", e2eTinyModel(), secret)))
	everything := map[string]string{
		"run stdout": p.stdout.String(), "run stderr": p.stderr.String(), "records": string(records), "http": bodies.String(),
		"caption stdout": cstdout, "caption stderr": cstderr, "bad-config stdout": vstdout, "bad-config stderr": vstderr,
	}
	total := 0
	for what, s := range everything {
		total += len(s)
		if strings.Contains(s, secret) {
			for _, line := range strings.Split(s, "\n") {
				if strings.Contains(line, secret) {
					t.Errorf("%s shows the RTSP password: %s", what, line)
					break
				}
			}
		}
	}
	if !strings.Contains(p.stderr.String(), "127.0.0.1:1") {
		t.Errorf("the run's logs never mention the unreachable camera, so the redaction path was not exercised")
	}
	t.Logf("searched %d bytes of output for the password", total)
}
