package service

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"lookout/inference"
	"lookout/sink"
)

func TestDomainWatchWarnsOncePerSource(t *testing.T) {
	var buf bytes.Buffer
	w := &domainWatch{prof: inference.DomainProfile{TrainedOn: "synthetic scenes", Threshold: 1},
		model: "demo", srcs: map[string]*domainRing{}, log: zerolog.New(&buf)}
	feed := func(src string, in bool, n int) {
		for range n {
			v := in
			w.observe(sink.Record{Kind: sink.KindCaption, SourceID: src, InDomain: &v})
		}
	}
	warnings := func(src string) int {
		return strings.Count(buf.String(), `"source":"`+src+`"`)
	}
	// 19 out of domain in 30: below the trip point.
	feed("a", true, 11)
	feed("a", false, 19)
	if n := warnings("a"); n != 0 {
		t.Fatalf("19 of 30 out of domain: %d warnings, want 0:\n%s", n, buf.String())
	}
	// Records without the flag (gaps, models without a profile) are ignored.
	w.observe(sink.Record{Kind: sink.KindGap, SourceID: "a"})
	w.observe(sink.Record{Kind: sink.KindCaption, SourceID: "a"})
	feed("a", false, 1) // 20 of the last 30
	if n := warnings("a"); n != 1 {
		t.Fatalf("20 of 30 out of domain: %d warnings, want 1:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), `"trained_on":"synthetic scenes"`) || !strings.Contains(buf.String(), `"level":"warn"`) {
		t.Fatalf("warning does not name what the model was trained on: %s", buf.String())
	}
	feed("a", false, 100)
	feed("a", true, 30)
	feed("a", false, 30)
	if n := warnings("a"); n != 1 {
		t.Fatalf("after more out-of-domain frames: %d warnings for a, want still 1", n)
	}
	// The window slides: 20 out-of-domain frames spread so that no 30 in a
	// row hold 20 never trip.
	for range 20 {
		feed("b", false, 1)
		feed("b", true, 1)
	}
	if n := warnings("b"); n != 0 {
		t.Fatalf("half out of domain: %d warnings for b, want 0", n)
	}
	feed("b", false, 20)
	if n := warnings("b"); n != 1 {
		t.Fatalf("b mostly out of domain: %d warnings, want 1", n)
	}
}
