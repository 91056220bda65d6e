package synth

import (
	"image"
	"image/color"
	"math"
	"math/rand"

	"gocv.io/x/gocv"
)

// canvas draws in fractional coordinates (0..1 of width and height) into a
// BGR Mat, shifted by a small camera shake.
type canvas struct {
	m      *gocv.Mat
	w, h   int
	dx, dy float64 // shake, fractions of the frame
}

func (c *canvas) pt(x, y float64) image.Point {
	return image.Pt(int(math.Round((x+c.dx)*float64(c.w))), int(math.Round((y+c.dy)*float64(c.h))))
}

// rect fills the rectangle (x0,y0)-(x1,y1).
func (c *canvas) rect(x0, y0, x1, y1 float64, col color.RGBA) {
	p0, p1 := c.pt(x0, y0), c.pt(x1, y1)
	if p1.X <= p0.X {
		p1.X = p0.X + 1
	}
	if p1.Y <= p0.Y {
		p1.Y = p0.Y + 1
	}
	gocv.Rectangle(c.m, image.Rectangle{Min: p0, Max: p1}, col, -1)
}

// poly fills the polygon through the given x,y pairs.
func (c *canvas) poly(col color.RGBA, xy ...float64) {
	pts := make([]image.Point, 0, len(xy)/2)
	for i := 0; i+1 < len(xy); i += 2 {
		pts = append(pts, c.pt(xy[i], xy[i+1]))
	}
	pv := gocv.NewPointsVectorFromPoints([][]image.Point{pts})
	gocv.FillPoly(c.m, pv, col)
	pv.Close()
}

// ellipse fills an axis-aligned ellipse with radii rx (of width) and ry (of height).
func (c *canvas) ellipse(cx, cy, rx, ry float64, col color.RGBA) {
	axes := image.Pt(max(1, int(rx*float64(c.w))), max(1, int(ry*float64(c.h))))
	gocv.Ellipse(c.m, c.pt(cx, cy), axes, 0, 0, 360, col, -1)
}

// line draws a line whose thickness is a fraction of the frame height (at least 1 pixel).
func (c *canvas) line(x0, y0, x1, y1, thick float64, col color.RGBA) {
	gocv.Line(c.m, c.pt(x0, y0), c.pt(x1, y1), col, max(1, int(math.Round(thick*float64(c.h)))))
}

func rgb(r, g, b uint8) color.RGBA { return color.RGBA{R: r, G: g, B: b, A: 255} }

// scale multiplies a colour's channels by f, clamped.
func scale(c color.RGBA, f float64) color.RGBA {
	s := func(v uint8) uint8 { return uint8(math.Max(0, math.Min(255, float64(v)*f))) }
	return color.RGBA{R: s(c.R), G: s(c.G), B: s(c.B), A: 255}
}

// Vehicle colours: saturated and flat so they survive a 64x64 resize, H.264
// and the night palette. Red and blue swap under an R/B channel swap.
var vehicleRGB = map[string]color.RGBA{
	"red":    rgb(230, 0, 0),
	"blue":   rgb(0, 40, 240),
	"green":  rgb(0, 200, 0),
	"yellow": rgb(255, 230, 0),
	"white":  rgb(250, 250, 250),
}

// People wear magenta shirts, a colour no vehicle has.
var (
	shirtRGB = rgb(230, 0, 230)
	skinRGB  = rgb(240, 190, 150)
	pantsRGB = rgb(60, 60, 70)
	darkRGB  = rgb(15, 15, 20)
	glassRGB = rgb(40, 50, 60)
)

// look holds the nuisance of one frame: everything that varies without
// changing the truth. Fractions are of the frame width or height.
type look struct {
	shakeX, shakeY float64
	bright         float64 // background brightness factor
	horizon        float64 // driving: y of the horizon
	scroll         float64 // driving: lane-marking phase, 0..1
	vehX, vehY     float64 // vehicle offset from its nominal place
	vehScale       float64
	pedX, pedScale float64 // driving pedestrian
	rainSeed       int64
	peopleX        [3]float64 // surveillance: jitter of each person
	peopleH        [3]float64 // surveillance: height factor of each person
	crosswalk      bool
}

// randomLook draws a look for an independent sample.
func randomLook(rng *rand.Rand) look {
	l := look{
		shakeX:    (rng.Float64() - 0.5) * 0.01,
		shakeY:    (rng.Float64() - 0.5) * 0.01,
		bright:    0.85 + rng.Float64()*0.3,
		horizon:   0.40 + rng.Float64()*0.08,
		scroll:    rng.Float64(),
		vehX:      (rng.Float64() - 0.5) * 0.06,
		vehY:      (rng.Float64() - 0.5) * 0.08,
		vehScale:  0.9 + rng.Float64()*0.2,
		pedX:      0.08 + rng.Float64()*0.84,
		pedScale:  0.9 + rng.Float64()*0.2,
		rainSeed:  rng.Int63(),
		crosswalk: rng.Intn(4) != 0,
	}
	for i := range l.peopleX {
		l.peopleX[i] = (rng.Float64() - 0.5) * 0.04
		l.peopleH[i] = 0.9 + rng.Float64()*0.2
	}
	return l
}

// ensure makes dst a w x h 8-bit BGR Mat, reusing it when it already is one.
// A zero-value Mat is allocated.
func ensure(dst *gocv.Mat, w, h int) {
	if dst.Ptr() != nil {
		if !dst.Empty() && dst.Cols() == w && dst.Rows() == h && dst.Type() == gocv.MatTypeCV8UC3 {
			return
		}
		dst.Close()
	}
	*dst = gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
}

// draw renders slots s of domain d with nuisance l into dst.
func draw(d Domain, s Slots, l look, dst *gocv.Mat, w, h int) {
	ensure(dst, w, h)
	c := &canvas{m: dst, w: w, h: h, dx: l.shakeX, dy: l.shakeY}
	switch d {
	case Driving:
		drawDriving(c, s, l)
	case Surveillance:
		drawSurveillance(c, s, l)
	}
}

func drawDriving(c *canvas, s Slots, l look) {
	night := s["time"] == "night"
	rain := s["weather"] == "rain"
	var sky, ground, road, mark color.RGBA
	switch {
	case !night && !rain:
		sky, ground, road, mark = rgb(120, 190, 240), rgb(160, 140, 110), rgb(95, 95, 100), rgb(235, 235, 235)
	case !night && rain:
		sky, ground, road, mark = rgb(150, 155, 160), rgb(120, 112, 100), rgb(75, 75, 80), rgb(200, 200, 200)
	case night && !rain:
		sky, ground, road, mark = rgb(8, 12, 40), rgb(30, 26, 20), rgb(32, 32, 36), rgb(130, 130, 130)
	default:
		sky, ground, road, mark = rgb(50, 50, 55), rgb(28, 26, 24), rgb(28, 28, 32), rgb(110, 110, 110)
	}
	sky, ground, road = scale(sky, l.bright), scale(ground, l.bright), scale(road, l.bright)
	hz := l.horizon
	// Sky and ground; the canvas is over-painted a little beyond the frame to hide the shake.
	c.rect(-0.05, -0.05, 1.05, hz, sky)
	c.rect(-0.05, hz, 1.05, 1.05, ground)
	// Road: a trapezoid from the horizon to beyond the bottom corners.
	const topHalf, botHalf = 0.05, 0.62
	roadX := func(y, frac float64) float64 { // frac 0 = left edge, 1 = right edge
		k := (y - hz) / (1 - hz)
		half := topHalf + k*(botHalf-topHalf)
		return 0.5 - half + 2*half*frac
	}
	c.poly(road, roadX(hz, 0), hz, roadX(hz, 1), hz, roadX(1.05, 1), 1.05, roadX(1.05, 0), 1.05)
	// Edge lines and dashed lane dividers scrolling towards the viewer.
	for _, f := range []float64{0.02, 0.98} {
		c.line(roadX(hz, f), hz, roadX(1.05, f), 1.05, 0.008, mark)
	}
	for _, f := range []float64{1.0 / 3, 2.0 / 3} {
		for i := -1; i < 8; i++ {
			// Dash positions in a perspective-free parameter u, squared for depth.
			u0 := (float64(i) + l.scroll) / 7
			u1 := u0 + 0.5/7
			if u1 <= 0 || u0 >= 1 {
				continue
			}
			u0, u1 = math.Max(u0, 0), math.Min(u1, 1)
			y0, y1 := hz+(1.05-hz)*u0*u0, hz+(1.05-hz)*u1*u1
			c.line(roadX(y0, f), y0, roadX(y1, f), y1, 0.004+0.012*u1, mark)
		}
	}
	if l.crosswalk {
		y0, y1 := 0.90, 0.99
		for i := 0; i < 9; i++ {
			f0 := 0.06 + float64(i)*0.1
			c.poly(scale(mark, 0.9), roadX(y0, f0), y0, roadX(y0, f0+0.05), y0, roadX(y1, f0+0.05), y1, roadX(y1, f0), y1)
		}
	}
	drawTrafficLight(c, s["light"] == "red")
	// Vehicle in its lane, seen from behind.
	if kind := s["vehicle"]; kind != "none" && kind != "" {
		lf := map[string]float64{"left": 1.0 / 6, "center": 0.5, "right": 5.0 / 6}[s["lane"]]
		bottom := 0.84 + l.vehY*0.5
		cx := roadX(bottom, lf) + l.vehX
		col, ok := vehicleRGB[s["vehicle_color"]]
		if !ok {
			col = rgb(128, 128, 128)
		}
		drawVehicleRear(c, kind, cx, bottom, l.vehScale, col, night)
	}
	if s["pedestrian"] == "yes" {
		drawPerson(c, l.pedX, 0.97, 0.34*l.pedScale)
	}
	if rain {
		drawRain(c, l.rainSeed, l.scroll, night)
	}
}

// drawVehicleRear draws a car, truck or bus seen from behind, centred at cx
// with its wheels on y = bottom.
// drawTrafficLight draws a big housing hanging at the top centre, red lamp
// above green.
func drawTrafficLight(c *canvas, red bool) {
	c.line(0.5, -0.05, 0.5, 0.03, 0.01, rgb(20, 20, 20))
	c.rect(0.43, 0.03, 0.57, 0.39, rgb(20, 20, 22))
	redOn, greenOn := rgb(255, 20, 20), rgb(20, 255, 60)
	redOff, greenOff := rgb(70, 20, 20), rgb(20, 60, 30)
	if red {
		greenOn = greenOff
	} else {
		redOn = redOff
	}
	c.rect(0.45, 0.06, 0.55, 0.19, redOn)
	c.rect(0.45, 0.23, 0.55, 0.36, greenOn)
}

func drawVehicleRear(c *canvas, kind string, cx, bottom, k float64, col color.RGBA, night bool) {
	wheel := func(x0, x1 float64) { c.rect(x0, bottom-0.03*k, x1, bottom, darkRGB) }
	switch kind {
	case "car":
		hw, bh := 0.12*k, 0.15*k
		wheel(cx-hw+0.01, cx-hw+0.05*k)
		wheel(cx+hw-0.05*k, cx+hw-0.01)
		top := bottom - 0.02 - bh
		c.rect(cx-hw, top, cx+hw, bottom-0.02, col)
		// Cabin: narrower, body-coloured pillars around a dark rear window.
		c.poly(col, cx-hw*0.8, top, cx-hw*0.6, top-0.1*k, cx+hw*0.6, top-0.1*k, cx+hw*0.8, top)
		c.poly(glassRGB, cx-hw*0.65, top-0.01, cx-hw*0.5, top-0.085*k, cx+hw*0.5, top-0.085*k, cx+hw*0.65, top-0.01)
		drawTailLights(c, cx, hw, top+0.03*k, 0.03*k, night)
	case "truck":
		hw, bh := 0.125*k, 0.36*k
		wheel(cx-hw+0.01, cx-hw+0.06*k)
		wheel(cx+hw-0.06*k, cx+hw-0.01)
		top := bottom - 0.02 - bh
		c.rect(cx-hw, top, cx+hw, bottom-0.02, col)
		// Cargo doors: a dark vertical seam and a dark bumper.
		c.line(cx, top+0.02, cx, bottom-0.05*k, 0.006, darkRGB)
		c.rect(cx-hw, bottom-0.045*k, cx+hw, bottom-0.02, darkRGB)
		drawTailLights(c, cx, hw, bottom-0.08*k, 0.025*k, night)
	case "bus":
		hw, bh := 0.135*k, 0.34*k
		wheel(cx-hw+0.01, cx-hw+0.06*k)
		wheel(cx+hw-0.06*k, cx+hw-0.01)
		top := bottom - 0.02 - bh
		c.rect(cx-hw, top, cx+hw, bottom-0.02, col)
		// A wide dark rear window band across the upper half.
		c.rect(cx-hw*0.85, top+0.03*k, cx+hw*0.85, top+0.15*k, glassRGB)
		drawTailLights(c, cx, hw, bottom-0.09*k, 0.03*k, night)
	}
}

// drawTailLights draws two small lamps near the sides: dim by day, bright at night.
func drawTailLights(c *canvas, cx, hw, y, size float64, night bool) {
	col := rgb(120, 0, 0)
	if night {
		col = rgb(255, 60, 60)
	}
	c.rect(cx-hw+0.01, y, cx-hw+0.01+size, y+size*0.8, col)
	c.rect(cx+hw-0.01-size, y, cx+hw-0.01, y+size*0.8, col)
}

// drawPerson draws a standing person with feet at (cx, feet) and the given height.
func drawPerson(c *canvas, cx, feet, height float64) {
	headR := height * 0.09
	torsoTop := feet - height + 2*headR
	hipY := feet - height*0.45
	// Torso width as a fraction of the frame width: stout enough to stay
	// several pixels wide after a 64x64 resize.
	tw := math.Max(height*0.25*float64(c.h)/float64(c.w), 0.05)
	c.rect(cx-tw/2, hipY, cx-tw*0.08, feet, pantsRGB)
	c.rect(cx+tw*0.08, hipY, cx+tw/2, feet, pantsRGB)
	c.rect(cx-tw/2, torsoTop, cx+tw/2, hipY+0.005, shirtRGB)
	c.ellipse(cx, feet-height+headR, math.Max(tw*0.35, 0.01), headR, skinRGB)
}

// drawRain draws falling streaks; the pattern moves with phase.
func drawRain(c *canvas, seed int64, phase float64, night bool) {
	rng := rand.New(rand.NewSource(seed))
	col := rgb(215, 220, 230)
	if night {
		col = rgb(150, 150, 165)
	}
	for i := 0; i < 140; i++ {
		x := rng.Float64()*1.1 - 0.05
		y := math.Mod(rng.Float64()+phase*3, 1.0)*1.1 - 0.1
		c.line(x, y, x-0.012, y+0.07, 0.003, col)
	}
}

func drawSurveillance(c *canvas, s Slots, l look) {
	night := s["time"] == "night"
	if s["place"] == "corridor" {
		drawCorridor(c, s, l, night)
	} else {
		drawParkingLot(c, s, l, night)
	}
}

func drawParkingLot(c *canvas, s Slots, l look, night bool) {
	wall, asphalt, lines := rgb(215, 200, 175), rgb(110, 110, 115), rgb(235, 235, 235)
	if night {
		wall, asphalt, lines = rgb(45, 42, 40), rgb(30, 30, 34), rgb(95, 95, 95)
	}
	wall, asphalt = scale(wall, l.bright), scale(asphalt, l.bright)
	c.rect(-0.05, -0.05, 1.05, 0.40, wall)
	c.rect(-0.05, 0.40, 1.05, 1.05, asphalt)
	c.rect(-0.05, 0.39, 1.05, 0.41, scale(wall, 0.6)) // kerb
	// Parking bays.
	for _, x := range []float64{0.02, 0.38, 0.62, 0.98} {
		c.line(x, 0.5, x-(x-0.5)*0.1, 0.95, 0.008, lines)
	}
	drawDoor(c, 0.42, 0.08, 0.58, 0.39, s["door"] == "open", night)
	side := s["vehicle_side"]
	if col, ok := vehicleRGB[s["vehicle_color"]]; ok && side != "none" {
		cx := 0.2
		if side == "right" {
			cx = 0.8
		}
		drawParkedCar(c, cx+l.vehX*0.5, 0.86+l.vehY*0.3, l.vehScale, col, night)
	}
	drawPeople(c, s, l, side, 0.93, 0.42)
}

func drawCorridor(c *canvas, s Slots, l look, night bool) {
	wallC, floorC, ceilC, backC := rgb(185, 190, 205), rgb(175, 150, 115), rgb(225, 225, 225), rgb(200, 205, 215)
	if night {
		wallC, floorC, ceilC, backC = rgb(38, 40, 48), rgb(45, 38, 30), rgb(25, 25, 28), rgb(45, 47, 55)
	}
	wallC, floorC, ceilC, backC = scale(wallC, l.bright), scale(floorC, l.bright), scale(ceilC, l.bright), scale(backC, l.bright)
	// One-point perspective: back wall in the middle, floor, ceiling and side walls around it.
	const bx0, by0, bx1, by1 = 0.28, 0.10, 0.72, 0.55
	c.rect(-0.05, -0.05, 1.05, 1.05, wallC)
	c.poly(floorC, -0.05, 1.05, bx0, by1, bx1, by1, 1.05, 1.05)
	c.poly(ceilC, -0.05, -0.05, bx0, by0, bx1, by0, 1.05, -0.05)
	c.rect(bx0, by0, bx1, by1, backC)
	// Ceiling lamps: lit by day and night.
	for _, u := range []float64{0.3, 0.65} {
		y := by0 * (1 - u)
		c.rect(0.5-0.06*(1.5-u), y-0.012, 0.5+0.06*(1.5-u), y+0.012, rgb(255, 250, 220))
	}
	drawDoor(c, 0.42, 0.22, 0.58, by1, s["door"] == "open", night)
	drawPeople(c, s, l, "none", 0.97, 0.40)
}

// drawDoor draws a door in the frame (x0,y0)-(x1,y1); an open door shows a
// dark (by day) or lit (at night) interior and its leaf swung aside.
func drawDoor(c *canvas, x0, y0, x1, y1 float64, open, night bool) {
	frame := rgb(60, 60, 60)
	leaf := rgb(130, 75, 30)
	if night {
		leaf = rgb(100, 60, 25)
		// A lamp above the door keeps it visible at night.
		c.rect((x0+x1)/2-0.03, y0-0.04, (x0+x1)/2+0.03, y0-0.015, rgb(255, 240, 180))
	}
	c.rect(x0-0.01, y0-0.01, x1+0.01, y1, frame)
	if !open {
		c.rect(x0, y0, x1, y1, leaf)
		c.rect(x1-0.035, (y0+y1)/2, x1-0.02, (y0+y1)/2+0.02, rgb(220, 200, 60))
		return
	}
	inside := rgb(10, 10, 12)
	if night {
		inside = rgb(250, 225, 140)
	}
	c.rect(x0, y0, x1, y1, inside)
	// The leaf swung towards the camera, seen edge-on.
	c.poly(leaf, x1, y0, x1+0.05, y0+0.03, x1+0.05, y1+0.02, x1, y1)
}

// drawParkedCar draws a car seen from the side, centred at cx with wheels on y = bottom.
func drawParkedCar(c *canvas, cx, bottom, k float64, col color.RGBA, night bool) {
	hw := 0.17 * k
	bodyTop := bottom - 0.17*k
	c.rect(cx-hw, bodyTop, cx+hw, bottom-0.03*k, col)
	c.poly(col, cx-hw*0.6, bodyTop, cx-hw*0.35, bodyTop-0.11*k, cx+hw*0.4, bodyTop-0.11*k, cx+hw*0.65, bodyTop)
	c.poly(glassRGB, cx-hw*0.5, bodyTop-0.01, cx-hw*0.3, bodyTop-0.09*k, cx+hw*0.35, bodyTop-0.09*k, cx+hw*0.55, bodyTop-0.01)
	rx := 0.035 * k
	for _, x := range []float64{cx - hw*0.6, cx + hw*0.6} {
		c.ellipse(x, bottom-0.04*k, rx, 0.05*k, darkRGB)
	}
}

// drawPeople draws the slot's number of people spread over the part of the
// frame that the parked vehicle (on side vehSide) leaves free.
func drawPeople(c *canvas, s Slots, l look, vehSide string, feet, height float64) {
	n := map[string]int{"one": 1, "two": 2, "three": 3}[s["people"]]
	if n == 0 {
		return
	}
	lo, hi := 0.15, 0.85
	switch vehSide {
	case "left":
		lo, hi = 0.44, 0.92
	case "right":
		lo, hi = 0.08, 0.56
	}
	for i := 0; i < n; i++ {
		x := lo + (hi-lo)*(float64(i)+0.5)/float64(n) + l.peopleX[i]
		drawPerson(c, x, feet-0.02*float64(i%2), height*l.peopleH[i])
	}
}
