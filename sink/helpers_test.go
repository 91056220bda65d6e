package sink

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// testRecord builds a valid caption record of source src at second i.
func testRecord(src string, i int) Record {
	pts := int64(i) * 1000
	return Record{
		SchemaVersion: SchemaVersion,
		ID:            RecordID(src, "", pts, "sha256:test", KindCaption),
		Kind:          KindCaption,
		SourceID:      src,
		Labels:        map[string]string{"site": "test"},
		Seq:           int64(i) * 30,
		PTSMillis:     pts,
		CaptureTime:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Caption:       fmt.Sprintf("frame %d of %s", i, src),
		Confidence:    0.5,
		Attributes:    map[string]Attr{"weather": {Value: "clear", Prob: 0.9}},
		Model:         "demo",
		ModelDigest:   "sha256:test",
		LatencyMillis: Latency{Queue: 1, Preprocess: 2, Encode: 3, Decode: 4, Total: 10},
	}
}

// metricsFuncs passes counts to its functions; nil ones are skipped.
type metricsFuncs struct{ delivered, failed func(src string, n int) }

func (m metricsFuncs) Delivered(src string, n int) {
	if m.delivered != nil {
		m.delivered(src, n)
	}
}

func (m metricsFuncs) Failed(src string, n int) {
	if m.failed != nil {
		m.failed(src, n)
	}
}

func testRecords(src string, from, n int) []Record {
	out := make([]Record, n)
	for i := range out {
		out[i] = testRecord(src, from+i)
	}
	return out
}

func TestConfidenceFromMeanLogProb(t *testing.T) {
	cases := []struct{ in, want float64 }{{0, 1}, {0.5, 1}, {math.Log(0.25), 0.25}, {math.Inf(-1), 0}, {math.NaN(), 0}}
	for _, c := range cases {
		if got := ConfidenceFromMeanLogProb(c.in); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("ConfidenceFromMeanLogProb(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
