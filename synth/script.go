package synth

import (
	"fmt"
	"math/rand"
	"time"
)

// Step is one segment of a scripted scene: the slots in Set take their
// values (the others keep the previous step's) and hold for Hold.
type Step struct {
	Hold time.Duration `yaml:"hold" json:"hold"`
	Set  Slots         `yaml:"set" json:"set"`
}

// forever is how long the last step of a script holds: past any clip.
const forever = 100 * 365 * 24 * time.Hour

// NewScriptedScene returns the scene of domain d whose content follows
// steps: a timeline with known events (a pedestrian crossing on a green
// light for 6 s, near misses around it) for testing rules. The first step
// starts from the random slots of seed; nuisance (scrolling, rain, walkers,
// jitter) is drawn from seed as in NewScene. After the last step its
// content holds for ever. Every step's slots must pass Validate.
func NewScriptedScene(d Domain, seed int64, steps []Step) (*Scene, error) {
	if _, err := ParseDomain(string(d)); err != nil {
		return nil, err
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("a script needs at least one step")
	}
	s := &Scene{domain: d, seed: seed, rng: rand.New(rand.NewSource(seed)), minSeg: forever, maxSeg: forever}
	slots := randomSlots(d, s.rng)
	var start time.Duration
	for i, st := range steps {
		if st.Hold <= 0 {
			return nil, fmt.Errorf("step %d: hold must be > 0, got %s", i+1, st.Hold)
		}
		slots = slots.Clone()
		for k, v := range st.Set {
			slots[k] = v
		}
		if err := Validate(d, slots); err != nil {
			return nil, fmt.Errorf("step %d: %w", i+1, err)
		}
		s.segs = append(s.segs, s.newSegment(start, slots))
		start += st.Hold
	}
	return s, nil
}
