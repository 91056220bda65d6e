package ingest

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
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
