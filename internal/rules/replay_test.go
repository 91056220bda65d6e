package rules

import (
	"encoding/json"
	"strings"
	"testing"

	"lookout/internal/config"
	"lookout/sink"
)

func TestReplayMatchesLiveAndNamesBadLines(t *testing.T) {
	var lines []string
	var live []string
	e, _ := New([]config.Rule{crossing})
	for i, c := range "..BBBB..PPGG" {
		r := rec("cam", float64(i), c == 'G' || c == 'B', c == 'P' || c == 'B')
		b, _ := json.Marshal(r)
		lines = append(lines, string(b))
		for _, a := range e.Observe(r) {
			live = append(live, a.ID)
		}
		if i == 5 {
			lines = append(lines, "", `{"kind":"heartbeat","source_id":"cam","id":"x"}`)
		}
	}
	e2, _ := New([]config.Rule{crossing})
	var replayed []string
	st, err := Replay(strings.NewReader(strings.Join(lines, "\n")), "c.jsonl", e2, func(a sink.Record) { replayed = append(replayed, a.ID) })
	if err != nil || st.Captions != 12 || st.Alerts != 1 || strings.Join(replayed, ",") != strings.Join(live, ",") {
		t.Errorf("replay: %v %+v alerts %v, live %v", err, st, replayed, live)
	}
	for _, bad := range []struct{ text, want string }{
		{lines[0] + "\n{\"kind\":", "c.jsonl:2: not a lookout record: unexpected end of JSON input"},
		{lines[0] + "\n\n[1]", "c.jsonl:3: not a lookout record: json: cannot unmarshal array"},
		{`{"caption":"x"}`, "c.jsonl:1: not a lookout record: kind, source_id and id are required"},
	} {
		e3, _ := New([]config.Rule{crossing})
		if _, err := Replay(strings.NewReader(bad.text), "c.jsonl", e3, func(sink.Record) {}); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %s", bad.text, err, bad.want)
		}
	}
}
