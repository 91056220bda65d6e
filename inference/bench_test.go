package inference

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"gocv.io/x/gocv"
)

// benchModel is $LOOKOUT_BENCH_MODEL, else models/demo when it has been exported,
// else the tiny fixture.
func benchModel(b *testing.B) *Model {
	if dir := os.Getenv("LOOKOUT_BENCH_MODEL"); dir != "" {
		return loadShared(b, dir)
	}
	root := repoRoot(b)
	dir := filepath.Join(root, "models", "demo")
	if _, err := os.Stat(filepath.Join(dir, fileEncoder)); err != nil {
		dir = tinyDir(b)
	}
	return loadShared(b, dir)
}

// benchImages are the golden images cycled to n, as 1280x720 frames (a camera's size).
func benchImages(b *testing.B, n int) []gocv.Mat { return benchImagesSized(b, n, true) }

// benchImagesSized returns the golden images at their own sizes (hd false), as the
// Python comparison script uses them, or resized to 1280x720.
func benchImagesSized(b *testing.B, n int, hd bool) []gocv.Mat {
	g := loadGolden(b, "tiny-vit-gpt2")
	var src []gocv.Mat
	for _, im := range g.Images {
		m := readImage(b, g.path(im.File))
		if !hd {
			src = append(src, m)
			continue
		}
		big := gocv.NewMat()
		gocv.Resize(m, &big, imagePoint(1280, 720), 0, 0, gocv.InterpolationLinear)
		m.Close()
		src = append(src, big)
	}
	b.Cleanup(func() {
		for _, m := range src {
			m.Close()
		}
	})
	out := make([]gocv.Mat, n)
	for i := range out {
		out[i] = src[i%len(src)]
	}
	return out
}

func BenchmarkPreprocess1280x720(b *testing.B) {
	m := benchModel(b)
	imgs := benchImages(b, 1)
	b.ResetTimer()
	ws := &workspace{}
	for i := 0; i < b.N; i++ {
		err := m.preprocess(ws, imgs)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncoder(b *testing.B) {
	m := benchModel(b)
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) {
			ws := &workspace{}
			if err := m.preprocess(ws, benchImages(b, n)); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := m.encode(ws, n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecoderStep is one cached decoder step at past length 8.
func BenchmarkDecoderStep(b *testing.B) {
	m := benchModel(b)
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) {
			ws := &workspace{}
			if err := m.preprocess(ws, benchImages(b, n)); err != nil {
				b.Fatal(err)
			}
			if err := m.encode(ws, n); err != nil {
				b.Fatal(err)
			}
			toks := make([]int64, n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				d := m.newDecoder(ws, n, n, 10)
				for s := 0; s < 8; s++ {
					if _, err := d.step(toks); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if _, err := d.step(toks); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				d.close()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkCaption is the whole Caption call on the golden images (as scripts/bench-python.py).
func BenchmarkCaption(b *testing.B) { benchCaption(b, false) }

// BenchmarkCaptionHD is the whole Caption call on 1280x720 frames (preprocessing at camera size).
func BenchmarkCaptionHD(b *testing.B) { benchCaption(b, true) }

func benchCaption(b *testing.B, hd bool) {
	m := benchModel(b)
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) {
			imgs := benchImagesSized(b, n, hd)
			s0 := m.SessionTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.Caption(bg, imgs); err != nil {
					b.Fatal(err)
				}
			}
			el := b.Elapsed()
			b.ReportMetric(float64(n*b.N)/el.Seconds(), "captions/s")
			if s := (m.SessionTime() - s0).Seconds(); s > 0 {
				b.ReportMetric(100*(el.Seconds()-s)/s, "%overhead")
			}
		})
	}
}

// BenchmarkCaptionWorkers is what pipeline.workers buys: 1, 2 and 4
// goroutines captioning batches of 8 golden images at once on one model
// (one intra-op thread per run). b.N batches are shared among the workers;
// captions/s across workers 1 and 2 is the scaling figure of
// docs/CAPACITY.md.
func BenchmarkCaptionWorkers(b *testing.B) {
	m := benchModel(b)
	const batch = 8
	for _, w := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers%d", w), func(b *testing.B) {
			imgs := benchImagesSized(b, batch, false)
			var next atomic.Int64
			var wg sync.WaitGroup
			s0 := m.SessionTime()
			b.ResetTimer()
			for range w {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := m.Caption(bg, imgs); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "captions/s")
			// ONNX Runtime's own time per caption: it grows with workers when
			// runs contend (memory bandwidth, allocator), not just share cores.
			b.ReportMetric((m.SessionTime()-s0).Seconds()*1e3/float64(batch*b.N), "ort-ms/caption")
		})
	}
}
