package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lookout/sink"
)

// e2eCrossingScript writes a driving scene script of cycles 34 s long, each
// with one true event (a pedestrian crossing on a green light for 6 s) and
// three near misses: a pedestrian on a red light (3 s), a pedestrian on a
// green light for 1.5 s (shorter than the rule's 2 s), and a green light
// without a pedestrian (3 s). Vehicles, time of day and weather vary by cycle.
func e2eCrossingScript(t *testing.T, path string, cycles int) time.Duration {
	vehicles := []string{"{vehicle: car, vehicle_color: red, lane: left}", "{vehicle: none, vehicle_color: none, lane: none}",
		"{vehicle: truck, vehicle_color: blue, lane: center}", "{vehicle: bus, vehicle_color: yellow, lane: right}",
		"{vehicle: car, vehicle_color: white, lane: center}"}
	var b strings.Builder
	b.WriteString("steps:\n")
	for k := range cycles {
		tm, wx := "day", "clear"
		if k%3 == 2 {
			tm = "night"
		}
		if k%4 == 1 {
			wx = "rain"
		}
		v := strings.Trim(vehicles[k%len(vehicles)], "{}")
		fmt.Fprintf(&b, "  - {hold: 8s, set: {light: red, pedestrian: 'no', time: %s, weather: %s, %s}}\n", tm, wx, v)
		b.WriteString(`  - {hold: 3s, set: {light: red, pedestrian: 'yes'}}
  - {hold: 3s, set: {light: red, pedestrian: 'no'}}
  - {hold: 1500ms, set: {light: green, pedestrian: 'yes'}}
  - {hold: 2500ms, set: {light: red, pedestrian: 'no'}}
  - {hold: 6s, set: {light: green, pedestrian: 'yes'}}
  - {hold: 3s, set: {light: green, pedestrian: 'no'}}
  - {hold: 7s, set: {light: red, pedestrian: 'no'}}
`)
	}
	e2eWriteFile(t, path, b.String())
	return time.Duration(cycles) * 34 * time.Second
}

// e2eCrossingTruth samples a truth file every second and returns the runs
// of samples showing a pedestrian on a green light, as [first, last] pts.
func e2eCrossingTruth(t *testing.T, truthPath string) (runs [][2]int64, samples int) {
	t.Helper()
	f, err := os.Open(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	open := false
	for sc.Scan() {
		var tr struct {
			PTS   int64             `json:"pts_ms"`
			Slots map[string]string `json:"slots"`
		}
		if err := json.Unmarshal(sc.Bytes(), &tr); err != nil {
			t.Fatalf("%s: %v", truthPath, err)
		}
		if tr.PTS%1000 != 0 {
			continue
		}
		samples++
		on := tr.Slots["light"] == "green" && tr.Slots["pedestrian"] == "yes"
		switch {
		case on && !open:
			runs = append(runs, [2]int64{tr.PTS, tr.PTS})
		case on:
			runs[len(runs)-1][1] = tr.PTS
		}
		open = on
	}
	return runs, samples
}

// TestE2ERulesAlerts is issue #13's rule check through the real binary and
// a real broker: a driving clip with known truth (10 pedestrian crossings on
// a green light, 30 near misses) replayed by `lookout run` with the rule
// "pedestrian crossing while the light is green, for 2s, cooldown 30s". A
// true event is a run of sampled frames showing it that lasts at least 2 s;
// an alert matches it when its pts is within [start + 2 s, start + 3 s] (one
// sampling interval). Precision and recall must be 1.0, the alerts must be
// on their own topic (and in the JSONL sink), and `lookout rules test` on
// the captions file must give the same alert ids offline.
func TestE2ERulesAlerts(t *testing.T) {
	model := e2eDemoModel()
	if model == "" {
		t.Fatal("models/demo has no encoder_model.onnx: the demo model ships with the repository; restore it (git checkout models/demo)")
	}
	begin := time.Now()
	dir := t.TempDir()
	clip := filepath.Join(dir, "crossing.mp4")
	length := e2eCrossingScript(t, filepath.Join(dir, "script.yaml"), 10)
	if code, _, stderr, _ := e2eRunLookout(t, dir, 3*time.Minute, "scenes", "video", "--domain", "driving", "--seed", "5",
		"--script", "script.yaml", "--duration", (length + 5*time.Second).String(), "--size", "640x360", "--fps", "5", "--out", clip); code != 0 {
		t.Fatalf("scenes video: exit %d: %s", code, stderr)
	}
	rendered := time.Since(begin)
	runs, samples := e2eCrossingTruth(t, strings.TrimSuffix(clip, ".mp4")+".truth.jsonl")
	const forMs, everyMs = 2000, 1000
	var events [][2]int64
	for _, r := range runs {
		if r[1]-r[0] >= forMs {
			events = append(events, r)
		}
	}
	if len(events) < 10 || len(runs)-len(events) < 10 {
		t.Fatalf("the clip's truth has %d true events and %d short runs, want >= 10 of each", len(events), len(runs)-len(events))
	}

	addr := e2eStartKafka(t)
	captionsTopic, alertsTopic := e2eUniqueTopic("rules-captions"), e2eUniqueTopic("rules-alerts")
	e2eCreateTopic(t, addr, captionsTopic)
	e2eCreateTopic(t, addr, alertsTopic)
	out := filepath.Join(dir, "records.jsonl")
	cfg := e2eWriteFile(t, filepath.Join(dir, "lookout.yaml"), fmt.Sprintf(`data_dir: data
log: {level: info, format: json}
http: {listen: ""}
model: {dir: %s}
sources:
  - {id: crossing, uri: crossing.mp4, every: 1s}
sinks:
  kafka: {enabled: true, brokers: ["%s"], topic: %s, alerts_topic: %s}
  jsonl: {path: records.jsonl}
rules:
  - name: crossing-on-green
    sources: [crossing]
    attributes: {light: green, pedestrian: "yes"}
    for: 2s
    cooldown: 30s
`, model, addr, captionsTopic, alertsTopic))
	p := e2eStartLookout(t, dir, "run", "--config", cfg)
	deadline := time.Now().Add(3 * time.Minute)
	for captions := 0; captions < samples; {
		if time.Now().After(deadline) || p.exited() {
			t.Fatalf("%d of %d caption records in the JSONL sink; stderr:\n%s", captions, samples, e2eTail(p.stderr.String(), 20))
		}
		time.Sleep(300 * time.Millisecond)
		captions = 0
		for _, r := range e2eReadJSONL(t, out) {
			if r.Rec.Kind == sink.KindCaption {
				captions++
			}
		}
	}
	if code := p.stop(syscall.SIGTERM, time.Minute); code != 0 {
		t.Fatalf("lookout run: exit %d after SIGTERM; stderr:\n%s", code, e2eTail(p.stderr.String(), 20))
	}

	sch := newE2ESchemaCheck(t)
	alerts := e2eReadTopic(t, addr, alertsTopic)
	var alertIDs []string
	for i, a := range alerts {
		sch.check(fmt.Sprintf("alert %d", i), a.Raw)
		if a.Rec.Kind != sink.KindAlert || a.Rec.Rule != "crossing-on-green" || a.Key != "crossing" {
			t.Errorf("alerts topic offset %d: kind %q rule %q key %q", a.Offset, a.Rec.Kind, a.Rec.Rule, a.Key)
		}
		alertIDs = append(alertIDs, a.Rec.ID)
	}
	sch.done(len(alerts))
	for _, r := range e2eReadTopic(t, addr, captionsTopic) {
		if r.Rec.Kind == sink.KindAlert {
			t.Errorf("an alert on the captions topic at offset %d", r.Offset)
		}
	}
	// Every alert is also in the JSONL sink, right after its caption record.
	var jsonlAlerts []string
	captionIDs := map[string]bool{}
	for _, r := range e2eReadJSONL(t, out) {
		switch r.Rec.Kind {
		case sink.KindCaption:
			captionIDs[r.Rec.ID] = true
		case sink.KindAlert:
			jsonlAlerts = append(jsonlAlerts, r.Rec.ID)
			if !captionIDs[r.Rec.CaptionID] {
				t.Errorf("alert %s names caption record %s, which is not before it in the JSONL sink", r.Rec.ID, r.Rec.CaptionID)
			}
		}
	}
	if fmt.Sprint(jsonlAlerts) != fmt.Sprint(alertIDs) {
		t.Errorf("alerts in the JSONL sink %v, on the alerts topic %v", jsonlAlerts, alertIDs)
	}

	matched, hits := map[int]bool{}, 0
	for _, a := range alerts {
		hit := false
		for i, e := range events {
			if p := a.Rec.PTSMillis; p >= e[0]+forMs && p <= e[0]+forMs+everyMs && !matched[i] {
				matched[i], hit = true, true
				break
			}
		}
		if hit {
			hits++
		} else {
			t.Errorf("alert at pts %d matches no true event", a.Rec.PTSMillis)
		}
	}
	for i, e := range events {
		if !matched[i] {
			t.Errorf("true event at pts %d-%d has no alert in [%d, %d]", e[0], e[1], e[0]+forMs, e[0]+forMs+everyMs)
		}
	}
	precision, recall := 1.0, float64(hits)/float64(len(events))
	if len(alerts) > 0 {
		precision = float64(hits) / float64(len(alerts))
	}

	// Offline: the same alerts from the captions file.
	code, stdout, stderr, _ := e2eRunLookout(t, dir, time.Minute, "rules", "test", "--config", cfg, "--captions", out, "--json")
	if code != 0 {
		t.Fatalf("rules test: exit %d: %s", code, stderr)
	}
	var offline []string
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var a sink.Record
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("rules test --json printed %q: %v", line, err)
		}
		offline = append(offline, a.ID)
	}
	if fmt.Sprint(offline) != fmt.Sprint(alertIDs) {
		t.Errorf("rules test gave alerts\n%v\nthe service published\n%v", offline, alertIDs)
	}
	t.Logf("RULES | %d samples, %d true events, %d near misses (short runs) | %d alerts: precision %.2f, recall %.2f | rules test: %d identical ids | render %.1fs, total %.1fs",
		samples, len(events), len(runs)-len(events), len(alerts), precision, recall, len(offline), rendered.Seconds(), time.Since(begin).Seconds())
}

// TestE2ERulesReload: SIGHUP re-reads the rules with the sources. A live
// synthetic camera with a rule that matches every frame (rate-limited by
// its 1 s cooldown) alerts as rule "a"; after the file names rule "b" and a
// SIGHUP, alerts come from "b" only; a file with a regex that does not
// compile is refused with one error line naming the field, and "b" keeps
// alerting.
func TestE2ERulesReload(t *testing.T) {
	model := e2eDemoModel()
	if model == "" {
		t.Fatal("models/demo has no encoder_model.onnx: the demo model ships with the repository; restore it (git checkout models/demo)")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "records.jsonl")
	cfgPath := filepath.Join(dir, "lookout.yaml")
	write := func(rule string) {
		e2eWriteFile(t, cfgPath, fmt.Sprintf(`data_dir: data
log: {level: info, format: json}
http: {listen: ""}
model: {dir: %s}
sources:
  - {id: live, uri: 'synth://driving?seed=3&fps=10&size=320x180', fps: 4}
sinks: {jsonl: {path: records.jsonl}}
rules:
  - %s
`, model, rule))
	}
	alerts := func() (names []string) {
		for _, r := range e2eReadJSONL(t, out) {
			if r.Rec.Kind == sink.KindAlert {
				names = append(names, r.Rec.Rule)
			}
		}
		return names
	}
	write("{name: a, sources: [live], cooldown: 1s}")
	p := e2eStartLookout(t, dir, "run", "--config", cfgPath)
	waitAlerts := func(rule string, n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			got := 0
			for _, name := range alerts() {
				if name == rule {
					got++
				}
			}
			if got >= n {
				return
			}
			if time.Now().After(deadline) || p.exited() {
				t.Fatalf("%d alerts of rule %s, want >= %d; stderr:\n%s", got, rule, n, e2eTail(p.stderr.String(), 20))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitAlerts("a", 2)
	write("{name: b, sources: [live], cooldown: 1s}")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitAlerts("b", 2)
	names := alerts()
	first := strings.Index(strings.Join(names, ""), "b")
	if rest := strings.Join(names, "")[first:]; strings.Contains(rest, "a") {
		t.Errorf("rule a alerted after rule b replaced it: %v", names)
	}
	write("{name: c, sources: [live], regex: 'light is (green'}")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	before := len(names)
	waitAlerts("b", strings.Count(strings.Join(names, ""), "b")+3)
	names = alerts()
	if strings.Contains(strings.Join(names[before:], ""), "c") {
		t.Errorf("a refused reload changed the rules: %v", names[before:])
	}
	if code := p.stop(syscall.SIGTERM, time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, e2eTail(p.stderr.String(), 20))
	}
	var refused []string
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(line, "reload refused") {
			refused = append(refused, line)
		}
	}
	if len(refused) != 1 || !strings.Contains(refused[0], `rules[0].regex: does not compile`) || !strings.Contains(p.stderr.String(), "reloaded sources and rules") {
		t.Errorf("want one 'reload refused' line naming rules[0].regex and one 'reloaded sources and rules'; stderr:\n%s", e2eTail(p.stderr.String(), 20))
	}
	t.Logf("alerts by rule over the run: %v", names)
}
