package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"lookout/internal/config"
	"lookout/sink"
)

func dur(d time.Duration) *time.Duration { return &d }

// rec is a caption record of source src at pts seconds; green and ped set
// the driving attributes light and pedestrian, and the caption says the same.
func rec(src string, pts float64, green, ped bool) sink.Record {
	light, p := "red", "no"
	if green {
		light = "green"
	}
	if ped {
		p = "yes"
	}
	caption := "a car in the center lane, the traffic light is " + light + ", daytime."
	if ped {
		caption = "a car in the center lane, a pedestrian is crossing, the traffic light is " + light + ", daytime."
	}
	ms := int64(pts * 1000)
	r := sink.Record{Kind: sink.KindCaption, SourceID: src, PTSMillis: ms, Caption: caption, Confidence: 0.9,
		CaptureTime: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond),
		Attributes:  map[string]sink.Attr{"light": {Value: light, Prob: 0.95}, "pedestrian": {Value: p, Prob: 0.9}}}
	r.ID = sink.RecordID(src, "", ms, "d", sink.KindCaption)
	return r
}

var crossing = config.Rule{Name: "crossing", Sources: []string{"cam"},
	Attributes: map[string]string{"light": "green", "pedestrian": "yes"}, For: 2 * time.Second, Cooldown: dur(30 * time.Second)}

// feed runs a timeline of (green, pedestrian) per second through e and
// returns the pts (s) of each alert.
func feed(t *testing.T, e *Engine, src string, start float64, states string) []float64 {
	t.Helper()
	var out []float64
	for i, c := range states {
		r := rec(src, start+float64(i), c == 'G' || c == 'B', c == 'P' || c == 'B')
		for _, a := range e.Observe(r) {
			if a.Kind != sink.KindAlert || a.CaptionID != r.ID || a.ID != sink.AlertID(r.ID, a.Rule) {
				t.Fatalf("alert %+v does not name its caption record %s", a, r.ID)
			}
			out = append(out, float64(a.PTSMillis)/1000)
		}
	}
	return out
}

func TestForAndCooldown(t *testing.T) {
	// B: pedestrian on green; G: green only; P: pedestrian on red; .: neither.
	for _, c := range []struct {
		name   string
		rule   config.Rule
		states string
		want   []float64
	}{
		{"holds 2s", crossing, "..BBB..", []float64{4}},
		{"too short", crossing, "..BB.BB.", nil},
		{"near misses", crossing, "PPPPGGGGPBPB", nil},
		{"held 6s alerts once", crossing, ".BBBBBB.", []float64{3}},
		{"second event inside cooldown", crossing, "BBB....BBB....", []float64{2}},
		{"reminder every cooldown while it holds", crossing, strings.Repeat("B", 70), []float64{2, 32, 62}},
		{"second event after cooldown", crossing, "BBB" + strings.Repeat(".", 30) + "BBB", []float64{2, 35}},
		{"for 0 alerts on the first match", config.Rule{Name: "now", Sources: []string{"cam"}, Keywords: []string{"pedestrian"}, Cooldown: dur(5 * time.Second)},
			"..PP..P....P", []float64{2, 11}},
		{"matches every frame: rate-limited by cooldown", config.Rule{Name: "all", Sources: []string{"cam"}, Cooldown: dur(10 * time.Second)},
			strings.Repeat(".", 25), []float64{0, 10, 20}},
		{"default cooldown 60s", config.Rule{Name: "all", Sources: []string{"cam"}}, strings.Repeat(".", 125), []float64{0, 60, 120}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := New([]config.Rule{c.rule})
			if err != nil {
				t.Fatal(err)
			}
			if got := feed(t, e, "cam", 0, c.states); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("alerts at %v, want %v", got, c.want)
			}
		})
	}
}

func TestMatchers(t *testing.T) {
	r := rec("cam", 0, true, true)
	r.Labels = map[string]string{"site": "north"}
	night := r
	night.CaptureTime = time.Date(2026, 12, 1, 23, 30, 0, 0, time.UTC)
	lowProb := r
	lowProb.Attributes = map[string]sink.Attr{"light": {Value: "green", Prob: 0.4}, "pedestrian": {Value: "yes", Prob: 0.9}}
	for _, c := range []struct {
		name string
		rule config.Rule
		rec  sink.Record
		want bool
	}{
		{"keyword, any case", config.Rule{Keywords: []string{"Pedestrian"}}, r, true},
		{"keyword phrase", config.Rule{Keywords: []string{"light is green"}}, r, true},
		{"keywords all needed", config.Rule{Keywords: []string{"pedestrian", "truck"}}, r, false},
		{"whole words only", config.Rule{Keywords: []string{"pedes"}}, r, false},
		{"regex", config.Rule{Regex: `pedestrian .* light is (green|yellow)`}, r, true},
		{"regex misses", config.Rule{Regex: `light is red`}, r, false},
		{"attributes", config.Rule{Attributes: map[string]string{"light": "green"}}, r, true},
		{"attribute value differs", config.Rule{Attributes: map[string]string{"light": "red"}}, r, false},
		{"attribute the record lacks", config.Rule{Attributes: map[string]string{"weather": "rain"}}, r, false},
		{"min_prob", config.Rule{Attributes: map[string]string{"light": "green"}, MinProb: 0.5}, lowProb, false},
		{"min_prob met", config.Rule{Attributes: map[string]string{"light": "green"}, MinProb: 0.3}, lowProb, true},
		{"min_confidence", config.Rule{MinConfidence: 0.95}, r, false},
		{"window", config.Rule{Window: "07:00-19:00"}, r, true},
		{"outside window", config.Rule{Window: "07:00-19:00"}, night, false},
		{"window wraps midnight", config.Rule{Window: "22:00-06:00"}, night, true},
		{"window in a zone", config.Rule{Window: "07:00-19:00", Zone: "Asia/Tokyo"}, r, false}, // 12:00 UTC is 21:00 in Tokyo
		{"selected by labels", config.Rule{Labels: map[string]string{"site": "north"}}, r, true},
		{"labels differ", config.Rule{Labels: map[string]string{"site": "south"}}, r, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.rule.Name = "r"
			if c.rule.Labels == nil {
				c.rule.Sources = []string{"cam"}
			}
			e, err := New([]config.Rule{c.rule})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(e.Observe(c.rec)) == 1; got != c.want {
				t.Errorf("alert: %v, want %v", got, c.want)
			}
		})
	}
}

func TestStatePerSourceAndResets(t *testing.T) {
	e, _ := New([]config.Rule{crossing, {Name: "other", Sources: []string{"cam2"}, Keywords: []string{"pedestrian"}, For: 2 * time.Second}})
	// Interleaved sources keep their own state; cam2 is watched only by "other".
	var got []string
	for i := 0; i < 4; i++ {
		for _, src := range []string{"cam", "cam2"} {
			for _, a := range e.Observe(rec(src, float64(i), true, true)) {
				got = append(got, fmt.Sprintf("%s/%s@%d", a.Rule, a.SourceID, a.PTSMillis))
			}
		}
	}
	if want := "[crossing/cam@2000 other/cam2@2000]"; fmt.Sprint(got) != want {
		t.Errorf("alerts %v, want %s", got, want)
	}
	// A gap ends the match: 2 s more of holding are needed.
	e, _ = New([]config.Rule{crossing})
	feed(t, e, "cam", 0, "BB")
	e.Observe(sink.Record{Kind: sink.KindGap, SourceID: "cam", PTSMillis: 2000})
	if a := feed(t, e, "cam", 3, "BBB"); fmt.Sprint(a) != "[5]" {
		t.Errorf("after a gap: alerts at %v, want [5]", a)
	}
	// A new run (a live source reopened) starts afresh, cooldown included.
	r := rec("cam", 0, true, true)
	r.Run = "run-2"
	e.Observe(r)
	for _, p := range []float64{1, 2} {
		r = rec("cam", p, true, true)
		r.Run = "run-2"
		if a := e.Observe(r); (len(a) == 1) != (p == 2) {
			t.Errorf("run-2 pts %gs: %d alerts", p, len(a))
		}
	}
	// Heartbeats and alerts are not matched.
	hb := rec("cam", 9, true, true)
	hb.Kind = sink.KindHeartbeat
	if a := e.Observe(hb); len(a) != 0 {
		t.Errorf("a heartbeat fired %v", a)
	}
}

func TestReplaceKeepsUnchangedRules(t *testing.T) {
	e, _ := New([]config.Rule{crossing})
	feed(t, e, "cam", 0, "BBB") // alert at 2, cooldown until 32
	if err := e.Replace([]config.Rule{crossing}); err != nil {
		t.Fatal(err)
	}
	if a := feed(t, e, "cam", 3, "...BBB"); len(a) != 0 {
		t.Errorf("unchanged rule lost its cooldown: alerts %v", a)
	}
	changed := crossing
	changed.For = time.Second
	_ = e.Replace([]config.Rule{changed})
	if a := feed(t, e, "cam", 9, "BB"); fmt.Sprint(a) != "[10]" {
		t.Errorf("changed rule: alerts %v, want [10]", a)
	}
	bad := crossing
	bad.Regex = "("
	if err := e.Replace([]config.Rule{bad}); err == nil || e.Len() != 1 {
		t.Errorf("Replace with a bad regex: %v, %d rules", err, e.Len())
	}
}

func TestAlertIDs(t *testing.T) {
	r := rec("cam", 5, true, true)
	a, b := sink.AlertID(r.ID, "x"), sink.AlertID(r.ID, "y")
	if a == b || a != sink.AlertID(r.ID, "x") || len(a) != 32 {
		t.Errorf("alert ids %s %s: want deterministic, distinct per rule, 32 hex digits", a, b)
	}
}

func TestCheckAgainstModelSchema(t *testing.T) {
	c, err := config.Parse([]byte(`
sources: [{id: cam, uri: x.mp4}]
sinks: {jsonl: {path: "-"}}
rules:
  - name: r
    sources: [cam]
    attributes: {light: green, pedestrain: "yes", weather: snow}
`), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	schema := Schema{"light": {"red", "green", "n/a"}, "pedestrian": {"no", "yes"}, "weather": {"clear", "rain"}}
	err = Check(c, schema)
	for _, want := range []string{
		`line 7: rules[0].attributes.pedestrain: unknown slot "pedestrain" (known: light, pedestrian, weather)`,
		`line 7: rules[0].attributes.weather: unknown value "snow" for slot weather (known: clear, rain)`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check: %v\nwant %s", err, want)
		}
	}
	if err := Check(c, nil); err != nil {
		t.Errorf("unknown model: %v", err)
	}
	if err := Check(c, Schema{}); err == nil || !strings.Contains(err.Error(), "the model has no attribute heads") {
		t.Errorf("model without heads: %v", err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	base := "sources: [{id: cam, uri: x.mp4}]\nsinks: {jsonl: {path: \"-\"}}\nrules:\n"
	kafka := "sources: [{id: cam, uri: x.mp4}]\nsinks: {kafka: {enabled: true, topic: t, alerts_topic: t}}\n"
	if _, err := config.Parse([]byte(kafka), func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), `line 2: sinks.kafka.alerts_topic: "t" is also sinks.kafka.topic: alerts need a topic of their own`) {
		t.Errorf("alerts_topic equal to topic: %v", err)
	}
	for _, c := range []struct{ rule, want string }{
		{"  - {name: r, sources: [cam], min_prob: 1.5}", "line 4: rules[0].min_prob: must be between 0 and 1, got 1.5"},
		{"  - {name: r, sources: [cam], min_confidence: -1}", "rules[0].min_confidence: must be between 0 and 1"},
		{"  - {name: r, sources: [cam], regex: 'light is (green'}", "rules[0].regex: does not compile: missing closing ): `light is (green`"},
		{"  - {name: r}", "rules[0].sources: the rule selects no source"},
		{"  - {name: r, sources: [cma]}", `rules[0].sources[0]: "cma" is not a configured source (known: cam)`},
		{"  - {name: r, sources: [cam], attributes: {light: ''}}", "rules[0].attributes.light: needs a value"},
		{"  - {name: r, sources: [cam], window: '7-19'}", `rules[0].window: "7-19" is not HH:MM-HH:MM`},
		{"  - {name: r, sources: [cam], window: '07:00-19:00', zone: Mars/Base}", `rules[0].zone: "Mars/Base" is not a known time zone`},
		{"  - {name: r, sources: [cam], cooldown: 0s}", "rules[0].cooldown: must be > 0"},
		{"  - {name: r, sources: [cam], for: -1s}", "rules[0].for: must be >= 0"},
		{"  - {name: 'a b', sources: [cam]}", `rules[0].name: "a b" must be non-empty`},
		{"  - {name: r, sources: [cam]}\n  - {name: r, sources: [cam]}", `line 5: rules[1].name: "r" is used by another rule (line 4)`},
		{"  - {name: r, sources: [cam], keywords: [pedestrian], evry: 1s}", `rules[0]: unknown field "evry"`},
	} {
		_, err := config.Parse([]byte(base+c.rule+"\n"), func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %s", c.rule, err, c.want)
		}
	}
}
