package inference

import (
	"math"
	"math/rand"
	"path/filepath"
	"testing"
)

// TestPreprocessRowSplit checks that splitting a big image's rows over goroutines
// gives exactly the single-threaded (Pillow-exact) result, for every filter.
func TestPreprocessRowSplit(t *testing.T) {
	h, w := 720, 1280
	src := randomBytes(3, h*w*4)
	for filter := range pilFilters {
		for _, ch := range []int{3, 4} {
			for _, size := range [][2]int{{32, 32}, {224, 224}, {64, 96}, {900, 1500}} {
				cfg := &PreprocessConfig{Height: size[0], Width: size[1], Filter: filter, Rescale: 1.0 / 255, Resize: true, Normalize: true,
					Mean: [3]float32{0.5, 0.4, 0.3}, Std: [3]float32{0.2, 0.3, 0.4}}
				a := make([]float32, 3*size[0]*size[1])
				b := make([]float32, len(a))
				newPreprocessor(cfg).run(src, h, w, w*ch, ch, a, 1)
				newPreprocessor(cfg).run(src, h, w, w*ch, ch, b, 3)
				for i := range a {
					if a[i] != b[i] {
						t.Fatalf("filter %d size %v channels %d: value %d differs (%v vs %v)", filter, size, ch, i, a[i], b[i])
					}
				}
			}
		}
	}
}

// TestPreprocessIdentity: without resizing, pixels map straight through rescale and normalise, BGR -> RGB.
func TestPreprocessIdentity(t *testing.T) {
	cfg := &PreprocessConfig{Height: 1, Width: 2, Filter: resampleBilinear, Rescale: 1.0 / 255, Resize: true, Normalize: true,
		Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.5, 0.5, 0.5}}
	src := []uint8{0, 128, 255, 10, 20, 30} // two BGR pixels
	dst := make([]float32, 6)
	newPreprocessor(cfg).run(src, 1, 2, 6, 3, dst, 1)
	want := []float32{ // R plane, G plane, B plane
		float32(float64(255)/255)*2 - 1, float32(float64(30)/255-0.5) / 0.5,
		(float32(float64(128)/255) - 0.5) / 0.5, (float32(float64(20)/255) - 0.5) / 0.5,
		-1, (float32(float64(10)/255) - 0.5) / 0.5,
	}
	for i := range want {
		if d := dst[i] - want[i]; d > 1e-6 || d < -1e-6 {
			t.Fatalf("dst %v, want %v", dst, want)
		}
	}
}

// TestPreprocessPILReference compares a camera-sized frame's preprocessing with
// transformers' ViTImageProcessor (Pillow resize) for three filters
// (testdata/make_pil_reference.py writes the references with the same image formula).
func TestPreprocessPILReference(t *testing.T) {
	h, w := 720, 1280
	src := make([]uint8, h*w*3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o := (y*w + x) * 3 // BGR
			src[o+2] = uint8((x ^ y) & 255)
			src[o+1] = uint8((x * y) % 251)
			src[o] = uint8((x*7 + y*3) % 256)
		}
	}
	for _, c := range []struct {
		name           string
		filter, oh, ow int
	}{{"bilinear-64x64", resampleBilinear, 64, 64}, {"bicubic-24x40", resampleBicubic, 24, 40}, {"lanczos-30x50", resampleLanczos, 30, 50}} {
		want := readF32(t, filepath.Join("testdata", "pil-1280x720-"+c.name+".f32"))
		cfg := &PreprocessConfig{Height: c.oh, Width: c.ow, Filter: c.filter, Rescale: 1.0 / 255, Resize: true, Normalize: true,
			Mean: [3]float32{0.5, 0.4, 0.3}, Std: [3]float32{0.2, 0.3, 0.4}}
		got := make([]float32, len(want))
		newPreprocessor(cfg).run(src, h, w, w*3, 3, got, 2)
		var mad, maxd float64
		for i := range want {
			d := math.Abs(float64(got[i] - want[i]))
			mad += d
			maxd = math.Max(maxd, d)
		}
		mad /= float64(len(want))
		t.Logf("%s: mean abs diff %.3g, max %.3g", c.name, mad, maxd)
		if maxd > 1e-6 {
			t.Errorf("%s: differs from Pillow (mean abs diff %.3g, max %.3g)", c.name, mad, maxd)
		}
	}
}

// TestPreprocessTwoLaneSums checks the two-channels-per-multiply horizontal pass (non-negative
// kernels) against the plain per-channel sums, on random and on saturated (all 255) frames where
// the 32-bit lanes come closest to carrying into each other.
func TestPreprocessTwoLaneSums(t *testing.T) {
	h, w := 360, 1280
	noise := randomBytes(5, h*w*3)
	white := make([]uint8, h*w*3)
	for i := range white {
		white[i] = 255
	}
	for _, filter := range []int{resampleBilinear, resampleBox} {
		for _, size := range [][2]int{{64, 64}, {7, 5}, {224, 224}} {
			cfg := &PreprocessConfig{Height: size[0], Width: size[1], Filter: filter, Rescale: 1.0 / 255, Resize: true}
			for name, src := range map[string][]uint8{"noise": noise, "white": white} {
				fast := newPreprocessor(cfg)
				fast.setInput(h, w)
				if !fast.horiz.nonNeg {
					t.Fatalf("filter %d: weights not flagged non-negative", filter)
				}
				plain := newPreprocessor(cfg)
				plain.setInput(h, w)
				plain.horiz.nonNeg = false
				a := make([]float32, 3*size[0]*size[1])
				b := make([]float32, len(a))
				fast.run(src, h, w, w*3, 3, a, 1)
				plain.run(src, h, w, w*3, 3, b, 1)
				for i := range a {
					if a[i] != b[i] {
						t.Fatalf("filter %d size %v %s: value %d: two-lane %v, plain %v", filter, size, name, i, a[i], b[i])
					}
					if name == "white" && a[i] != 1 {
						t.Fatalf("filter %d size %v: white frame gives %v at %d, want 1", filter, size, a[i], i)
					}
				}
			}
		}
	}
}

// randomBytes returns n seeded random bytes (test frames).
func randomBytes(seed int64, n int) []uint8 {
	r := rand.New(rand.NewSource(seed))
	b := make([]uint8, n)
	for i := range b {
		b[i] = uint8(r.Intn(256))
	}
	return b
}
