package inference

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"lookout/internal/cores"
)

// benchModel is $LOOKOUT_BENCH_MODEL, else models/demo when it has been exported,
// else the tiny fixture.
func benchModel(b *testing.B) *Model { return loadShared(b, benchDir(b)) }

// benchDir is $LOOKOUT_BENCH_MODEL, else models/demo when it has been
// exported, else the tiny fixture.
func benchDir(b *testing.B) string {
	if dir := os.Getenv("LOOKOUT_BENCH_MODEL"); dir != "" {
		return dir
	}
	dir := filepath.Join(repoRoot(b), "models", "demo")
	if _, err := os.Stat(filepath.Join(dir, fileEncoder)); err != nil {
		return tinyDir(b)
	}
	return dir
}

// benchImages are the golden images cycled to n, as 1280x720 frames (a camera's size).
func benchImages(b *testing.B, n int) []gocv.Mat { return benchImagesSized(b, n, true) }

// benchImagesSized returns the golden images at their own sizes (hd false), as the
// Python comparison script uses them, or resized to 1280x720.
func benchImagesSized(b testing.TB, n int, hd bool) []gocv.Mat {
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

// BenchmarkPreprocess1280x720 is one camera frame's preprocessing with the
// exact (Pillow) resize, and with resize: fast (OpenCV's) beside it. Run it
// with GOMAXPROCS=1 for the cost per core.
func BenchmarkPreprocess1280x720(b *testing.B) {
	b.Run("exact", func(b *testing.B) { benchPreprocess(b, benchModel(b)) })
	b.Run("fast", func(b *testing.B) {
		requireORT(b)
		m, err := Load(benchDir(b), Options{IntraOpThreads: 1, Resize: "fast"})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		benchPreprocess(b, m)
	})
}

func benchPreprocess(b *testing.B, m *Model) {
	imgs := benchImages(b, 1)
	b.ResetTimer()
	ws := &workspace{s: m.sets[0]}
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
			ws := &workspace{s: m.sets[0]}
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
			ws := &workspace{s: m.sets[0]}
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
// workers captioning batches of 8 golden images at once, one intra-op
// thread per run, set up as the service sets them up (servicePolicy).
// b.N batches are shared among the workers.
func BenchmarkCaptionWorkers(b *testing.B) {
	const batch = 8
	for _, w := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers%d", w), func(b *testing.B) {
			m := loadBench(b, w)
			imgs := benchImagesSized(b, batch, false)
			defer servicePolicy(w, true)()
			var next atomic.Int64
			var wg sync.WaitGroup
			s0 := m.SessionTime()
			b.ResetTimer()
			for range w {
				wg.Go(func() {
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					for next.Add(1) <= int64(b.N) {
						if _, err := m.Caption(bg, imgs); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "captions/s")
			// ONNX Runtime's own time per caption: it grows with workers when
			// runs contend, not just share cores.
			b.ReportMetric((m.SessionTime()-s0).Seconds()*1e3/float64(batch*b.N), "ort-ms/caption")
		})
	}
}

// BenchmarkWorkerScaling is the speedup of 2 workers over 1 (one intra-op
// thread each, batches of 8 golden images): "service" as the service runs
// them (a session copy per worker, worker threads locked, a spare P per
// worker: internal/cores), "plain" as before (one shared session,
// GOMAXPROCS = cores, goroutines free to move between threads). Each b.N is
// a round of 1 and 2 workers for 0.4 s each, in alternating order, so the
// machine's drift hits both; the figure is the median of the rounds'
// ratios. Run it with -benchtime 10x or more.
func BenchmarkWorkerScaling(b *testing.B) {
	const batch = 8
	for _, service := range []bool{true, false} {
		name := map[bool]string{true: "service", false: "plain"}[service]
		b.Run(name, func(b *testing.B) {
			sets := 1
			if service {
				sets = 2
			}
			m := loadBench(b, sets)
			imgs := benchImagesSized(b, batch, false)
			rate := func(w int) float64 {
				defer servicePolicy(w, service)()
				return float64(batch) * captionRounds(b, m, imgs, w, service, 400*time.Millisecond)
			}
			rate(2) // warm both session copies
			var ratios []float64
			for i := range b.N {
				var one, two float64
				if i%2 == 0 {
					one, two = rate(1), rate(2)
				} else {
					two, one = rate(2), rate(1)
				}
				ratios = append(ratios, two/one)
			}
			slices.Sort(ratios)
			med := ratios[len(ratios)/2]
			if len(ratios)%2 == 0 {
				med = (med + ratios[len(ratios)/2-1]) / 2
			}
			b.ReportMetric(med, "speedup")
			b.ReportMetric(ratios[0], "min-speedup")
			b.ReportMetric(ratios[len(ratios)-1], "max-speedup")
		})
	}
}

// loadBench loads the benchmark model (benchModel's choice) with sets
// session copies and one intra-op thread per run.
func loadBench(b *testing.B, sets int) *Model {
	requireORT(b)
	dir := benchDir(b)
	m, err := Load(dir, Options{IntraOpThreads: 1, Sessions: sets})
	if err != nil {
		b.Fatalf("Load(%s): %v", dir, err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

// servicePolicy gives w workers the spare Ps the service gives them
// (cores.Reserve) when on, and returns the undo.
func servicePolicy(w int, on bool) func() {
	old := runtime.GOMAXPROCS(0)
	if on {
		cores.Reserve(w)
	} else {
		runtime.GOMAXPROCS(cores.N())
	}
	return func() { runtime.GOMAXPROCS(old) }
}

// captionRounds runs w goroutines captioning imgs for d (locked to their
// threads when lock) and returns Caption calls per second.
func captionRounds(b *testing.B, m *Model, imgs []gocv.Mat, w int, lock bool, d time.Duration) float64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	stop := t0.Add(d)
	for range w {
		wg.Go(func() {
			if lock {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
			}
			for time.Now().Before(stop) {
				if _, err := m.Caption(bg, imgs); err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(t0).Seconds()
}
