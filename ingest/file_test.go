package ingest

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"
)

func sampledPTS(t *testing.T, path string, cfg SampleConfig) ([]time.Duration, *Counters) {
	t.Helper()
	src, err := Open(context.Background(), SourceSpec{URI: path})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	defer src.Close()
	var c Counters
	s, err := NewSampler(src, "clip", cfg, &c)
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, s), &c
}

// A 60 s 30 fps replay sampled every second gives exactly the frames at
// 0, 1, ..., 59 s, and the same on a second run.
func TestSamplerEverySecondIsExactAndRepeatable(t *testing.T) {
	path := clip(t, 60, 30, false)
	var want []time.Duration
	for i := 0; i < 60; i++ {
		want = append(want, time.Duration(i)*time.Second)
	}
	first, c := sampledPTS(t, path, SampleConfig{Every: time.Second})
	if !equalPTS(first, want) {
		t.Fatalf("every=1s gave %d frames %v, want %v", len(first), first, want)
	}
	if c.Read.Load() != 1800 || c.Sampled.Load() != 60 || c.Stale.Load() != 0 {
		t.Errorf("counters read=%d sampled=%d stale=%d, want 1800, 60, 0", c.Read.Load(), c.Sampled.Load(), c.Stale.Load())
	}
	second, _ := sampledPTS(t, "file://"+path, SampleConfig{Every: time.Second})
	if !equalPTS(first, second) {
		t.Fatalf("second run differs: %v vs %v", second, first)
	}
}

func TestSamplerFPSAndAll(t *testing.T) {
	path := clip(t, 4, 25, true)
	got, _ := sampledPTS(t, path, SampleConfig{FPS: 2})
	// Frames are 40 ms apart: the first at or after each 500 ms mark.
	var want []time.Duration
	for i := 0; i < 8; i++ {
		mark := time.Duration(i) * 500 * time.Millisecond
		frame := (mark + 39*time.Millisecond) / (40 * time.Millisecond)
		want = append(want, frame*40*time.Millisecond)
	}
	if !equalPTS(got, want) {
		t.Errorf("fps=2 on 4 s at 25 fps gave %v, want %v", got, want)
	}
	all, _ := sampledPTS(t, path, SampleConfig{})
	if len(all) != 100 {
		t.Fatalf("no sampling gave %d frames, want 100", len(all))
	}
	for i, p := range all {
		if want := time.Duration(i) * 40 * time.Millisecond; p != want {
			t.Fatalf("frame %d pts %s, want %s", i, p, want)
		}
	}
}

func TestSampleConfigErrors(t *testing.T) {
	for _, c := range []SampleConfig{{Every: -time.Second}, {FPS: -1}, {Every: time.Second, FPS: 2}} {
		if _, err := c.Interval(); err == nil {
			t.Errorf("Interval(%+v): no error", c)
		}
	}
}

func equalPTS(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOpenFileErrors(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.mp4")
	if err := os.WriteFile(text, []byte("this is not a video\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nope.mp4")
	for _, tc := range []struct{ uri, want string }{
		{missing, "does not exist"},
		{"file://" + missing, "does not exist"},
		{dir, "is a directory"},
		{text, "FFmpeg cannot decode it"},
	} {
		src, err := Open(context.Background(), SourceSpec{URI: tc.uri})
		if err == nil {
			src.Close()
			t.Errorf("Open(%s): no error", tc.uri)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) || strings.ContainsAny(msg, "\n\r") {
			t.Errorf("Open(%s) error %q: want one line containing %q", tc.uri, msg, tc.want)
		}
		path := strings.TrimPrefix(tc.uri, "file://")
		if !strings.Contains(msg, path) {
			t.Errorf("Open(%s) error %q does not name the path", tc.uri, msg)
		}
		if errors.Is(err, ErrTransient) {
			t.Errorf("Open(%s): a file error must be fatal, got transient %v", tc.uri, err)
		}
	}
}

// A file cut short keeps its frames up to the cut and reports the damage
// once; without its index (moov at the end) it does not open, with a clear error.
func TestTruncatedFile(t *testing.T) {
	dir := t.TempDir()
	for _, faststart := range []bool{true, false} {
		orig := clip(t, 10, 30, faststart)
		data, err := os.ReadFile(orig)
		if err != nil {
			t.Fatal(err)
		}
		cut := filepath.Join(dir, "cut.mp4")
		if err := os.WriteFile(cut, data[:len(data)*6/10], 0o644); err != nil {
			t.Fatal(err)
		}
		var logs syncBuffer
		src, err := OpenFile(context.Background(), cut, FileOptions{Logger: zerolog.New(&logs)})
		if !faststart {
			if err == nil || !strings.Contains(err.Error(), cut) || !strings.Contains(err.Error(), "truncated") {
				t.Errorf("index-last truncated file: error %v, want one naming %s and truncation", err, cut)
			}
			continue
		}
		if err != nil {
			t.Fatalf("truncated faststart file: %v", err)
		}
		pts := readAll(t, src)
		src.Close()
		if len(pts) < 100 || len(pts) > 250 {
			t.Fatalf("truncated at 60%%: got %d frames, want between 100 and 250 of 300", len(pts))
		}
		dmg := src.Damages()
		if len(dmg) != 1 || dmg[0].ResumePTS != -1 || dmg[0].AfterFrame != int64(len(pts)-1) {
			t.Fatalf("damages %+v, want one truncated tail after frame %d", dmg, len(pts)-1)
		}
		if n := strings.Count(logs.String(), "damaged video"); n != 1 {
			t.Errorf("damage reported %d times, want once: %s", n, logs.String())
		}
	}
}

// Garbage in the middle: decoding resumes after it; the stretch is
// reported once with its frame position; nothing panics.
func TestGarbageInTheMiddle(t *testing.T) {
	orig := clip(t, 10, 30, false)
	data, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, len(data)/10)
	if _, err := rand.Read(junk); err != nil {
		t.Fatal(err)
	}
	copy(data[len(data)/2:], junk)
	bad := filepath.Join(t.TempDir(), "garbage.mp4")
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	src, err := OpenFile(context.Background(), bad, FileOptions{Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer src.Close()
	pts := readAll(t, src)
	if len(pts) < 150 || len(pts) >= 300 {
		t.Fatalf("got %d frames of 300, want most of them but not all", len(pts))
	}
	if last := pts[len(pts)-1]; last < 9*time.Second {
		t.Errorf("decoding did not reach the end: last pts %s", last)
	}
	for i := 1; i < len(pts); i++ {
		if pts[i] <= pts[i-1] {
			t.Fatalf("pts not increasing at %d: %s then %s", i, pts[i-1], pts[i])
		}
	}
	dmg := src.Damages()
	t.Logf("%d frames; damage %v", len(pts), dmg)
	if len(dmg) == 0 {
		t.Fatalf("no damage reported for %d missing frames", 300-len(pts))
	}
	d := dmg[0]
	if d.AfterFrame < 60 || d.AfterFrame > 240 || d.ResumePTS <= d.AfterPTS || d.LostFrames < 1 {
		t.Errorf("damage %+v: want a stretch in the middle with frames lost", d)
	}
	if n := strings.Count(logs.String(), "damaged video"); n != len(dmg) {
		t.Errorf("%d damage log lines for %d stretches: %s", n, len(dmg), logs.String())
	}
	if !strings.Contains(logs.String(), `"after_frame":`) {
		t.Errorf("damage log lacks the frame position: %s", logs.String())
	}
}

func TestRealtimePacing(t *testing.T) {
	path := clip(t, 2, 30, true)
	src, err := Open(context.Background(), SourceSpec{URI: path, Realtime: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	start := time.Now()
	pts := readAll(t, src)
	took := time.Since(start)
	last := pts[len(pts)-1]
	if took < last-50*time.Millisecond || took > last+1500*time.Millisecond {
		t.Errorf("realtime replay of %s of video took %s", last, took)
	}
}

func TestStartAt(t *testing.T) {
	path := clip(t, 4, 25, true)
	src, err := Open(context.Background(), SourceSpec{URI: path, StartAt: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	pts := readAll(t, src)
	if len(pts) != 50 || pts[0] != 2*time.Second {
		t.Errorf("StartAt 2 s: %d frames from %v, want 50 from 2s", len(pts), pts[:min(1, len(pts))])
	}
}

// Close from another goroutine waits for the read in flight; Next then
// fails cleanly; cancelled contexts stop Next.
func TestFileCloseWhileReading(t *testing.T) {
	path := clip(t, 10, 30, false)
	src, err := Open(context.Background(), SourceSpec{URI: path, Realtime: true})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	errc := make(chan error, 1)
	go func() {
		defer wg.Done()
		for {
			f, err := src.Next(context.Background())
			if err != nil {
				errc <- err
				return
			}
			f.Close()
		}
	}()
	time.Sleep(20 * time.Millisecond)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := <-errc; errors.Is(err, ErrEndOfInput) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Next after Close: %v, want a closed error", err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	src2, err := Open(context.Background(), SourceSpec{URI: path})
	if err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := src2.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with a cancelled context: %v", err)
	}
}

// bframeClip returns a 40 s, 10 fps, 320x180 H.264 MP4 of testsrc with two
// B-frames and a 5 s GOP, made once per run: its decoder holds frames back,
// as the encoders of real recordings do.
func bframeClip(t testing.TB) string {
	t.Helper()
	const name = "testsrc-40s-10fps-bframes.mp4"
	clipMu.Lock()
	defer clipMu.Unlock()
	if p, ok := clipMade[name]; ok {
		return p
	}
	p := filepath.Join(clipDir, name)
	out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=40:size=320x180:rate=10",
		"-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "50", "-pix_fmt", "yuv420p", p).CombinedOutput()
	if err != nil {
		t.Fatalf("making test clip with ffmpeg (Debian package ffmpeg; scripts/deps-apt.sh installs it): %v: %s", err, out)
	}
	clipMade[name] = p
	return p
}

// framesByPTS decodes path and returns every frame's image by PTS (the
// caller closes them) and the damage reported.
func framesByPTS(t *testing.T, path string, log zerolog.Logger) ([]time.Duration, map[time.Duration]gocv.Mat, []Damage) {
	t.Helper()
	src, err := OpenFile(context.Background(), path, FileOptions{Logger: log})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var pts []time.Duration
	imgs := map[time.Duration]gocv.Mat{}
	t.Cleanup(func() {
		for _, m := range imgs {
			m.Close()
		}
	})
	for {
		f, err := src.Next(ctx)
		if errors.Is(err, ErrEndOfInput) {
			return pts, imgs, src.Damages()
		}
		if err != nil {
			t.Fatalf("Next after %d frames: %v", len(pts), err)
		}
		pts = append(pts, f.PTS)
		imgs[f.PTS] = f.Image
	}
}

// Garbage in the middle of a file with B-frames: the decoder first hands
// back frames it held before the damage, then jumps seconds ahead, and
// returns one more held-back frame after the jump. The stretch is reported
// once, at the real jump, with the frames really lost; every frame keeps
// the PTS it has in the intact file (same picture), and no PTS lies past the
// clip's last frame (39.9 s).
func TestGarbageAcrossBFrames(t *testing.T) {
	orig := bframeClip(t)
	data, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	at, n := len(data)*2/5, len(data)/10
	for i := 0; i < n; i++ {
		data[at+i] = byte((i*2654435761)>>13) ^ 0x5a
	}
	bad := filepath.Join(t.TempDir(), "bframes-garbage.mp4")
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, clean, dmg0 := framesByPTS(t, orig, zerolog.Nop())
	if len(clean) != 400 || len(dmg0) != 0 {
		t.Fatalf("intact clip: %d frames, damage %v; want 400 frames and none", len(clean), dmg0)
	}
	var logs syncBuffer
	pts, imgs, dmg := framesByPTS(t, bad, zerolog.New(&logs))
	t.Logf("%d frames; damage %v", len(pts), dmg)
	if len(pts) < 300 || len(pts) >= 400 {
		t.Fatalf("got %d frames of 400, want most of them but not all", len(pts))
	}
	for i, p := range pts {
		if p < 0 || p > 39900*time.Millisecond || p%(100*time.Millisecond) != 0 {
			t.Fatalf("frame %d has pts %s: not a frame of the 40 s, 10 fps clip", i, p)
		}
		if i > 0 && p <= pts[i-1] {
			t.Fatalf("pts not increasing at %d: %s then %s", i, pts[i-1], p)
		}
	}
	if len(dmg) != 1 {
		t.Fatalf("damages %v, want exactly one stretch", dmg)
	}
	d := dmg[0]
	resumeFrame := int64(d.ResumePTS / (100 * time.Millisecond))
	if d.AfterPTS != time.Duration(d.AfterFrame)*100*time.Millisecond || d.ResumePTS-d.AfterPTS < time.Second {
		t.Errorf("damage %+v: want the jump of seconds, from frame %d", d, d.AfterFrame)
	}
	// Every frame of the gap is reported lost, and every frame the replay
	// lacks is in the stretch.
	if gap := resumeFrame - d.AfterFrame - 1; d.LostFrames < gap || d.LostFrames != int64(400-len(pts)) {
		t.Errorf("damage %+v: lost %d, want at least the %d of the gap and the %d frames missing in all",
			d, d.LostFrames, gap, 400-len(pts))
	}
	for _, p := range pts {
		if p > d.AfterPTS && p < d.ResumePTS {
			t.Errorf("frame at %s lies inside the reported gap %s..%s", p, d.AfterPTS, d.ResumePTS)
		}
	}
	if n := strings.Count(logs.String(), "damaged video"); n != 1 || !strings.Contains(logs.String(), `"after_frame":`) {
		t.Errorf("%d damage log lines, want one with after_frame: %s", n, logs.String())
	}
	// A frame keeps its time: from the first keyframe after the resume (the
	// GOP is 5 s; frames before it may be decoded from missing references),
	// each picture matches the intact clip's at the same PTS.
	diff := gocv.NewMat()
	defer diff.Close()
	for _, p := range pts {
		if p < (d.ResumePTS/(5*time.Second)+1)*5*time.Second {
			continue
		}
		gocv.AbsDiff(imgs[p], clean[p], &diff)
		if m := diff.Mean(); m.Val1+m.Val2+m.Val3 > 6 {
			t.Fatalf("frame at %s differs from the intact clip's frame at %s (mean abs diff %.1f): its pts is shifted",
				p, p, m.Val1+m.Val2+m.Val3)
		}
	}
}

// timelineEvent is a failed read (fail) or a decoded frame at msec.
type timelineEvent struct {
	fail bool
	msec float64
}

// runTimeline feeds events to a timeline and returns the placed PTS, the
// number of frames dropped and the damage reported, after each event too.
func runTimeline(tl *timeline, events []timelineEvent) (pts []time.Duration, dropped int, dmg []Damage) {
	for _, e := range events {
		if e.fail {
			tl.fail()
			continue
		}
		p, why := tl.place(e.msec)
		if why != "" {
			dropped++
			continue
		}
		pts = append(pts, p)
		dmg = append(dmg, tl.frame(p)...)
	}
	return pts, dropped, dmg
}

func framesAt(from, to int) []timelineEvent {
	var ev []timelineEvent
	for i := from; i <= to; i++ {
		ev = append(ev, timelineEvent{msec: float64(i * 100)})
	}
	return ev
}

func failedReads(n int) []timelineEvent {
	ev := make([]timelineEvent, n)
	for i := range ev {
		ev[i].fail = true
	}
	return ev
}

// The reads OpenCV gave for the e2e clip (10 fps, 400 frames, 2 B-frames)
// with garbage at 40 %: frames to 14.1 s, 42 failed reads, two frames the
// decoder still held (14.2, 14.3 s), the jump to 18.5 s, 18.7 s missing, and
// at the end two flushed frames without a container PTS.
func TestTimelineStaleResumeThenJump(t *testing.T) {
	var ev []timelineEvent
	ev = append(ev, framesAt(0, 141)...)
	ev = append(ev, failedReads(42)...)
	ev = append(ev, framesAt(142, 143)...)
	ev = append(ev, framesAt(185, 186)...)
	ev = append(ev, framesAt(188, 190)...)
	tl := newTimeline(10, 400)
	_, _, dmg := runTimeline(&tl, ev)
	if len(dmg) != 0 {
		t.Fatalf("damage %v reported 3 frames after the jump; want it held until the stretch settles", dmg)
	}
	ev = append(framesAt(191, 397), timelineEvent{msec: 0}, timelineEvent{msec: 0}, timelineEvent{msec: 0})
	pts2, dropped, dmg := runTimeline(&tl, ev)
	want := Damage{AfterFrame: 143, AfterPTS: 14300 * time.Millisecond, ResumePTS: 18500 * time.Millisecond, LostFrames: 42}
	if len(dmg) != 1 || dmg[0] != want {
		t.Fatalf("damage %v, want exactly %v", dmg, want)
	}
	if last := pts2[len(pts2)-1]; last != 39900*time.Millisecond || dropped != 1 {
		t.Errorf("flushed frames: last pts %s, %d dropped; want 39.9s (the clip's last frame) and the third dropped", last, dropped)
	}
	if tail := tl.end(); len(tail) != 0 {
		t.Errorf("end reported %v, want nothing more", tail)
	}
}

// Frames the decoder held back across damage come after later frames: they
// are dropped, not moved, so later frames keep their own PTS.
func TestTimelineHeldBackFramesAreDropped(t *testing.T) {
	ev := framesAt(0, 153)
	ev = append(ev, failedReads(2)...)
	ev = append(ev, framesAt(203, 203)...)
	ev = append(ev, framesAt(154, 154)...)
	ev = append(ev, framesAt(204, 205)...)
	ev = append(ev, framesAt(156, 156)...)
	ev = append(ev, framesAt(206, 399)...)
	tl := newTimeline(10, 400)
	pts, dropped, dmg := runTimeline(&tl, ev)
	dmg = append(dmg, tl.end()...)
	if dropped != 2 {
		t.Errorf("%d frames dropped, want the 2 held back", dropped)
	}
	for i, p := range pts {
		want := time.Duration(i) * 100 * time.Millisecond
		if i > 153 {
			want = time.Duration(i+49) * 100 * time.Millisecond
		}
		if p != want {
			t.Fatalf("frame %d: pts %s, want %s", i, p, want)
		}
	}
	if len(dmg) != 1 || dmg[0].AfterFrame != 153 || dmg[0].ResumePTS != 20300*time.Millisecond || dmg[0].LostFrames != 49 {
		t.Errorf("damage %v, want one after frame 153 resumed at 20.3s with 49 lost", dmg)
	}
}

// Without a frame rate no jump can be seen: a stretch of failed reads is
// reported at the first good frame, one frame lost per failed read. A PTS
// jump without failed reads is damage too when the rate is known.
func TestTimelineNoRateAndPlainJump(t *testing.T) {
	tl := newTimeline(0, 0)
	ev := append(framesAt(0, 9), failedReads(3)...)
	ev = append(ev, framesAt(13, 15)...)
	_, _, dmg := runTimeline(&tl, ev)
	if len(dmg) != 1 || dmg[0].AfterFrame != 9 || dmg[0].LostFrames != 3 || dmg[0].ResumePTS != 1300*time.Millisecond {
		t.Errorf("no rate: damage %v, want one after frame 9 with 3 lost, resumed at 1.3s", dmg)
	}
	tl = newTimeline(25, 0)
	ev = nil
	for i := 0; i < 100; i++ {
		if i < 40 || i >= 46 {
			ev = append(ev, timelineEvent{msec: float64(i * 40)})
		}
	}
	_, _, dmg = runTimeline(&tl, ev)
	dmg = append(dmg, tl.end()...)
	if len(dmg) != 1 || dmg[0].AfterFrame != 39 || dmg[0].LostFrames != 6 || dmg[0].ResumePTS != 1840*time.Millisecond {
		t.Errorf("jump at 25 fps: damage %v, want one after frame 39 with 6 lost, resumed at 1.84s", dmg)
	}
}

// Whatever the container reports, placed PTS strictly increase, never lie
// past the stream's last frame (plus the slack for a container's own PTS),
// and nothing panics.
func FuzzTimeline(f *testing.F) {
	f.Add(10.0, int64(400), []byte{0, 1, 2, 255, 255, 5, 200, 0, 0})
	f.Add(0.0, int64(0), []byte{3, 255, 1, 1, 0})
	f.Add(29.97, int64(30), []byte{100, 90, 80, 255, 70, 250, 0})
	f.Fuzz(func(t *testing.T, fps float64, count int64, seq []byte) {
		if !(fps > 0 && fps < 1000) {
			fps = 0
		}
		if count < 0 || count > 1e6 {
			count = 0
		}
		tl := newTimeline(fps, count)
		var ev []timelineEvent
		for _, b := range seq {
			if b == 255 {
				ev = append(ev, timelineEvent{fail: true})
			} else {
				ev = append(ev, timelineEvent{msec: float64(b) * 37.5})
			}
		}
		pts, _, _ := runTimeline(&tl, ev)
		_ = tl.end()
		end := tl.lastFrame()
		for i, p := range pts {
			if i > 0 && p <= pts[i-1] {
				t.Fatalf("pts %v not increasing at %d", pts, i)
			}
			if end >= 0 && p > end+streamSlack {
				t.Fatalf("pts %s past the stream's last frame %s", p, end)
			}
		}
	})
}
