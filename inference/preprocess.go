package inference

import (
	"fmt"
	"image"
	"math"
	"sync"

	"gocv.io/x/gocv"
)

// PIL resampling filter ids (PIL.Image.Resampling), as in preprocessor_config.json's "resample".
const (
	resampleLanczos  = 1
	resampleBilinear = 2
	resampleBicubic  = 3
	resampleBox      = 4
	resampleHamming  = 5
)

// pilFilter is one of Pillow's separable resampling kernels (libImaging/Resample.c).
type pilFilter struct {
	fn      func(float64) float64
	support float64
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	x *= math.Pi
	return math.Sin(x) / x
}

var pilFilters = map[int]pilFilter{
	resampleBox: {func(x float64) float64 {
		if x > -0.5 && x <= 0.5 {
			return 1
		}
		return 0
	}, 0.5},
	resampleBilinear: {func(x float64) float64 {
		if x < 0 {
			x = -x
		}
		if x < 1 {
			return 1 - x
		}
		return 0
	}, 1},
	resampleHamming: {func(x float64) float64 {
		if x < 0 {
			x = -x
		}
		if x == 0 {
			return 1
		}
		if x >= 1 {
			return 0
		}
		x *= math.Pi
		return math.Sin(x) / x * (0.54 + 0.46*math.Cos(x))
	}, 1},
	resampleBicubic: {func(x float64) float64 {
		const a = -0.5
		if x < 0 {
			x = -x
		}
		if x < 1 {
			return float64(float64((a+2)*x)-(a+3))*x*x + 1
		}
		if x < 2 {
			return float64(float64(float64(float64(x-5)*x)+8)*x-4) * a
		}
		return 0
	}, 2},
	resampleLanczos: {func(x float64) float64 {
		if x > -3 && x < 3 {
			return sinc(x) * sinc(x/3)
		}
		return 0
	}, 3},
}

// pilPrecisionBits is Pillow's fixed-point precision for 8-bit images.
const pilPrecisionBits = 32 - 8 - 2

// resampleCoeffs are Pillow's fixed-point kernel weights for one axis.
type resampleCoeffs struct {
	ksize  int
	bounds []int32 // per output pixel: first input index, count
	kk     []int32 // ksize weights per output pixel
	nonNeg bool    // every weight >= 0 (box, bilinear): lets two channels share one 64-bit sum
}

// precomputeCoeffs mirrors Pillow's precompute_coeffs + normalize_coeffs_8bpc so that
// resizing is bit-exact with PIL.Image.resize (reducing_gap=None), as used by
// transformers' slow image processors.
func precomputeCoeffs(inSize, outSize int, f pilFilter) resampleCoeffs {
	scale := float64(inSize) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := f.support * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	c := resampleCoeffs{ksize: ksize, bounds: make([]int32, 2*outSize), kk: make([]int32, outSize*ksize)}
	w := make([]float64, ksize)
	for xx := 0; xx < outSize; xx++ {
		center := float64(float64(xx)+0.5) * scale
		ww := 0.0
		ss := 1.0 / filterscale
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		for x := 0; x < ksize; x++ {
			w[x] = 0
		}
		for x := 0; x < xmax; x++ {
			v := f.fn(float64(float64(float64(x+xmin)-center)+0.5) * ss)
			w[x] = v
			ww += v
		}
		for x := 0; x < xmax; x++ {
			if ww != 0 {
				w[x] /= ww
			}
		}
		for x := 0; x < ksize; x++ {
			k := w[x] * (1 << pilPrecisionBits)
			if w[x] < 0 {
				c.kk[xx*ksize+x] = int32(-0.5 + k)
			} else {
				c.kk[xx*ksize+x] = int32(0.5 + k)
			}
		}
		c.bounds[2*xx], c.bounds[2*xx+1] = int32(xmin), int32(xmax)
	}
	c.nonNeg = true
	for _, k := range c.kk {
		if k < 0 {
			c.nonNeg = false
		}
	}
	return c
}

func clip8(v int32) uint8 {
	v >>= pilPrecisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// preprocessor turns BGR frames into the encoder's NCHW float32 input, bit-exact
// with transformers' slow ViTImageProcessor (PIL resize on uint8 RGB, then
// float64 rescale cast to float32, then float32 (x-mean)/std).
type preprocessor struct {
	cfg   *PreprocessConfig
	plans map[[2]int]*resizePlan // per input size (frames of one source share a size)
	*resizePlan
	tmp []uint8 // horizontal pass output (RGB interleaved)
	lut [3][256]float32
}

// resizePlan holds Pillow's coefficient tables for one input size.
type resizePlan struct {
	horiz      resampleCoeffs
	vert       resampleCoeffs
	needHoriz  bool
	needVert   bool
	yFirst     int
	yLast      int
	vertBounds []int32
}

func newPreprocessor(cfg *PreprocessConfig) *preprocessor {
	p := &preprocessor{cfg: cfg, plans: map[[2]int]*resizePlan{}}
	// Each channel maps uint8 -> float32 through the same arithmetic as numpy.
	for c := 0; c < 3; c++ {
		for v := 0; v < 256; v++ {
			x := float32(float64(v) * cfg.Rescale)
			if cfg.Normalize {
				x = (x - cfg.Mean[c]) / cfg.Std[c]
			}
			p.lut[c][v] = x
		}
	}
	return p
}

// maxPlans bounds the per-size cache; beyond it the cache starts over.
const maxPlans = 32

// setInput selects (or builds) the coefficient tables for an input size.
func (p *preprocessor) setInput(h, w int) {
	key := [2]int{h, w}
	if pl, ok := p.plans[key]; ok {
		p.resizePlan = pl
		return
	}
	if len(p.plans) >= maxPlans {
		clear(p.plans)
	}
	oh, ow := p.outSize(h, w)
	f := pilFilters[p.cfg.Filter]
	pl := &resizePlan{needHoriz: ow != w, needVert: oh != h}
	pl.horiz = precomputeCoeffs(w, ow, f)
	pl.vert = precomputeCoeffs(h, oh, f)
	pl.yFirst = int(pl.vert.bounds[0])
	pl.yLast = int(pl.vert.bounds[2*oh-2] + pl.vert.bounds[2*oh-1])
	pl.vertBounds = append([]int32(nil), pl.vert.bounds...)
	if pl.needHoriz {
		for i := 0; i < oh; i++ {
			pl.vertBounds[2*i] -= int32(pl.yFirst)
		}
	}
	p.plans[key] = pl
	p.resizePlan = pl
}

func (p *preprocessor) outSize(h, w int) (int, int) {
	if !p.cfg.Resize {
		return h, w
	}
	return p.cfg.Height, p.cfg.Width
}

// run writes one image (BGR, HWC uint8, row stride in bytes) into dst as CHW float32.
// dst must hold 3*H*W values of the configured size.
func (p *preprocessor) run(src []uint8, h, w, stride, channels int, dst []float32, par int) {
	p.setInput(h, w)
	oh, ow := p.outSize(h, w)
	// Source pixel (x, y) as RGB bytes.
	rgb := func(row []uint8, x int) (uint8, uint8, uint8) {
		switch channels {
		case 1:
			v := row[x]
			return v, v, v
		default: // BGR or BGRA
			o := x * channels
			return row[o+2], row[o+1], row[o]
		}
	}
	// Horizontal pass on rows yFirst..yLast into tmp (RGB), or a straight copy.
	rows := h
	rowOff := 0
	if p.needHoriz {
		rows = p.yLast - p.yFirst
		rowOff = p.yFirst
	}
	tw := ow
	if !p.needHoriz {
		tw = w
	}
	if cap(p.tmp) < rows*tw*3 {
		p.tmp = make([]uint8, rows*tw*3)
	}
	tmp := p.tmp[:rows*tw*3]
	if p.needHoriz {
		// Rows are independent: split big images over par goroutines.
		if par > 1 && rows*w >= 256*256 {
			var wg sync.WaitGroup
			chunk := (rows + par - 1) / par
			for y0 := 0; y0 < rows; y0 += chunk {
				wg.Add(1)
				go func(y0, y1 int) {
					defer wg.Done()
					p.horizontal(src, stride, channels, rowOff, y0, y1, tw, ow, tmp, rgb)
				}(y0, min(y0+chunk, rows))
			}
			wg.Wait()
		} else {
			p.horizontal(src, stride, channels, rowOff, 0, rows, tw, ow, tmp, rgb)
		}
	} else {
		for y := 0; y < rows; y++ {
			row := src[y*stride:]
			out := tmp[y*tw*3:]
			for x := 0; x < w; x++ {
				out[3*x], out[3*x+1], out[3*x+2] = rgb(row, x)
			}
		}
	}
	p.vertical(tmp, tw, oh, ow, dst)
}

// vertical is the second pass: the vertical filter (or a copy) from tmp, then
// rescale and normalise through the lookup tables into dst's three planes.
func (p *preprocessor) vertical(tmp []uint8, tw, oh, ow int, dst []float32) {
	plane := oh * ow
	if p.needVert {
		ks := p.vert.ksize
		for yy := 0; yy < oh; yy++ {
			ymin, ymax := int(p.vertBounds[2*yy]), int(p.vertBounds[2*yy+1])
			k := p.vert.kk[yy*ks : yy*ks+ymax]
			for xx := 0; xx < ow; xx++ {
				var s0, s1, s2 int32 = 1 << (pilPrecisionBits - 1), 1 << (pilPrecisionBits - 1), 1 << (pilPrecisionBits - 1)
				for y, kv := range k {
					o := ((y+ymin)*tw + xx) * 3
					s0 += int32(tmp[o]) * kv
					s1 += int32(tmp[o+1]) * kv
					s2 += int32(tmp[o+2]) * kv
				}
				i := yy*ow + xx
				dst[i] = p.lut[0][clip8(s0)]
				dst[plane+i] = p.lut[1][clip8(s1)]
				dst[2*plane+i] = p.lut[2][clip8(s2)]
			}
		}
		return
	}
	for i := 0; i < plane; i++ {
		dst[i] = p.lut[0][tmp[3*i]]
		dst[plane+i] = p.lut[1][tmp[3*i+1]]
		dst[2*plane+i] = p.lut[2][tmp[3*i+2]]
	}
}

// matBytes returns a BGR/BGRA/gray 8-bit Mat's pixels without copying when it is continuous.
func matBytes(m gocv.Mat) (data []uint8, h, w, stride, channels int, err error) {
	if m.Empty() {
		return nil, 0, 0, 0, 0, fmt.Errorf("empty image")
	}
	switch m.Type() {
	case gocv.MatTypeCV8UC3:
		channels = 3
	case gocv.MatTypeCV8UC4:
		channels = 4
	case gocv.MatTypeCV8UC1:
		channels = 1
	default:
		return nil, 0, 0, 0, 0, fmt.Errorf("image type %v is not 8-bit BGR, BGRA or gray", m.Type())
	}
	h, w = m.Rows(), m.Cols()
	if m.IsContinuous() {
		data, err = m.DataPtrUint8()
		if err != nil {
			return nil, 0, 0, 0, 0, fmt.Errorf("image data: %w", err)
		}
	} else {
		// A region of a bigger Mat: rows are not adjacent, so copy it compactly first.
		c := m.Clone()
		data = c.ToBytes()
		c.Close()
	}
	stride = w * channels
	if len(data) < h*stride {
		return nil, 0, 0, 0, 0, fmt.Errorf("image data is %d bytes, want %d", len(data), h*stride)
	}
	return data, h, w, stride, channels, nil
}

// horizontal runs Pillow's horizontal pass for tmp rows [y0, y1).
func (p *preprocessor) horizontal(src []uint8, stride, channels, rowOff, y0, y1, tw, ow int, tmp []uint8, rgb func([]uint8, int) (uint8, uint8, uint8)) {
	ks := p.horiz.ksize
	if channels == 3 && p.horiz.nonNeg {
		for y := y0; y < y1; y++ {
			rowBGR(src[(y+rowOff)*stride:], tmp[y*tw*3:y*tw*3+3*ow], p.horiz.kk, p.horiz.bounds, ks)
		}
		return
	}
	for y := y0; y < y1; y++ {
		row := src[(y+rowOff)*stride:]
		out := tmp[y*tw*3:]
		for xx := 0; xx < ow; xx++ {
			xmin, xmax := int(p.horiz.bounds[2*xx]), int(p.horiz.bounds[2*xx+1])
			k := p.horiz.kk[xx*ks : xx*ks+xmax]
			var s0, s1, s2 int32 = 1 << (pilPrecisionBits - 1), 1 << (pilPrecisionBits - 1), 1 << (pilPrecisionBits - 1)
			if channels >= 3 {
				px := row[xmin*channels : (xmin+len(k))*channels]
				for x, kv := range k {
					o := x * channels
					c := px[o : o+3 : o+3] // one bounds check per tap
					s0 += int32(c[2]) * kv
					s1 += int32(c[1]) * kv
					s2 += int32(c[0]) * kv
				}
			} else {
				for x, kv := range k {
					r, g, b := rgb(row, x+xmin)
					s0 += int32(r) * kv
					s1 += int32(g) * kv
					s2 += int32(b) * kv
				}
			}
			out[3*xx], out[3*xx+1], out[3*xx+2] = clip8(s0), clip8(s1), clip8(s2)
		}
	}
}

// rowBGR is the horizontal pass of one row of BGR pixels with non-negative
// weights into out (RGB, 3 bytes per output pixel), weights and bounds as
// in filterCoeffs. Two channels share a 64-bit multiply: each 32-bit lane's
// sum stays below 255 * 2^22 + 2^21 < 2^32, so the lanes never carry into
// each other and the result is the same integer as three separate sums.
func rowBGR(row, out []uint8, kk []int32, bounds []int32, ks int) {
	for i := range len(out) / 3 {
		xmin, n := int(bounds[2*i]), int(bounds[2*i+1])
		br, g := taps3(row[xmin*3:xmin*3+3*n], kk[i*ks:i*ks+n])
		out[3*i], out[3*i+1], out[3*i+2] = clip8(int32(br>>32)), clip8(g), clip8(int32(uint32(br)))
	}
}

// taps3 is rowBGR's inner loop: the B and R sums in the low and high lanes
// of br, the G sum in g. Kept out of line (noinline), its few values fit in
// registers; inlined, the loop spilled them to the stack on every tap.
//
//go:noinline
func taps3(px []uint8, k []int32) (br uint64, g int32) {
	br = uint64(1)<<(pilPrecisionBits-1) | uint64(1)<<(pilPrecisionBits-1+32)
	g = int32(1) << (pilPrecisionBits - 1)
	for x, kv := range k {
		c := px[3*x : 3*x+3 : 3*x+3]
		br += (uint64(c[0]) | uint64(c[2])<<32) * uint64(kv)
		g += int32(c[1]) * kv
	}
	return br, g
}

// fastAreaFactor is the integer shrink factor of fast resizing's second (area) step.
const fastAreaFactor = 4

// fastResizeMat resizes img to w x h with OpenCV. Shrinking is a bilinear resize to
// an integer multiple of the target followed by INTER_AREA with that integer
// factor (OpenCV's fast path; INTER_AREA at a fractional ratio costs ~10x more).
// New Mats are appended to owned for the caller to close.
func (m *Model) fastResizeMat(img gocv.Mat, w, h int, owned *[]gocv.Mat) gocv.Mat {
	k := fastAreaFactor
	for k > 1 && (img.Cols() < k*w || img.Rows() < k*h) {
		k /= 2
	}
	r := gocv.NewMat()
	*owned = append(*owned, r)
	if k <= 1 {
		interp := gocv.InterpolationArea
		if img.Rows() < h || img.Cols() < w {
			interp = gocv.InterpolationLinear
		}
		gocv.Resize(img, &r, image.Pt(w, h), 0, 0, interp)
		return r
	}
	gocv.Resize(img, &r, image.Pt(k*w, k*h), 0, 0, gocv.InterpolationLinear)
	r2 := gocv.NewMat()
	*owned = append(*owned, r2)
	gocv.Resize(r, &r2, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	return r2
}
