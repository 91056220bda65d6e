// Package synth renders procedural video scenes whose true caption is known
// for every frame: what the live synth:// source shows. Clips, training
// datasets and scoring against the truth are in synth/corpus, which the live
// path does not import.
//
// Two domains exist: Driving (an ego view of a three-lane road) and
// Surveillance (a fixed camera over a parking lot or a corridor). Each frame's
// content is described by slots (Slots) and the caption is built from the
// slots by a small, unambiguous grammar (Caption); Parse is its strict inverse.
// docs/SCENES.md describes the grammar.
package synth

import (
	"fmt"
	"sort"
	"strings"
)

// Domain names a family of scenes.
type Domain string

// The domains.
const (
	Driving      Domain = "driving"
	Surveillance Domain = "surveillance"
)

// Domains lists every domain in a fixed order.
var Domains = []Domain{Driving, Surveillance}

// ParseDomain returns the domain named s ("driving" or "surveillance").
func ParseDomain(s string) (Domain, error) {
	switch Domain(s) {
	case Driving, Surveillance:
		return Domain(s), nil
	}
	return "", fmt.Errorf("unknown scene domain %q: use driving or surveillance", s)
}

// Slots maps a slot name to its value; see Schema for names and values.
type Slots map[string]string

// Clone returns a copy of s.
func (s Slots) Clone() Slots {
	c := make(Slots, len(s))
	for k, v := range s {
		c[k] = v
	}
	return c
}

// Equal reports whether s and o hold the same names and values.
func (s Slots) Equal(o Slots) bool {
	if len(s) != len(o) {
		return false
	}
	for k, v := range s {
		if ov, ok := o[k]; !ok || ov != v {
			return false
		}
	}
	return true
}

// String renders s as sorted name=value pairs, for messages.
func (s Slots) String() string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + s[k]
	}
	return strings.Join(parts, " ")
}

// SlotSpec names one slot and every value it can take.
type SlotSpec struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// Slot names and values. "none" in vehicle_color, lane and vehicle_side
// means there is no vehicle.
var (
	vehicleKinds  = []string{"none", "car", "truck", "bus"}
	colors        = []string{"none", "red", "blue", "green", "yellow", "white"}
	lanes         = []string{"none", "left", "center", "right"}
	lightStates   = []string{"red", "green"}
	yesNo         = []string{"no", "yes"}
	times         = []string{"day", "night"}
	weathers      = []string{"clear", "rain"}
	places        = []string{"parking_lot", "corridor"}
	peopleCounts  = []string{"none", "one", "two", "three"}
	sides         = []string{"none", "left", "right"}
	doorStates    = []string{"closed", "open"}
	drivingSchema = []SlotSpec{
		{"vehicle", vehicleKinds},
		{"vehicle_color", colors},
		{"lane", lanes},
		{"light", lightStates},
		{"pedestrian", yesNo},
		{"time", times},
		{"weather", weathers},
	}
	surveillanceSchema = []SlotSpec{
		{"place", places},
		{"people", peopleCounts},
		{"vehicle_color", colors},
		{"vehicle_side", sides},
		{"door", doorStates},
		{"time", times},
	}
)

// Schema returns the slots of domain d in caption order, each with all its
// values (a fresh copy the caller may modify). It returns nil for an unknown
// domain.
func Schema(d Domain) []SlotSpec {
	var src []SlotSpec
	switch d {
	case Driving:
		src = drivingSchema
	case Surveillance:
		src = surveillanceSchema
	default:
		return nil
	}
	out := make([]SlotSpec, len(src))
	for i, s := range src {
		out[i] = SlotSpec{Name: s.Name, Values: append([]string(nil), s.Values...)}
	}
	return out
}

// Validate reports whether s is a complete, consistent set of slots for d:
// every slot of Schema(d) present with a listed value, no other slots, a
// vehicle's colour and position set exactly when there is a vehicle, and no
// parked vehicle in a corridor.
func Validate(d Domain, s Slots) error {
	schema := Schema(d)
	if schema == nil {
		return fmt.Errorf("unknown scene domain %q: use driving or surveillance", d)
	}
	for _, spec := range schema {
		v, ok := s[spec.Name]
		if !ok {
			return fmt.Errorf("%s slots: missing slot %q", d, spec.Name)
		}
		if !contains(spec.Values, v) {
			return fmt.Errorf("%s slots: slot %q has value %q, want one of %s", d, spec.Name, v, strings.Join(spec.Values, "|"))
		}
	}
	if len(s) != len(schema) {
		for k := range s {
			if !hasSlot(schema, k) {
				return fmt.Errorf("%s slots: unknown slot %q", d, k)
			}
		}
	}
	switch d {
	case Driving:
		none := s["vehicle"] == "none"
		if none != (s["vehicle_color"] == "none") || none != (s["lane"] == "none") {
			return fmt.Errorf("driving slots: vehicle, vehicle_color and lane must all be none or all set (got %s)", s)
		}
	case Surveillance:
		none := s["vehicle_color"] == "none"
		if none != (s["vehicle_side"] == "none") {
			return fmt.Errorf("surveillance slots: vehicle_color and vehicle_side must both be none or both set (got %s)", s)
		}
		if s["place"] == "corridor" && !none {
			return fmt.Errorf("surveillance slots: a corridor has no parked vehicle (got %s)", s)
		}
	}
	return nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func hasSlot(schema []SlotSpec, name string) bool {
	for _, s := range schema {
		if s.Name == name {
			return true
		}
	}
	return false
}

// Caption phrases. Every phrase is comma-free, so a caption splits into its
// parts at ", ".
var (
	peopleWords = map[string]string{"none": "no people", "one": "one person", "two": "two people", "three": "three people"}
	placeWords  = map[string]string{"parking_lot": "a parking lot", "corridor": "a corridor"}
	timeWords   = map[string]string{"day": "daytime", "night": "night"}
)

// Caption builds the caption of slots s in domain d:
//
//	driving:      "<vehicle>, the traffic light is <red|green>, <pedestrian>, <daytime|night>, <clear|rain>."
//	              vehicle = "no vehicle ahead" | "a <colour> <car|truck|bus> in the <left|center|right> lane"
//	              pedestrian = "a pedestrian is crossing" | "no pedestrian"
//	surveillance: "<a parking lot|a corridor>, <people>, <vehicle>, the door is <open|closed>, <daytime|night>."
//	              people = "no people" | "one person" | "two people" | "three people"
//	              vehicle = "no parked vehicle" | "a <colour> car parked on the <left|right>"
//
// Caption(d, s) is parsed back to (d, s) by Parse for every s that passes
// Validate. Slots that fail Validate still give a caption (missing values
// render empty) that Parse rejects or maps elsewhere.
func Caption(d Domain, s Slots) string {
	switch d {
	case Driving:
		veh := "no vehicle ahead"
		if s["vehicle"] != "none" {
			veh = "a " + s["vehicle_color"] + " " + s["vehicle"] + " in the " + s["lane"] + " lane"
		}
		ped := "no pedestrian"
		if s["pedestrian"] == "yes" {
			ped = "a pedestrian is crossing"
		}
		return veh + ", the traffic light is " + s["light"] + ", " + ped + ", " + timeWords[s["time"]] + ", " + s["weather"] + "."
	case Surveillance:
		veh := "no parked vehicle"
		if s["vehicle_color"] != "none" {
			veh = "a " + s["vehicle_color"] + " car parked on the " + s["vehicle_side"]
		}
		return placeWords[s["place"]] + ", " + peopleWords[s["people"]] + ", " + veh + ", the door is " + s["door"] + ", " + timeWords[s["time"]] + "."
	}
	return ""
}

// Parse is the strict inverse of Caption: it accepts exactly the captions
// Caption produces for valid slots (surrounding white space aside) and
// returns their domain and slots; anything else is an error.
func Parse(caption string) (Domain, Slots, error) {
	c := strings.TrimSpace(caption)
	body, ok := strings.CutSuffix(c, ".")
	if !ok {
		return "", nil, fmt.Errorf("caption %q: does not end with a period", clip(c))
	}
	parts := strings.Split(body, ", ")
	if len(parts) != 5 {
		return "", nil, fmt.Errorf("caption %q: has %d comma-separated parts, want 5", clip(c), len(parts))
	}
	var d Domain
	var s Slots
	var err error
	if _, isPlace := reverse(placeWords, parts[0]); isPlace {
		d = Surveillance
		s, err = parseSurveillance(parts)
	} else {
		d = Driving
		s, err = parseDriving(parts)
	}
	if err != nil {
		return "", nil, fmt.Errorf("caption %q: %w", clip(c), err)
	}
	if err := Validate(d, s); err != nil {
		return "", nil, fmt.Errorf("caption %q: %w", clip(c), err)
	}
	return d, s, nil
}

func parseDriving(p []string) (Slots, error) {
	s := Slots{}
	if p[0] == "no vehicle ahead" {
		s["vehicle"], s["vehicle_color"], s["lane"] = "none", "none", "none"
	} else {
		w := strings.Split(p[0], " ")
		if len(w) != 7 || w[0] != "a" || w[3] != "in" || w[4] != "the" || w[6] != "lane" ||
			w[1] == "none" || !contains(colors, w[1]) ||
			w[2] == "none" || !contains(vehicleKinds, w[2]) ||
			w[5] == "none" || !contains(lanes, w[5]) {
			return nil, fmt.Errorf("vehicle phrase %q: want \"no vehicle ahead\" or \"a <colour> <car|truck|bus> in the <left|center|right> lane\"", p[0])
		}
		s["vehicle_color"], s["vehicle"], s["lane"] = w[1], w[2], w[5]
	}
	light, ok := strings.CutPrefix(p[1], "the traffic light is ")
	if !ok || !contains(lightStates, light) {
		return nil, fmt.Errorf("light phrase %q: want \"the traffic light is <red|green>\"", p[1])
	}
	s["light"] = light
	switch p[2] {
	case "a pedestrian is crossing":
		s["pedestrian"] = "yes"
	case "no pedestrian":
		s["pedestrian"] = "no"
	default:
		return nil, fmt.Errorf("pedestrian phrase %q: want \"a pedestrian is crossing\" or \"no pedestrian\"", p[2])
	}
	t, ok := reverse(timeWords, p[3])
	if !ok {
		return nil, fmt.Errorf("time phrase %q: want daytime or night", p[3])
	}
	s["time"] = t
	if !contains(weathers, p[4]) {
		return nil, fmt.Errorf("weather phrase %q: want clear or rain", p[4])
	}
	s["weather"] = p[4]
	return s, nil
}

func parseSurveillance(p []string) (Slots, error) {
	s := Slots{}
	s["place"], _ = reverse(placeWords, p[0])
	n, ok := reverse(peopleWords, p[1])
	if !ok {
		return nil, fmt.Errorf("people phrase %q: want no people, one person, two people or three people", p[1])
	}
	s["people"] = n
	if p[2] == "no parked vehicle" {
		s["vehicle_color"], s["vehicle_side"] = "none", "none"
	} else {
		w := strings.Split(p[2], " ")
		if len(w) != 7 || w[0] != "a" || w[2] != "car" || w[3] != "parked" || w[4] != "on" || w[5] != "the" ||
			w[1] == "none" || !contains(colors, w[1]) || w[6] == "none" || !contains(sides, w[6]) {
			return nil, fmt.Errorf("vehicle phrase %q: want \"no parked vehicle\" or \"a <colour> car parked on the <left|right>\"", p[2])
		}
		s["vehicle_color"], s["vehicle_side"] = w[1], w[6]
	}
	door, ok := strings.CutPrefix(p[3], "the door is ")
	if !ok || !contains(doorStates, door) {
		return nil, fmt.Errorf("door phrase %q: want \"the door is <open|closed>\"", p[3])
	}
	s["door"] = door
	t, ok := reverse(timeWords, p[4])
	if !ok {
		return nil, fmt.Errorf("time phrase %q: want daytime or night", p[4])
	}
	s["time"] = t
	return s, nil
}

func reverse(m map[string]string, phrase string) (string, bool) {
	for k, v := range m {
		if v == phrase {
			return k, true
		}
	}
	return "", false
}

// clip shortens s for error messages.
func clip(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
