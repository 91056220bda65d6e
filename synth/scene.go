package synth

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"sync"
	"time"

	"gocv.io/x/gocv"
)

// Default segment lengths of a Scene's timeline (NewSceneHolding sets
// others).
const (
	DefaultMinHold = 2 * time.Second
	DefaultMaxHold = 8 * time.Second
)

// Scene is a deterministic timeline of content states for one domain: the
// content (the slots) stays fixed within a segment of 2-8 s and changes
// instantly at the segment's start, so every instant has one true caption.
// Nuisance (lane markings scrolling, rain falling, people walking, camera
// jitter) animates continuously and never changes the truth. A surveillance
// scene keeps its place for its whole timeline (a fixed camera).
//
// A Scene is safe for concurrent use. The timeline extends lazily to any t.
type Scene struct {
	domain Domain
	seed   int64
	// minSeg and maxSeg bound a segment's length.
	minSeg, maxSeg time.Duration

	mu   sync.Mutex
	rng  *rand.Rand
	segs []segment
}

type segment struct {
	start time.Duration
	slots Slots
	look  look
	dir   float64 // pedestrian walking direction, -1 or 1
}

// NewScene returns the scene of domain d for seed; equal (d, seed) give
// identical scenes.
func NewScene(d Domain, seed int64) (*Scene, error) {
	return NewSceneHolding(d, seed, DefaultMinHold, DefaultMaxHold)
}

// NewSceneHolding is NewScene with the content held for minHold to maxHold
// per segment instead of 2-8 s: a calm scene (few changes) for gating and
// event tests. NewSceneHolding(d, seed, 2*time.Second, 8*time.Second) is
// NewScene(d, seed).
func NewSceneHolding(d Domain, seed int64, minHold, maxHold time.Duration) (*Scene, error) {
	if _, err := ParseDomain(string(d)); err != nil {
		return nil, err
	}
	if minHold < 100*time.Millisecond || maxHold < minHold {
		return nil, fmt.Errorf("hold %s-%s: need 100ms <= min <= max", minHold, maxHold)
	}
	s := &Scene{domain: d, seed: seed, rng: rand.New(rand.NewSource(seed)), minSeg: minHold, maxSeg: maxHold}
	first := randomSlots(d, s.rng)
	s.segs = append(s.segs, s.newSegment(0, first))
	return s, nil
}

// Domain returns the scene's domain.
func (s *Scene) Domain() Domain { return s.domain }

// Seed returns the scene's seed.
func (s *Scene) Seed() int64 { return s.seed }

func (s *Scene) newSegment(start time.Duration, slots Slots) segment {
	dir := 1.0
	if s.rng.Intn(2) == 0 {
		dir = -1
	}
	return segment{start: start, slots: slots, look: randomLook(s.rng), dir: dir}
}

// segmentAt returns the segment holding t (t < 0 counts as 0).
func (s *Scene) segmentAt(t time.Duration) segment {
	if t < 0 {
		t = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Keep one segment starting after t, so the one holding t is complete.
	for last := s.segs[len(s.segs)-1]; last.start <= t; last = s.segs[len(s.segs)-1] {
		steps := int64((s.maxSeg - s.minSeg) / time.Millisecond)
		end := last.start + s.minSeg + time.Duration(s.rng.Int63n(steps+1))*time.Millisecond
		next := mutate(s.domain, last.slots, s.rng)
		s.segs = append(s.segs, s.newSegment(end, next))
	}
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].start > t }) - 1
	return s.segs[i]
}

// Changes returns the instants in [0, until) at which the content changes
// (segment starts after 0), in order.
func (s *Scene) Changes(until time.Duration) []time.Duration {
	s.segmentAt(until)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for _, sg := range s.segs[1:] {
		if sg.start < until {
			out = append(out, sg.start)
		}
	}
	return out
}

// SlotsAt returns the true slots at t (a fresh map).
func (s *Scene) SlotsAt(t time.Duration) Slots {
	return s.segmentAt(t).slots.Clone()
}

// CaptionAt returns the true caption at t.
func (s *Scene) CaptionAt(t time.Duration) string {
	return Caption(s.domain, s.segmentAt(t).slots)
}

// Render draws the frame at t into dst, (re)allocating dst as a width x
// height 8-bit BGR Mat when it is not one already, and returns the frame's
// true slots. Non-positive sizes are taken as 1.
func (s *Scene) Render(t time.Duration, dst *gocv.Mat, width, height int) Slots {
	sg := s.segmentAt(t)
	if t < 0 {
		t = 0
	}
	l := sg.look
	secs := t.Seconds()
	in := (t - sg.start).Seconds()
	l.scroll = frac(l.scroll + secs*1.6)
	l.shakeX += 0.002 * math.Sin(secs*7.3)
	l.shakeY += 0.002 * math.Sin(secs*5.1+1)
	l.vehX += 0.012 * math.Sin(secs*0.9+float64(s.seed%7))
	l.pedX = bounce(l.pedX + sg.dir*0.08*in)
	for i := range l.peopleX {
		l.peopleX[i] += 0.01 * math.Sin(secs*1.3+float64(i)*2)
	}
	draw(s.domain, sg.slots, l, dst, max(1, width), max(1, height))
	return sg.slots.Clone()
}

// RenderSample draws one independent random frame of domain d (random slots,
// random nuisance) into dst as Render does, and returns its slots. It
// returns nil and leaves dst untouched for an unknown domain.
func RenderSample(d Domain, rng *rand.Rand, dst *gocv.Mat, w, h int) Slots {
	if _, err := ParseDomain(string(d)); err != nil {
		return nil
	}
	s := randomSlots(d, rng)
	l := randomLook(rng)
	draw(d, s, l, dst, max(1, w), max(1, h))
	return s
}

func frac(x float64) float64 { return x - math.Floor(x) }

// bounce folds x into [0.06, 0.94] as a walker turning at the edges.
func bounce(x float64) float64 {
	const lo, hi = 0.06, 0.94
	p := math.Mod(x-lo, 2*(hi-lo))
	if p < 0 {
		p += 2 * (hi - lo)
	}
	if p > hi-lo {
		p = 2*(hi-lo) - p
	}
	return lo + p
}

func pick(rng *rand.Rand, vals []string) string { return vals[rng.Intn(len(vals))] }

// randomSlots draws valid slots of d, every value of a slot about equally
// likely ("none" vehicles included).
func randomSlots(d Domain, rng *rand.Rand) Slots {
	switch d {
	case Driving:
		s := Slots{
			"vehicle":       pick(rng, vehicleKinds),
			"vehicle_color": pick(rng, colors[1:]),
			"lane":          pick(rng, lanes[1:]),
			"light":         pick(rng, lightStates),
			"pedestrian":    pick(rng, yesNo),
			"time":          pick(rng, times),
			"weather":       pick(rng, weathers),
		}
		if s["vehicle"] == "none" {
			s["vehicle_color"], s["lane"] = "none", "none"
		}
		return s
	case Surveillance:
		s := Slots{
			"place":         pick(rng, places),
			"people":        pick(rng, peopleCounts),
			"vehicle_color": pick(rng, colors),
			"vehicle_side":  pick(rng, sides[1:]),
			"door":          pick(rng, doorStates),
			"time":          pick(rng, times),
		}
		if s["place"] == "corridor" {
			s["vehicle_color"] = "none"
		}
		if s["vehicle_color"] == "none" {
			s["vehicle_side"] = "none"
		}
		return s
	}
	panic(fmt.Sprintf("synth: randomSlots: unknown domain %q", d))
}

// mutate returns the next state of a timeline: one or two changes such as a
// vehicle entering, leaving or changing lane, the light switching, a
// pedestrian or a person coming or going, the door moving. Time of day and
// weather change rarely; a surveillance place never does.
func mutate(d Domain, prev Slots, rng *rand.Rand) Slots {
	for {
		s := prev.Clone()
		n := 1 + rng.Intn(2)
		for i := 0; i < n; i++ {
			switch d {
			case Driving:
				switch r := rng.Intn(20); {
				case r < 6: // vehicle enters, leaves or is replaced
					if s["vehicle"] != "none" && rng.Intn(2) == 0 {
						s["vehicle"], s["vehicle_color"], s["lane"] = "none", "none", "none"
					} else {
						s["vehicle"] = pick(rng, vehicleKinds[1:])
						s["vehicle_color"] = pick(rng, colors[1:])
						s["lane"] = pick(rng, lanes[1:])
					}
				case r < 8: // lane change
					if s["vehicle"] != "none" {
						s["lane"] = pick(rng, lanes[1:])
					}
				case r < 13:
					s["light"] = other(lightStates, s["light"])
				case r < 17:
					s["pedestrian"] = other(yesNo, s["pedestrian"])
				case r < 18:
					s["time"] = other(times, s["time"])
				default:
					s["weather"] = other(weathers, s["weather"])
				}
			case Surveillance:
				switch r := rng.Intn(20); {
				case r < 8: // someone enters or leaves
					k := indexOf(peopleCounts, s["people"])
					if k == 0 || (k < 3 && rng.Intn(2) == 0) {
						k++
					} else {
						k--
					}
					s["people"] = peopleCounts[k]
				case r < 12: // a vehicle arrives or leaves
					if s["place"] != "parking_lot" {
						continue
					}
					if s["vehicle_color"] != "none" {
						s["vehicle_color"], s["vehicle_side"] = "none", "none"
					} else {
						s["vehicle_color"] = pick(rng, colors[1:])
						s["vehicle_side"] = pick(rng, sides[1:])
					}
				case r < 18:
					s["door"] = other(doorStates, s["door"])
				default:
					s["time"] = other(times, s["time"])
				}
			}
		}
		if !s.Equal(prev) {
			return s
		}
	}
}

func other(vals []string, v string) string {
	for _, x := range vals {
		if x != v {
			return x
		}
	}
	return v
}

func indexOf(vals []string, v string) int {
	for i, x := range vals {
		if x == v {
			return i
		}
	}
	return 0
}
