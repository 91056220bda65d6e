package synth

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestScriptedScene(t *testing.T) {
	steps := []Step{
		{Hold: 8 * time.Second, Set: Slots{"light": "red", "pedestrian": "no"}},
		{Hold: 6 * time.Second, Set: Slots{"light": "green", "pedestrian": "yes"}},
		{Hold: 3 * time.Second, Set: Slots{"pedestrian": "no"}},
	}
	s, err := NewScriptedScene(Driving, 4, steps)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		at          time.Duration
		light, walk string
	}{{0, "red", "no"}, {7999 * time.Millisecond, "red", "no"}, {8 * time.Second, "green", "yes"},
		{13 * time.Second, "green", "yes"}, {14 * time.Second, "green", "no"}, {time.Hour, "green", "no"}} {
		sl := s.SlotsAt(c.at)
		if sl["light"] != c.light || sl["pedestrian"] != c.walk {
			t.Errorf("at %s: %s, want light=%s pedestrian=%s", c.at, sl, c.light, c.walk)
		}
	}
	if got := fmt.Sprint(s.Changes(time.Hour)); got != "[8s 14s]" {
		t.Errorf("changes %s, want [8s 14s]", got)
	}
	other, _ := NewScriptedScene(Driving, 4, steps)
	if s.SlotsAt(0)["vehicle"] != other.SlotsAt(0)["vehicle"] || s.CaptionAt(10*time.Second) != other.CaptionAt(10*time.Second) {
		t.Errorf("equal scripts and seeds give different scenes")
	}
	for _, bad := range []struct {
		steps []Step
		want  string
	}{
		{nil, "at least one step"},
		{[]Step{{Hold: 0}}, "step 1: hold must be > 0"},
		{[]Step{{Hold: time.Second}, {Hold: time.Second, Set: Slots{"light": "blue"}}}, `step 2: driving slots: slot "light" has value "blue"`},
		{[]Step{{Hold: time.Second, Set: Slots{"door": "open"}}}, `unknown slot "door"`},
	} {
		if _, err := NewScriptedScene(Driving, 1, bad.steps); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: %v, want %s", bad.steps, err, bad.want)
		}
	}
}
