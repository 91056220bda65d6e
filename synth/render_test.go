package synth

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

func matBytes(t *testing.T, m gocv.Mat) []byte {
	t.Helper()
	b, err := m.DataPtrUint8()
	if err != nil {
		t.Fatalf("mat data: %v", err)
	}
	return append([]byte(nil), b...)
}

func TestSceneDeterministic(t *testing.T) {
	for _, d := range Domains {
		a, err := NewScene(d, 42)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := NewScene(d, 42)
		c, _ := NewScene(d, 43)
		ma, mb, mc := gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
		differs := false
		// Query b out of order: the lazily built timeline must not depend on the order of queries.
		times := []time.Duration{0, 1500 * time.Millisecond, 7 * time.Second, 33 * time.Second}
		for i := len(times) - 1; i >= 0; i-- {
			b.SlotsAt(times[i])
		}
		for _, tt := range times {
			sa := a.Render(tt, &ma, 160, 90)
			sb := b.Render(tt, &mb, 160, 90)
			sc := c.Render(tt, &mc, 160, 90)
			if !sa.Equal(sb) || !bytes.Equal(matBytes(t, ma), matBytes(t, mb)) {
				t.Errorf("%s seed 42 at %v: two scenes differ", d, tt)
			}
			if !sa.Equal(sc) || !bytes.Equal(matBytes(t, ma), matBytes(t, mc)) {
				differs = true
			}
		}
		if !differs {
			t.Errorf("%s: seeds 42 and 43 render identical frames", d)
		}
		ma.Close()
		mb.Close()
		mc.Close()
	}
}

func TestRenderSampleDeterministic(t *testing.T) {
	for _, d := range Domains {
		m1, m2 := gocv.NewMat(), gocv.NewMat()
		r1, r2 := rand.New(rand.NewSource(7)), rand.New(rand.NewSource(7))
		for i := 0; i < 5; i++ {
			s1 := RenderSample(d, r1, &m1, 128, 72)
			s2 := RenderSample(d, r2, &m2, 128, 72)
			if err := Validate(d, s1); err != nil {
				t.Fatalf("sample slots invalid: %v", err)
			}
			if !s1.Equal(s2) || !bytes.Equal(matBytes(t, m1), matBytes(t, m2)) {
				t.Fatalf("%s sample %d differs between equal seeds", d, i)
			}
		}
		m1.Close()
		m2.Close()
	}
	m := gocv.NewMat()
	defer m.Close()
	if s := RenderSample("nope", rand.New(rand.NewSource(1)), &m, 10, 10); s != nil || !m.Empty() {
		t.Errorf("unknown domain rendered %v", s)
	}
}

func TestTimeline(t *testing.T) {
	for _, d := range Domains {
		sc, _ := NewScene(d, 5)
		changes := sc.Changes(2 * time.Minute)
		if len(changes) < 2*60/8 || len(changes) > 2*60/2 {
			t.Fatalf("%s: %d changes in 2 minutes, want segments of 2-8 s", d, len(changes))
		}
		prev := time.Duration(0)
		place := sc.SlotsAt(0)["place"]
		for _, ch := range changes {
			if seg := ch - prev; seg < DefaultMinHold || seg > DefaultMaxHold {
				t.Errorf("%s: segment %v..%v lasts %v", d, prev, ch, seg)
			}
			before, after := sc.SlotsAt(ch-time.Millisecond), sc.SlotsAt(ch)
			if before.Equal(after) {
				t.Errorf("%s: nothing changes at %v", d, ch)
			}
			if !before.Equal(sc.SlotsAt(prev)) {
				t.Errorf("%s: content changes inside segment %v..%v", d, prev, ch)
			}
			if err := Validate(d, after); err != nil {
				t.Errorf("%s at %v: %v", d, ch, err)
			}
			if after["place"] != place {
				t.Errorf("%s: the place changed at %v", d, ch)
			}
			prev = ch
		}
		m := gocv.NewMat()
		for _, tt := range []time.Duration{0, changes[0], changes[0] - time.Millisecond, 90 * time.Second} {
			if got, want := sc.Render(tt, &m, 64, 36), sc.SlotsAt(tt); !got.Equal(want) {
				t.Errorf("%s at %v: Render returned %s, SlotsAt %s", d, tt, got, want)
			}
		}
		m.Close()
	}
}

func TestRenderIntoZeroMat(t *testing.T) {
	var m gocv.Mat // not from NewMat: Render allocates it
	sc, _ := NewScene(Surveillance, 2)
	sc.Render(time.Second, &m, 48, 32)
	defer m.Close()
	if m.Cols() != 48 || m.Rows() != 32 {
		t.Fatalf("got %dx%d", m.Cols(), m.Rows())
	}
	// A Mat of another size or type is replaced.
	g := gocv.NewMatWithSize(10, 10, gocv.MatTypeCV8UC1)
	RenderSample(Driving, newRand(1), &g, 20, 12)
	defer g.Close()
	if g.Cols() != 20 || g.Rows() != 12 || g.Type() != gocv.MatTypeCV8UC3 {
		t.Fatalf("got %dx%d type %v", g.Cols(), g.Rows(), g.Type())
	}
}

func TestRenderSizes(t *testing.T) {
	m := gocv.NewMat()
	defer m.Close()
	for _, d := range Domains {
		sc, _ := NewScene(d, 1)
		for _, sz := range [][2]int{{1920, 1080}, {64, 36}, {640, 360}, {1, 1}} {
			sc.Render(3*time.Second, &m, sz[0], sz[1])
			if m.Cols() != sz[0] || m.Rows() != sz[1] || m.Type() != gocv.MatTypeCV8UC3 {
				t.Fatalf("%s %v: got %dx%d type %v", d, sz, m.Cols(), m.Rows(), m.Type())
			}
			if sz[0] > 1 {
				mean, std := gocv.NewMat(), gocv.NewMat()
				gocv.MeanStdDev(m, &mean, &std)
				if std.GetDoubleAt(0, 0) < 5 {
					t.Errorf("%s %v: a flat frame (std %.1f)", d, sz, std.GetDoubleAt(0, 0))
				}
				mean.Close()
				std.Close()
			}
		}
	}
}

// fixedLook is a nuisance-free look for pixel tests.
var fixedLook = look{bright: 1, horizon: 0.44, vehScale: 1, pedX: 0.1, pedScale: 1, crosswalk: true,
	peopleH: [3]float64{1, 1, 1}}

// objectPixels renders slots with and without an object and returns the
// pixels that the object changed, plus the x centroid (0..1) of that region.
func objectPixels(t *testing.T, d Domain, with, without Slots, w, h int) (bgr [][3]uint8, cx float64) {
	t.Helper()
	a, b := gocv.NewMat(), gocv.NewMat()
	defer a.Close()
	defer b.Close()
	draw(d, with, fixedLook, &a, w, h)
	draw(d, without, fixedLook, &b, w, h)
	pa, pb := matBytes(t, a), matBytes(t, b)
	sumX := 0
	for i := 0; i < len(pa); i += 3 {
		if pa[i] != pb[i] || pa[i+1] != pb[i+1] || pa[i+2] != pb[i+2] {
			bgr = append(bgr, [3]uint8{pa[i], pa[i+1], pa[i+2]})
			sumX += (i / 3) % w
		}
	}
	if len(bgr) == 0 {
		t.Fatalf("%s: the object drew nothing", d)
	}
	return bgr, float64(sumX) / float64(len(bgr)) / float64(w)
}

// share returns the fraction of pixels in which channel ch (0 B, 1 G, 2 R)
// exceeds 150 while the other two stay below 90.
func share(px [][3]uint8, ch int) float64 {
	n := 0
	for _, p := range px {
		ok := p[ch] > 150
		for o := 0; o < 3; o++ {
			if o != ch && p[o] >= 90 {
				ok = false
			}
		}
		if ok {
			n++
		}
	}
	return float64(n) / float64(len(px))
}

func TestVehiclePixelsColourAndSide(t *testing.T) {
	empty := Slots{"vehicle": "none", "vehicle_color": "none", "lane": "none", "light": "red",
		"pedestrian": "no", "time": "day", "weather": "clear"}
	for _, tc := range []struct {
		time, colour, lane string
		ch                 int // dominant BGR channel
	}{
		{"day", "red", "left", 2}, {"night", "red", "right", 2}, {"day", "blue", "center", 0}, {"night", "blue", "left", 0},
	} {
		e := empty.Clone()
		e["time"] = tc.time
		s := e.Clone()
		s["vehicle"], s["vehicle_color"], s["lane"] = "car", tc.colour, tc.lane
		px, cx := objectPixels(t, Driving, s, e, 320, 180)
		if f := share(px, tc.ch); f < 0.5 {
			t.Errorf("%s %s car: %.2f of its pixels are %s, want most", tc.time, tc.colour, f, tc.colour)
		}
		other := 2 - tc.ch // red <-> blue
		if f := share(px, other); f > 0.1 {
			t.Errorf("%s %s car: %.2f of its pixels have the swapped colour", tc.time, tc.colour, f)
		}
		switch tc.lane {
		case "left":
			if cx > 0.35 {
				t.Errorf("car in the left lane centred at x=%.2f", cx)
			}
		case "right":
			if cx < 0.65 {
				t.Errorf("car in the right lane centred at x=%.2f", cx)
			}
		case "center":
			if cx < 0.4 || cx > 0.6 {
				t.Errorf("car in the center lane centred at x=%.2f", cx)
			}
		}
	}
	// Surveillance: a parked red car on the left, blue on the right.
	base := Slots{"place": "parking_lot", "people": "none", "vehicle_color": "none", "vehicle_side": "none",
		"door": "closed", "time": "night"}
	for _, tc := range []struct {
		colour, side string
		ch           int
	}{{"red", "left", 2}, {"blue", "right", 0}} {
		s := base.Clone()
		s["vehicle_color"], s["vehicle_side"] = tc.colour, tc.side
		px, cx := objectPixels(t, Surveillance, s, base, 320, 180)
		if f := share(px, tc.ch); f < 0.5 {
			t.Errorf("parked %s car: %.2f of its pixels are %s", tc.colour, f, tc.colour)
		}
		if (tc.side == "left") != (cx < 0.5) {
			t.Errorf("parked car on the %s centred at x=%.2f", tc.side, cx)
		}
	}
}

func TestStatesVisible(t *testing.T) {
	// Traffic light: the lamp area is mostly red or mostly green.
	s := Slots{"vehicle": "none", "vehicle_color": "none", "lane": "none", "light": "red",
		"pedestrian": "no", "time": "night", "weather": "rain"}
	g := s.Clone()
	g["light"] = "green"
	px, _ := objectPixels(t, Driving, s, g, 320, 180)
	red := 0
	for _, p := range px {
		if p[2] > 200 && p[1] < 60 {
			red++
		}
	}
	if float64(red)/float64(len(px)) < 0.4 {
		t.Errorf("red light: only %d of %d changed pixels are bright red", red, len(px))
	}
	// Night is much darker than day; people add pixels with each count.
	mean := func(d Domain, sl Slots) float64 {
		m := gocv.NewMat()
		defer m.Close()
		draw(d, sl, fixedLook, &m, 160, 90)
		b := matBytes(t, m)
		sum := 0
		for _, v := range b {
			sum += int(v)
		}
		return float64(sum) / float64(len(b))
	}
	day := Slots{"place": "corridor", "people": "none", "vehicle_color": "none", "vehicle_side": "none", "door": "open", "time": "day"}
	night := day.Clone()
	night["time"] = "night"
	if md, mn := mean(Surveillance, day), mean(Surveillance, night); mn > md*0.5 {
		t.Errorf("night mean %.0f not much darker than day %.0f", mn, md)
	}
	prev := 0
	for _, n := range []string{"one", "two", "three"} {
		p := day.Clone()
		p["people"] = n
		px, _ := objectPixels(t, Surveillance, p, day, 320, 180)
		if len(px) <= prev {
			t.Errorf("%s people change %d pixels, not more than %d", n, len(px), prev)
		}
		prev = len(px)
	}
}

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }

func TestSceneConcurrent(t *testing.T) {
	ref, _ := NewScene(Driving, 77)
	sc, _ := NewScene(Driving, 77)
	done := make(chan []Slots)
	for g := 0; g < 4; g++ {
		go func(g int) {
			var out []Slots
			for i := 0; i < 200; i++ {
				out = append(out, sc.SlotsAt(time.Duration((i*37+g*911)%600)*time.Second/10))
			}
			done <- out
		}(g)
	}
	for g := 0; g < 4; g++ {
		<-done
	}
	for i := 0; i < 600; i++ {
		tt := time.Duration(i) * time.Second / 10
		if !sc.SlotsAt(tt).Equal(ref.SlotsAt(tt)) {
			t.Fatalf("concurrent queries changed the timeline at %v", tt)
		}
	}
}

func BenchmarkSceneRender(b *testing.B) {
	for _, d := range Domains {
		for _, sz := range [][2]int{{1280, 720}, {640, 360}} {
			b.Run(fmt.Sprintf("%s/%dx%d", d, sz[0], sz[1]), func(b *testing.B) {
				sc, _ := NewScene(d, 1)
				m := gocv.NewMat()
				defer m.Close()
				for i := 0; i < b.N; i++ {
					sc.Render(time.Duration(i)*time.Second/30, &m, sz[0], sz[1])
				}
			})
		}
	}
}
