package report

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"lookout/sink"
	"lookout/synth/corpus"
)

func TestReportTimelineTruthAndGaps(t *testing.T) {
	c := NewCollector()
	img := gocv.NewMatWithSize(90, 160, gocv.MatTypeCV8UC3)
	defer img.Close()
	gocv.Circle(&img, image.Pt(80, 45), 20, color.RGBA{G: 255, A: 255}, -1)
	recs := []sink.Record{
		{Kind: sink.KindCaption, SourceID: "cam", PTSMillis: 2000, Caption: "a <b> car", Model: "demo",
			Attributes: map[string]sink.Attr{"weather": {Value: "rain", Prob: 0.9}}},
		{Kind: sink.KindCaption, SourceID: "cam", PTSMillis: 0, Caption: "a car", Model: "demo",
			Objects: []sink.Object{{Label: "car", Box: [4]int{1, 2, 30, 40}}}, OCR: "STOP"},
		{Kind: sink.KindGap, SourceID: "cam", PTSMillis: 1000, GapMillis: 900},
		{Kind: sink.KindCaption, SourceID: "cam", PTSMillis: 1000, Caption: "a car", Model: "demo"},
	}
	for _, r := range recs {
		if r.Kind == sink.KindCaption {
			c.Captioned(r, img)
		}
	}
	if err := c.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	truth := []corpus.TruthLine{{PTSMs: 0, Caption: "a car"}, {PTSMs: 1000, Caption: "a car"}, {PTSMs: 2000, Caption: "a bus"}}
	var buf bytes.Buffer
	sum, err := c.WriteHTML(&buf, Options{Inputs: []string{"clip.mp4"}, Truth: truth, Generated: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if sum != (Summary{Captions: 3, Thumbnails: 3, Gaps: 1, Scored: 3, Mismatches: 1}) {
		t.Errorf("summary %+v", sum)
	}
	caps := make([]corpus.CaptionLine, 0, 3)
	for _, r := range recs {
		if r.Kind == sink.KindCaption {
			caps = append(caps, corpus.CaptionLine{PTSMs: r.PTSMillis, Caption: r.Caption})
		}
	}
	if s := corpus.Score(truth, caps); s.Mismatched != sum.Mismatches {
		t.Errorf("report marks %d, Score counts %d", sum.Mismatches, s.Mismatched)
	}
	html := buf.String()
	for _, want := range []string{"a &lt;b&gt; car", "truth: a bus", "gap: no frames for 900 ms", "weather: rain (90%)",
		`class="entry caption mismatch" data-pts="2000"`, "data:image/jpeg;base64,", "0:02.0", "car [1, 2, 30, 40]", "text: STOP"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Count(html, "<img ") != 3 || strings.Contains(html, "<script") || strings.Contains(html, "http://") {
		t.Errorf("report: %d images, script or remote link present", strings.Count(html, "<img "))
	}
	// The gap comes before the caption of the same frame, pts in order.
	if g, c1 := strings.Index(html, `entry gap`), strings.Index(html, `data-pts="1000"`); g < 0 || g > c1+40 || strings.Index(html, `data-pts="0"`) > g {
		t.Errorf("timeline order: gap at %d, pts 1000 at %d", g, c1)
	}

	c.Write(context.Background(), []sink.Record{{Kind: sink.KindCaption, SourceID: "other", Caption: "x"}})
	if _, err := c.WriteHTML(&bytes.Buffer{}, Options{Truth: truth}); err == nil {
		t.Error("truth with two sources: no error")
	}
}
