package synth

import (
	"strings"
	"testing"
)

// allSlots enumerates the cartesian product of d's schema values.
func allSlots(d Domain) []Slots {
	out := []Slots{{}}
	for _, spec := range Schema(d) {
		var next []Slots
		for _, s := range out {
			for _, v := range spec.Values {
				c := s.Clone()
				c[spec.Name] = v
				next = append(next, c)
			}
		}
		out = next
	}
	return out
}

func TestCaptionParseRoundTripAllCombinations(t *testing.T) {
	// Valid combinations, counted by hand from the constraints:
	// driving: no vehicle (1) or 3 kinds x 5 colours x 3 lanes (45), times light, pedestrian, time, weather (16);
	// surveillance: parking lot 4 people x (1 + 5 colours x 2 sides) x 2 doors x 2 times, corridor 4 x 1 x 2 x 2.
	want := map[Domain]int{Driving: 46 * 16, Surveillance: 4*11*4 + 4*4}
	for _, d := range Domains {
		valid := 0
		seen := map[string]bool{}
		for _, s := range allSlots(d) {
			c := Caption(d, s)
			if err := Validate(d, s); err != nil {
				// An invalid combination must never parse back to itself.
				if pd, ps, perr := Parse(c); perr == nil && pd == d && ps.Equal(s) {
					t.Errorf("invalid slots %s parse back from %q", s, c)
				}
				continue
			}
			valid++
			if seen[c] {
				t.Errorf("caption %q produced by two slot sets", c)
			}
			seen[c] = true
			pd, ps, err := Parse(c)
			if err != nil {
				t.Fatalf("Parse(%q): %v", c, err)
			}
			if pd != d || !ps.Equal(s) {
				t.Fatalf("Parse(Caption(%s, %s)) = %s, %s", d, s, pd, ps)
			}
			// Surrounding white space is tolerated, nothing else.
			if _, _, err := Parse("  " + c + "\n"); err != nil {
				t.Errorf("Parse with surrounding space: %v", err)
			}
		}
		if valid != want[d] {
			t.Errorf("%s: %d valid combinations, want %d", d, valid, want[d])
		}
	}
}

func TestExampleCaptions(t *testing.T) {
	got := Caption(Driving, Slots{"vehicle": "car", "vehicle_color": "red", "lane": "left", "light": "green",
		"pedestrian": "yes", "time": "day", "weather": "rain"})
	if want := "a red car in the left lane, the traffic light is green, a pedestrian is crossing, daytime, rain."; got != want {
		t.Errorf("driving caption = %q, want %q", got, want)
	}
	got = Caption(Surveillance, Slots{"place": "parking_lot", "people": "two", "vehicle_color": "blue",
		"vehicle_side": "right", "door": "open", "time": "night"})
	if want := "a parking lot, two people, a blue car parked on the right, the door is open, night."; got != want {
		t.Errorf("surveillance caption = %q, want %q", got, want)
	}
}

func TestParseRejects(t *testing.T) {
	good := "a red car in the left lane, the traffic light is green, a pedestrian is crossing, daytime, rain."
	bad := []string{
		"",
		".",
		strings.TrimSuffix(good, "."),
		strings.ToUpper(good),
		strings.Replace(good, "red car", "purple car", 1),
		strings.Replace(good, "red car", "none car", 1),
		strings.Replace(good, "car", "none", 1),
		strings.Replace(good, "left lane", "none lane", 1),
		strings.Replace(good, "left lane", "middle lane", 1),
		strings.Replace(good, "light is green", "light is yellow", 1),
		strings.Replace(good, "daytime", "day", 1),
		strings.Replace(good, ", rain.", ", snow.", 1),
		strings.Replace(good, ", rain.", ".", 1),
		good + " a red car.",
		strings.Replace(good, ", ", ",  ", 1),
		"a corridor, one person, a red car parked on the left, the door is open, night.",
		"a parking lot, four people, no parked vehicle, the door is open, night.",
		"a parking lot, one person, a red truck parked on the left, the door is open, night.",
		"a parking lot, one person, a red car parked on the center, the door is open, night.",
		"a parking lot, one person, no parked vehicle, the door is ajar, night.",
		"a parking lot, one person, no parked vehicle, the door is open, rain.",
	}
	for _, c := range bad {
		if d, s, err := Parse(c); err == nil {
			t.Errorf("Parse(%q) = %s %s, want an error", c, d, s)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q) error spans lines: %q", c, err)
		}
	}
}

// swap exchanges two values wherever a slot holds one of them.
func swap(s Slots, names []string, a, b string) Slots {
	c := s.Clone()
	for _, n := range names {
		switch c[n] {
		case a:
			c[n] = b
		case b:
			c[n] = a
		}
	}
	return c
}

func TestColourSwapAndMirrorChangeCaption(t *testing.T) {
	for _, d := range Domains {
		swapped, mirrored := 0, 0
		for _, s := range allSlots(d) {
			if Validate(d, s) != nil {
				continue
			}
			base := Caption(d, s)
			// A red/blue channel swap turns red vehicles blue and back.
			rb := swap(s, []string{"vehicle_color"}, "red", "blue")
			if !rb.Equal(s) {
				swapped++
				if Caption(d, rb) == base {
					t.Errorf("%s: red/blue swap of %s keeps caption %q", d, s, base)
				}
			}
			// A mirrored frame puts the vehicle on the other side.
			m := swap(s, []string{"lane", "vehicle_side"}, "left", "right")
			if !m.Equal(s) {
				mirrored++
				_, ps, err := Parse(Caption(d, m))
				if err != nil || ps.Equal(s) {
					t.Errorf("%s: mirror of %s not told apart (err %v)", d, s, err)
				}
			}
		}
		if swapped == 0 || mirrored == 0 {
			t.Errorf("%s: no slot set exercised the swap (%d) or the mirror (%d)", d, swapped, mirrored)
		}
	}
}

func TestSchemaAndDomains(t *testing.T) {
	total := 0
	for _, d := range Domains {
		got, err := ParseDomain(string(d))
		if err != nil || got != d {
			t.Errorf("ParseDomain(%q) = %q, %v", d, got, err)
		}
		total += len(Schema(d))
	}
	if total < 6 {
		t.Errorf("%d slots over both domains, want at least 6", total)
	}
	for _, bad := range []string{"", "Driving", "both", "parking"} {
		if _, err := ParseDomain(bad); err == nil {
			t.Errorf("ParseDomain(%q) accepted", bad)
		}
	}
	if Schema("nope") != nil {
		t.Error("Schema of an unknown domain is not nil")
	}
	// The caller owns the copy.
	s := Schema(Driving)
	s[0].Values[0] = "changed"
	if Schema(Driving)[0].Values[0] == "changed" {
		t.Error("Schema returns shared slices")
	}
	colours := 0
	for _, v := range Schema(Driving)[1].Values {
		if _, ok := vehicleRGB[v]; ok {
			colours++
		}
	}
	if colours < 4 {
		t.Errorf("%d drawable vehicle colours, want at least 4", colours)
	}
}

func TestValidate(t *testing.T) {
	ok := Slots{"vehicle": "none", "vehicle_color": "none", "lane": "none", "light": "red",
		"pedestrian": "no", "time": "night", "weather": "clear"}
	if err := Validate(Driving, ok); err != nil {
		t.Fatalf("Validate(%s): %v", ok, err)
	}
	cases := []Slots{
		swap(ok, []string{"vehicle"}, "none", "car"),
		swap(ok, []string{"lane"}, "none", "left"),
		func() Slots { c := ok.Clone(); delete(c, "weather"); return c }(),
		func() Slots { c := ok.Clone(); c["extra"] = "x"; return c }(),
		func() Slots { c := ok.Clone(); c["light"] = "amber"; return c }(),
	}
	for _, c := range cases {
		if err := Validate(Driving, c); err == nil {
			t.Errorf("Validate(%s) accepted", c)
		}
	}
	if err := Validate(Surveillance, ok); err == nil {
		t.Error("driving slots validated as surveillance")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("a red car in the left lane, the traffic light is green, a pedestrian is crossing, daytime, rain.")
	f.Add("no vehicle ahead, the traffic light is red, no pedestrian, night, clear.")
	f.Add("a parking lot, two people, a blue car parked on the right, the door is open, night.")
	f.Add("a corridor, no people, no parked vehicle, the door is closed, daytime.")
	f.Add("a, b, c, d, e.")
	f.Add("")
	f.Fuzz(func(t *testing.T, c string) {
		d, s, err := Parse(c)
		if err != nil {
			if d != "" || s != nil {
				t.Fatalf("Parse(%q) returned values with error %v", c, err)
			}
			return
		}
		if verr := Validate(d, s); verr != nil {
			t.Fatalf("Parse(%q) returned invalid slots: %v", c, verr)
		}
		if got := Caption(d, s); got != strings.TrimSpace(c) {
			t.Fatalf("Parse(%q) is not the inverse of Caption: %q", c, got)
		}
	})
}
