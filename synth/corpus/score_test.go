package corpus

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"lookout/synth"
)

func truthLines(t *testing.T, d synth.Domain, frames []synth.Slots, fps float64) []TruthLine {
	t.Helper()
	out := make([]TruthLine, len(frames))
	for i, s := range frames {
		if err := synth.Validate(d, s); err != nil {
			t.Fatal(err)
		}
		out[i] = TruthLine{Frame: i, PTSMs: FramePTS(i, fps), Caption: synth.Caption(d, s), Slots: s}
	}
	return out
}

func TestScoreKnownWrongSlot(t *testing.T) {
	a := synth.Slots{"vehicle": "car", "vehicle_color": "red", "lane": "left", "light": "green",
		"pedestrian": "yes", "time": "day", "weather": "rain"}
	b := a.Clone()
	b["light"] = "red"
	truth := truthLines(t, synth.Driving, []synth.Slots{a, a, b, b}, 1) // pts 0, 1000, 2000, 3000
	wrongLight := a.Clone()
	wrongLight["light"] = "red"
	caps := []CaptionLine{
		{PTSMs: 0, Caption: synth.Caption(synth.Driving, a)},             // exact
		{PTSMs: 1000, Caption: synth.Caption(synth.Driving, wrongLight)}, // light wrong: 6/7
		{PTSMs: 2500, Caption: synth.Caption(synth.Driving, b)},          // between frames: matches 2000, exact
		{PTSMs: 3000, Caption: "a red car somewhere."},                   // unparseable: 0
		{PTSMs: -5, Caption: synth.Caption(synth.Driving, a)},            // before the first frame: unmatched
		{PTSMs: 4001, Caption: synth.Caption(synth.Driving, b)},          // past the clip's end: unmatched
		{PTSMs: 4000, Caption: synth.Caption(synth.Driving, b)},          // last frame + one interval: frame 3, exact
	}
	r := Score(truth, caps)
	if r.Frames != 5 || r.Unmatched != 2 || r.Unparseable != 1 {
		t.Fatalf("frames %d unmatched %d unparseable %d, want 5 2 1", r.Frames, r.Unmatched, r.Unparseable)
	}
	if want := 3.0 / 5; math.Abs(r.ExactMatch-want) > 1e-9 {
		t.Errorf("exact match %.4f, want %.4f", r.ExactMatch, want)
	}
	if want := (1 + 6.0/7 + 1 + 0 + 1) / 5; math.Abs(r.SlotAccuracy-want) > 1e-9 {
		t.Errorf("slot accuracy %.4f, want %.4f", r.SlotAccuracy, want)
	}
	for _, s := range r.Slots {
		want := 4
		if s.Name == "light" {
			want = 3
		}
		if s.Domain != synth.Driving || s.Total != 5 || s.Correct != want {
			t.Errorf("slot %s.%s: %d/%d, want %d/5", s.Domain, s.Name, s.Correct, s.Total, want)
		}
	}
	if got, want := r.String(), "exact_match=0.600 slot_accuracy=0.771 frames=5"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}

func TestScorePrefersExactPTSAndOtherDomainScoresZero(t *testing.T) {
	a := synth.Slots{"place": "parking_lot", "people": "one", "vehicle_color": "none", "vehicle_side": "none", "door": "open", "time": "day"}
	b := a.Clone()
	b["door"] = "closed"
	truth := truthLines(t, synth.Surveillance, []synth.Slots{a, b}, 30) // pts 0, 33
	r := Score(truth, []CaptionLine{{PTSMs: 33, Caption: synth.Caption(synth.Surveillance, b)}})
	if r.ExactMatch != 1 || r.SlotAccuracy != 1 {
		t.Errorf("pts 33 did not match frame 1: %s", r)
	}
	drv := "no vehicle ahead, the traffic light is red, no pedestrian, daytime, clear."
	r = Score(truth, []CaptionLine{{PTSMs: 0, Caption: drv}})
	if r.SlotAccuracy != 0 || r.Frames != 1 {
		t.Errorf("a driving caption on a surveillance frame scored %s", r)
	}
	if r := Score(truth, nil); r.Frames != 0 || r.ExactMatch != 0 {
		t.Errorf("empty captions scored %s", r)
	}
}

func TestReadTruthAndCaptions(t *testing.T) {
	a := synth.Slots{"vehicle": "bus", "vehicle_color": "yellow", "lane": "right", "light": "red",
		"pedestrian": "no", "time": "night", "weather": "clear"}
	line, _ := json.Marshal(TruthLine{Frame: 0, PTSMs: 0, Caption: synth.Caption(synth.Driving, a), Slots: a})
	tr, err := ReadTruth(strings.NewReader(string(line)+"\n\n"), "x.truth.jsonl")
	if err != nil || len(tr) != 1 || !tr[0].Slots.Equal(a) {
		t.Fatalf("ReadTruth: %v %v", tr, err)
	}
	badTruth := []struct{ in, want string }{
		{string(line) + "\n{not json", "x.truth.jsonl:2: "},
		{`{"pts_ms":0,"caption":"x","slots":{}}`, "x.truth.jsonl:1: missing \"frame\""},
		{`{"frame":0,"caption":"x","slots":{}}`, "x.truth.jsonl:1: missing \"pts_ms\""},
		{`{"frame":0,"pts_ms":0,"slots":{}}`, "x.truth.jsonl:1: missing \"caption\""},
		{`{"frame":0,"pts_ms":0,"caption":"hello.","slots":{}}`, "x.truth.jsonl:1: truth caption"},
		{strings.Replace(string(line), `"lane":"right"`, `"lane":"left"`, 1) + "\n", "x.truth.jsonl:1: slots {"},
		{strings.Replace(string(line), `"lane":"right"`, `"lane":"up"`, 1), "x.truth.jsonl:1: driving slots"},
		{`[1,2]`, "x.truth.jsonl:1: not a truth record"},
	}
	for _, c := range badTruth {
		_, err := ReadTruth(strings.NewReader(c.in), "x.truth.jsonl")
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ReadTruth(%q) error %v, want one line starting %q", c.in, err, c.want)
		}
	}

	in := `{"kind":"caption","pts_ms":1000,"caption":"a"}
{"kind":"gap","pts_ms":1500,"gap_ms":300}
{"pts_ms":2000,"caption":"b","confidence":0.9}
`
	caps, err := ReadCaptions(strings.NewReader(in), "y.jsonl")
	if err != nil || len(caps) != 2 || caps[0] != (CaptionLine{1000, "a"}) || caps[1] != (CaptionLine{2000, "b"}) {
		t.Fatalf("ReadCaptions = %v, %v", caps, err)
	}
	for _, c := range []struct{ in, want string }{
		{`{"pts_ms":1.5,"caption":"a"}`, "y.jsonl:1: not a caption record"},
		{"\n" + `{"caption":"a"}`, "y.jsonl:2: missing \"pts_ms\""},
		{`{"kind":"caption","pts_ms":1}`, "y.jsonl:1: missing \"caption\""},
		{`{"pts_ms":"1","caption":"a"}`, "y.jsonl:1: "},
		{`garbage`, "y.jsonl:1: "},
	} {
		_, err := ReadCaptions(strings.NewReader(c.in), "y.jsonl")
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ReadCaptions(%q) error %v, want one line starting %q", c.in, err, c.want)
		}
	}
}

func FuzzReadTruth(f *testing.F) {
	f.Add(`{"frame":0,"pts_ms":0,"caption":"a corridor, no people, no parked vehicle, the door is closed, daytime.","slots":{"place":"corridor","people":"none","vehicle_color":"none","vehicle_side":"none","door":"closed","time":"day"}}`)
	f.Add(`{"frame":1,"pts_ms":33}`)
	f.Add("{\n}\n[]")
	f.Add(`{"frame":-1,"pts_ms":0,"caption":"","slots":null}`)
	f.Fuzz(func(t *testing.T, in string) {
		lines, err := ReadTruth(strings.NewReader(in), "f.jsonl")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.jsonl:") {
				t.Fatalf("error does not name the file and line: %v", err)
			}
			return
		}
		for _, l := range lines {
			d, _, perr := synth.Parse(l.Caption)
			if perr != nil || synth.Validate(d, l.Slots) != nil {
				t.Fatalf("accepted a bad truth line %+v", l)
			}
		}
		Score(lines, []CaptionLine{{PTSMs: 0, Caption: "x"}})
	})
}

func FuzzReadCaptions(f *testing.F) {
	f.Add(`{"kind":"caption","pts_ms":1000,"caption":"a"}`)
	f.Add(`{"kind":"gap","pts_ms":1}`)
	f.Add(`{"pts_ms":9223372036854775807,"caption":""}` + "\n" + `{"pts_ms":-1,"caption":"b"}`)
	f.Add("\x00\n{")
	f.Fuzz(func(t *testing.T, in string) {
		caps, err := ReadCaptions(strings.NewReader(in), "c.jsonl")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "c.jsonl:") {
				t.Fatalf("error does not name the file and line: %v", err)
			}
			return
		}
		a := synth.Slots{"place": "corridor", "people": "none", "vehicle_color": "none", "vehicle_side": "none", "door": "open", "time": "day"}
		r := Score([]TruthLine{{PTSMs: 0, Caption: synth.Caption(synth.Surveillance, a), Slots: a}}, caps)
		if r.Frames+r.Unmatched != len(caps) || r.ExactMatch < 0 || r.ExactMatch > 1 || r.SlotAccuracy < 0 || r.SlotAccuracy > 1 {
			t.Fatalf("score out of range: %+v for %d captions", r, len(caps))
		}
	})
}

// The fixture pair in testdata/synth: four truth frames at 1 fps; records at
// pts 0 (exact), 1040 (matches frame 1, exact), 2000 (door wrong: 5 of 6
// slots), 3000 (unparseable: 0), plus a gap record that is skipped.
func TestScoreFixtureFiles(t *testing.T) {
	truth, err := ReadTruthFile("../../testdata/synth/clip.truth.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	caps, err := ReadCaptionsFile("../../testdata/synth/captions.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	r := Score(truth, caps)
	if want := fmt.Sprintf("exact_match=%.3f slot_accuracy=%.3f frames=4", 2.0/4, (1+1+5.0/6+0)/4); r.String() != want {
		t.Errorf("score %q, want %q", r, want)
	}
	if _, err := ReadTruthFile("../../testdata/synth/captions.jsonl"); err == nil {
		t.Error("a captions file was accepted as truth")
	}
}

func TestScoreMismatchedAndMatchTruth(t *testing.T) {
	truth := []TruthLine{{PTSMs: 2000, Caption: "b"}, {PTSMs: 0, Caption: "a"}, {PTSMs: 1000, Caption: "a"}}
	caps := []CaptionLine{{PTSMs: -5, Caption: "x"}, {PTSMs: 0, Caption: "a "}, {PTSMs: 1500, Caption: "b"},
		{PTSMs: 2500, Caption: "b"}, {PTSMs: 3500, Caption: "b"}}
	got := MatchTruth(truth, caps)
	want := []int{-1, 1, 2, 0, -1}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("MatchTruth = %v, want %v", got, want)
		}
	}
	r := Score(truth, caps)
	if r.Frames != 3 || r.Mismatched != 1 || r.Unmatched != 2 {
		t.Errorf("Score: frames=%d mismatched=%d unmatched=%d, want 3, 1, 2", r.Frames, r.Mismatched, r.Unmatched)
	}
}
