package ingest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"
)

// gopClip is a testsrc H.264 clip with a keyframe every gop frames exactly
// (no scene-cut keyframes, no B-frames).
func gopClip(t testing.TB, seconds, fps, gop int) string {
	t.Helper()
	p := filepath.Join(clipDir, fmt.Sprintf("gop-%ds-%dfps-g%d.mp4", seconds, fps, gop))
	clipMu.Lock()
	defer clipMu.Unlock()
	if _, ok := clipMade[p]; ok {
		return p
	}
	out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-f", "lavfi",
		"-i", fmt.Sprintf("testsrc=duration=%d:size=160x120:rate=%d", seconds, fps),
		"-c:v", "libx264", "-preset", "ultrafast", "-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop),
		"-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p", p).CombinedOutput()
	if err != nil {
		t.Fatalf("making test clip with ffmpeg (scripts/deps-apt.sh installs it): %v: %s", err, out)
	}
	clipMade[p] = p
	return p
}

// sampledPTS opens path through OpenLocation with spec (URI set from path)
// and a Sampler at every, and returns the sampled frames' PTS.
func decodedSamples(t *testing.T, path string, spec SourceSpec, every time.Duration) ([]time.Duration, Source) {
	t.Helper()
	spec.URI = path
	spec.SampleEvery = every
	loc, err := ParseURI(path)
	if err != nil {
		t.Fatal(err)
	}
	src, err := OpenLocation(context.Background(), loc, spec)
	if err != nil {
		t.Fatal(err)
	}
	smp, err := NewSampler(src, "clip", SampleConfig{Every: every}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, smp), src
}

type decodeLog struct {
	mu       sync.Mutex
	keyOnly  []bool
	interval []time.Duration
}

func (d *decodeLog) FramesRead(string, int)  {}
func (d *decodeLog) FrameSampled(string)     {}
func (d *decodeLog) FramesStale(string, int) {}
func (d *decodeLog) SourceDown(string)       {}
func (d *decodeLog) Reconnected(string)      {}
func (d *decodeLog) DecodeChosen(_ string, k bool, iv time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.keyOnly = append(d.keyOnly, k)
	d.interval = append(d.interval, iv)
}

// Every decode policy samples the same frames where the keyframes fall on
// the sampling grid; keyframes-only decoding reads one frame per keyframe,
// reports no damage, and "all" converts only what the sampler takes.
func TestDecodePoliciesSampleTheSameFrames(t *testing.T) {
	const every = time.Second
	clip1s := gopClip(t, 12, 30, 30) // keyframe every second
	clip2s := gopClip(t, 12, 30, 60) // every two seconds
	want := make([]time.Duration, 12)
	for i := range want {
		want[i] = time.Duration(i) * time.Second
	}
	for _, c := range []struct {
		name, path  string
		decode      Decode
		wantKeyOnly bool
		wantPTS     []time.Duration
	}{
		{"all, 1 s GOP", clip1s, DecodeAll, false, want},
		{"keyframes, 1 s GOP", clip1s, DecodeKeyframes, true, want},
		{"auto, 1 s GOP", clip1s, DecodeAuto, true, want},
		{"all, 2 s GOP", clip2s, DecodeAll, false, want},
		{"auto, 2 s GOP", clip2s, DecodeAuto, false, want},
		// Keyframes only with a keyframe every 2 s: one sample per keyframe,
		// at its real PTS (never an invented time).
		{"keyframes, 2 s GOP", clip2s, DecodeKeyframes, true, []time.Duration{0, 2 * time.Second, 4 * time.Second, 6 * time.Second, 8 * time.Second, 10 * time.Second}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &decodeLog{}
			got, src := decodedSamples(t, c.path, SourceSpec{Decode: c.decode, Metrics: m}, every)
			if fmt.Sprint(got) != fmt.Sprint(c.wantPTS) {
				t.Errorf("sampled pts %v, want %v", got, c.wantPTS)
			}
			if len(m.keyOnly) != 1 || m.keyOnly[0] != c.wantKeyOnly {
				t.Errorf("decode reported %v, want keyframes only %v", m.keyOnly, c.wantKeyOnly)
			}
			if c.decode == DecodeAuto {
				wantIv := time.Second
				if c.path == clip2s {
					wantIv = 2 * time.Second
				}
				if m.interval[0] != wantIv {
					t.Errorf("measured keyframe interval %s, want %s", m.interval[0], wantIv)
				}
			}
			fs := src.(*FileSource)
			if d := fs.Damages(); len(d) != 0 {
				t.Errorf("damage reported: %v", d)
			}
			if !c.wantKeyOnly && fs.Skipped() < 300 {
				t.Errorf("%d frames decoded and not converted, want most of the 360 (only sampled frames are converted)", fs.Skipped())
			}
		})
	}
}

// Keyframe decoding of a file resumed from a checkpoint samples what an
// uninterrupted replay samples after the checkpoint.
func TestDecodeKeyframesResume(t *testing.T) {
	p := gopClip(t, 12, 30, 30)
	spec := SourceSpec{Decode: DecodeKeyframes, StartAt: 5*time.Second + time.Millisecond}
	spec.URI, spec.SampleEvery = p, time.Second
	loc, _ := ParseURI(p)
	src, err := OpenLocation(context.Background(), loc, spec)
	if err != nil {
		t.Fatal(err)
	}
	smp, err := NewSampler(src, "clip", SampleConfig{Every: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	smp.ResumeAfter(5 * time.Second)
	got := readAll(t, smp)
	want := []time.Duration{6 * time.Second, 7 * time.Second, 8 * time.Second, 9 * time.Second, 10 * time.Second, 11 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("resumed keyframe replay sampled %v, want %v", got, want)
	}
}

// The keyframe timeline: skipped frames between keyframes are no damage, a
// stream that ends within a keyframe interval of the last keyframe is not
// truncated, and failed reads in the middle still are damage.
func TestTimelineKeyframes(t *testing.T) {
	tl := newTimeline(30, 360)
	tl.keyframes = true
	for i := 0; i < 12; i++ {
		p, why := tl.place(float64(i) * 1000)
		if why != "" {
			t.Fatalf("keyframe %d dropped: %s", i, why)
		}
		if d := tl.frame(p); len(d) != 0 {
			t.Fatalf("keyframe %d: damage %v", i, d)
		}
	}
	if d := tl.end(); len(d) != 0 {
		t.Errorf("end: %v; the 29 frames after the last keyframe were skipped, not lost", d)
	}
	if _, why := tl.place(-1); why == "" {
		t.Errorf("a keyframe without a container pts was given an invented time")
	}

	tl = newTimeline(30, 360)
	tl.keyframes = true
	p, _ := tl.place(0)
	tl.frame(p)
	tl.fail()
	tl.fail()
	p, _ = tl.place(3000)
	d := tl.frame(p)
	if len(d) != 1 || d[0].ResumePTS != 3*time.Second || d[0].LostFrames != 2 {
		t.Errorf("failed reads between keyframes: %+v, want one stretch resumed at 3s with the 2 failed reads", d)
	}
}

// fakeLazy counts conversions: a lazy grabber converts only frames somebody
// waits for.
type fakeLazy struct {
	advances, retrieves int
	mu                  sync.Mutex
}

func (f *fakeLazy) grab(stop <-chan struct{}, dst *gocv.Mat) grabbed {
	panic("lazy grabbers are advanced")
}
func (f *fakeLazy) release() {}
func (f *fakeLazy) advance(stop <-chan struct{}) grabbed {
	time.Sleep(2 * time.Millisecond) // a 500 fps camera
	f.mu.Lock()
	f.advances++
	f.mu.Unlock()
	return grabbed{ok: true, pts: time.Duration(f.advances) * 2 * time.Millisecond, hasPTS: true}
}
func (f *fakeLazy) retrieve(dst *gocv.Mat) bool {
	f.mu.Lock()
	f.retrieves++
	f.mu.Unlock()
	m := gocv.NewMatWithSize(4, 4, gocv.MatTypeCV8UC3)
	dst.Close()
	*dst = m
	return true
}

func TestLiveReaderConvertsOnlyWantedFrames(t *testing.T) {
	g := &fakeLazy{}
	r := startLive("cam", zerolog.Nop(), g, 3, time.Second)
	defer r.Close()
	var last int64 = -1
	for range 5 {
		f, err := r.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.Seq <= last {
			t.Errorf("seq %d after %d", f.Seq, last)
		}
		last = f.Seq
		_ = f.Close()
		time.Sleep(20 * time.Millisecond) // the sampler's wait for its tick
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.retrieves > 6 || g.advances < 30 {
		t.Errorf("%d frames decoded, %d converted; want about 50 and 5 (one per Next)", g.advances, g.retrieves)
	}
	t.Logf("%d frames decoded, %d converted", g.advances, g.retrieves)
}

// BenchmarkFileDecode720p replays a 10 s 1280x720 30 fps clip (keyframe
// every 2 s) per iteration: converting every frame (as before sampling-aware
// decoding), converting only the frames a 1 s sampler takes, and keyframes
// only. It reports the cost and Go allocations per decoded frame.
func BenchmarkFileDecode720p(b *testing.B) {
	p := filepath.Join(clipDir, "bench-720p-g60.mp4")
	clipMu.Lock()
	if _, ok := clipMade[p]; !ok {
		out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=10:size=1280x720:rate=30",
			"-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-bf", "0",
			"-pix_fmt", "yuv420p", p).CombinedOutput()
		if err != nil {
			clipMu.Unlock()
			b.Fatalf("ffmpeg: %v: %s", err, out)
		}
		clipMade[p] = p
	}
	clipMu.Unlock()
	for _, c := range []struct {
		name string
		opt  FileOptions
	}{
		{"convert-every-frame", FileOptions{}},
		{"convert-sampled-1s", FileOptions{SampleEvery: time.Second}},
		{"keyframes-only", FileOptions{Keyframes: true, SampleEvery: time.Second}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var frames int64
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			for i := 0; i < b.N; i++ {
				fs, err := OpenFile(context.Background(), p, c.opt)
				if err != nil {
					b.Fatal(err)
				}
				for {
					f, err := fs.Next(context.Background())
					if err != nil {
						break
					}
					_ = f.Close()
				}
				frames += fs.tl.seq
				_ = fs.Close()
			}
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(frames)/1e3, "us/decoded-frame")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(frames), "allocs/decoded-frame")
		})
	}
}
