// Package report writes the replay report of `lookout caption --report`: one
// self-contained HTML file (styles inline, thumbnails as data URIs, no
// script, nothing fetched) with a timeline per source of thumbnails,
// captions, attributes and gap records, and, given the truth of a synthetic
// clip, the captions that differ from it marked as scenes score counts them.
package report

import (
	"context"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"sort"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"lookout/internal/now"
	"lookout/sink"
	"lookout/synth/corpus"
)

//go:embed report.html.tmpl
var pageTemplate string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"clock": clock,
	"pct":   func(p float64) string { return fmt.Sprintf("%.0f%%", p*100) },
}).Parse(pageTemplate))

type key struct {
	source, run string
	pts         int64
}

// Collector gathers a replay's records (as a sink) and the thumbnails of
// their frames (as the pipeline's OnCaptioned hook). Safe for concurrent use.
type Collector struct {
	mu     sync.Mutex
	recs   []sink.Record
	thumbs map[key][]byte
}

var _ sink.Sink = (*Collector)(nil)

// NewCollector returns an empty Collector.
func NewCollector() *Collector { return &Collector{thumbs: map[key][]byte{}} }

// Captioned keeps a thumbnail of the frame of rec (one JPEG per caption).
func (c *Collector) Captioned(rec sink.Record, img gocv.Mat) {
	b := now.Thumbnail(img)
	if b == nil {
		return
	}
	c.mu.Lock()
	c.thumbs[key{rec.SourceID, rec.Run, rec.PTSMillis}] = b
	c.mu.Unlock()
}

// Write keeps the records; it never fails.
func (c *Collector) Write(_ context.Context, recs []sink.Record) error {
	c.mu.Lock()
	c.recs = append(c.recs, recs...)
	c.mu.Unlock()
	return nil
}

// Flush does nothing: records are in memory.
func (c *Collector) Flush(context.Context) error { return nil }

// Close does nothing; WriteHTML still works after it.
func (c *Collector) Close() error { return nil }

// Options describe the report.
type Options struct {
	// Inputs are the replayed files or URIs, for the title.
	Inputs []string
	// Truth, when set, is the clip's truth (scenes video): caption records
	// that differ from it are marked. Only with one source.
	Truth []corpus.TruthLine
	// Generated is the time printed in the footer. Default: now.
	Generated time.Time
}

// Entry is one row of a timeline.
type Entry struct {
	Rec      sink.Record
	Thumb    template.URL
	Attrs    []Attr
	Truth    string
	Scored   bool
	Mismatch bool
}

// Attr is an attribute for display.
type Attr struct {
	Name, Value string
	Prob        float64
}

// Timeline is one source's rows in pts order.
type Timeline struct {
	Source                       string
	Entries                      []Entry
	Captions, Gaps, Thumbs       int
	Scored, Mismatches, Unscored int
}

type data struct {
	Options
	Timelines []Timeline
	Model     string
	HasTruth  bool
	Total     int
}

// Summary counts what a written report holds.
type Summary struct {
	Captions, Thumbnails, Gaps, Scored, Mismatches int
}

// WriteHTML writes the report of everything collected so far.
func (c *Collector) WriteHTML(w io.Writer, opt Options) (Summary, error) {
	if opt.Generated.IsZero() {
		opt.Generated = time.Now()
	}
	c.mu.Lock()
	recs := append([]sink.Record(nil), c.recs...)
	thumbs := c.thumbs
	d := data{Options: opt, HasTruth: len(opt.Truth) > 0}
	bySource := map[string][]sink.Record{}
	for _, r := range recs {
		bySource[r.SourceID] = append(bySource[r.SourceID], r)
		if d.Model == "" {
			d.Model = r.Model
		}
	}
	if d.HasTruth && len(bySource) > 1 {
		c.mu.Unlock()
		return Summary{}, fmt.Errorf("report: --truth scores one input, got %d", len(bySource))
	}
	var sum Summary
	ids := make([]string, 0, len(bySource))
	for id := range bySource {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		tl := timeline(id, bySource[id], thumbs, opt.Truth)
		d.Timelines = append(d.Timelines, tl)
		sum.Captions += tl.Captions
		sum.Thumbnails += tl.Thumbs
		sum.Gaps += tl.Gaps
		sum.Scored += tl.Scored
		sum.Mismatches += tl.Mismatches
		d.Total += len(tl.Entries)
	}
	c.mu.Unlock()
	return sum, page.Execute(w, d)
}

// timeline orders one source's records by pts (records of one frame keep
// their order: a gap before the caption after it) and marks mismatches.
func timeline(id string, recs []sink.Record, thumbs map[key][]byte, truth []corpus.TruthLine) Timeline {
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].PTSMillis < recs[j].PTSMillis })
	tl := Timeline{Source: id}
	var caps []corpus.CaptionLine
	var capIdx []int
	for _, r := range recs {
		e := Entry{Rec: r}
		for name, a := range r.Attributes {
			e.Attrs = append(e.Attrs, Attr{Name: name, Value: a.Value, Prob: a.Prob})
		}
		sort.Slice(e.Attrs, func(i, j int) bool { return e.Attrs[i].Name < e.Attrs[j].Name })
		switch r.Kind {
		case sink.KindGap:
			tl.Gaps++
		case sink.KindCaption:
			tl.Captions++
			caps = append(caps, corpus.CaptionLine{PTSMs: r.PTSMillis, Caption: r.Caption})
			capIdx = append(capIdx, len(tl.Entries))
		}
		if b, ok := thumbs[key{r.SourceID, r.Run, r.PTSMillis}]; ok && r.Kind != sink.KindGap {
			e.Thumb = template.URL("data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(b))
			tl.Thumbs++
		}
		tl.Entries = append(tl.Entries, e)
	}
	if len(truth) > 0 {
		for ci, ti := range corpus.MatchTruth(truth, caps) {
			e := &tl.Entries[capIdx[ci]]
			if ti < 0 {
				tl.Unscored++
				continue
			}
			e.Scored, e.Truth = true, truth[ti].Caption
			e.Mismatch = corpus.Mismatch(e.Rec.Caption, e.Truth)
			tl.Scored++
			if e.Mismatch {
				tl.Mismatches++
			}
		}
	}
	return tl
}

// clock formats a pts as m:ss.s (h:mm:ss.s past an hour).
func clock(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	h, m := int(d.Hours()), int(d.Minutes())%60
	s := float64(d%time.Minute) / float64(time.Second)
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%04.1f", h, m, s)
	}
	return fmt.Sprintf("%d:%04.1f", m, s)
}
