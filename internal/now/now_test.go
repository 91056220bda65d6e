package now

import (
	"image"
	"image/color"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"lookout/pipeline"
	"lookout/sink"
)

func frame(t *testing.T) gocv.Mat {
	t.Helper()
	m := gocv.NewMatWithSize(360, 640, gocv.MatTypeCV8UC3)
	gocv.Rectangle(&m, image.Rect(100, 100, 300, 200), color.RGBA{R: 255, A: 255}, -1)
	t.Cleanup(func() { m.Close() })
	return m
}

func TestViewLatestRecordThumbnailAndForget(t *testing.T) {
	states := []pipeline.SourceState{{ID: "a", State: "running", Live: true}, {ID: "b", State: "reconnecting", LastError: "refused"}}
	v := New("host1", func() []pipeline.SourceState { return states })
	img := frame(t)
	rec := func(id string, pts int64, caption string) sink.Record {
		return sink.Record{SourceID: id, PTSMillis: pts, Caption: caption, CaptureTime: time.Now().Add(-50 * time.Millisecond)}
	}

	// Nobody watches: the first caption gets a thumbnail, the next ones
	// within IdleThumbEvery do not.
	v.Captioned(rec("a", 0, "first"), img)
	v.Delivered("a", 0)
	_, first, ok := v.Thumb("a")
	if !ok {
		t.Fatal("no thumbnail for a source's first caption")
	}
	v.Captioned(rec("a", 500, "unwatched"), img)
	v.Delivered("a", 500)
	if _, seq, _ := v.Thumb("a"); seq != first {
		t.Fatal("a second thumbnail was made within IdleThumbEvery while nobody watched")
	}
	stop := v.Watch()
	v.Captioned(rec("a", 1000, "second"), img)
	v.Captioned(rec("a", 2000, "third"), img)
	if got := v.Sources()[0].Record.Caption; got != "unwatched" {
		t.Fatalf("before delivery the latest is %q, want the last delivered", got)
	}
	v.Delivered("a", 1000)
	v.Gated("a")
	src := v.Sources()
	if len(src) != 2 || src[0].ID != "a" || src[1].ID != "b" {
		t.Fatalf("sources %+v", src)
	}
	a := src[0]
	if a.Record.Caption != "second" || a.Delivered != 3 || a.Gated != 1 || a.Instance != "host1" || a.LatencyMillis < 50 || a.Thumb == 0 {
		t.Errorf("a: %+v", a)
	}
	if src[1].State != "reconnecting" || src[1].LastError != "refused" || src[1].Record != nil {
		t.Errorf("b: %+v", src[1])
	}
	jpeg, seq, ok := v.Thumb("a")
	if !ok || seq != a.Thumb || seq == first || len(jpeg) < 100 || jpeg[0] != 0xff || jpeg[1] != 0xd8 {
		t.Fatalf("thumbnail: ok=%v seq=%d, %d bytes", ok, seq, len(jpeg))
	}
	dec, err := gocv.IMDecode(jpeg, gocv.IMReadColor)
	if err != nil || dec.Cols() != ThumbWidth || dec.Rows() != 180 {
		t.Errorf("thumbnail decodes to %dx%d (%v), want %dx180", dec.Cols(), dec.Rows(), err, ThumbWidth)
	}
	dec.Close()
	stop()
	stop()
	if v.Watchers() != 0 {
		t.Errorf("watchers %d after stop", v.Watchers())
	}

	// A removed source is forgotten.
	states = states[1:]
	if src := v.Sources(); len(src) != 1 || src[0].ID != "b" {
		t.Fatalf("after removing a: %+v", src)
	}
	if _, _, ok := v.Thumb("a"); ok {
		t.Error("a removed source's thumbnail is still served")
	}
}

func TestViewChangedWakesWatchers(t *testing.T) {
	v := New("h", nil)
	ch, ver := v.Changed()
	v.Delivered("a", 0)
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("Changed not closed by a delivery")
	}
	if _, ver2 := v.Changed(); ver2 == ver {
		t.Error("version did not move")
	}
}

func TestRate(t *testing.T) {
	now := time.Now()
	var ts []time.Time
	for i := 9; i >= 0; i-- {
		ts = append(ts, now.Add(-time.Duration(i)*500*time.Millisecond))
	}
	if r := rate(ts, now); r < 1.99 || r > 2.01 {
		t.Errorf("10 deliveries 500 ms apart: %.3f/s, want 2", r)
	}
	if r := rate([]time.Time{now.Add(-time.Minute)}, now); r != 0 {
		t.Errorf("an old delivery: %.3f/s, want 0", r)
	}
}

// BenchmarkThumbnail is the cost of one thumbnail of a 720p frame (resize
// to 320 px wide and JPEG encode), what an open status page adds per caption.
func BenchmarkThumbnail(b *testing.B) {
	img := gocv.NewMatWithSize(720, 1280, gocv.MatTypeCV8UC3)
	defer img.Close()
	gocv.Rectangle(&img, image.Rect(100, 100, 900, 500), color.RGBA{R: 200, G: 90, A: 255}, -1)
	gocv.Circle(&img, image.Pt(640, 360), 120, color.RGBA{B: 255, A: 255}, -1)
	for b.Loop() {
		if Thumbnail(img) == nil {
			b.Fatal("no thumbnail")
		}
	}
}
