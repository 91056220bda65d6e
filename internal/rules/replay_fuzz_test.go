package rules

import (
	"bytes"
	"testing"
	"time"

	"lookout/internal/config"
	"lookout/sink"
)

// FuzzReplay: `lookout rules test --captions` reads any file a person names;
// a line that is not a record is an error naming it, never a panic, and every
// alert it prints is an alert of the configured rule.
func FuzzReplay(f *testing.F) {
	f.Add([]byte(`{"kind":"caption","id":"a","source_id":"cam1","pts_ms":0,"caption":"a pedestrian"}` + "\n" +
		`{"kind":"caption","id":"b","source_id":"cam1","pts_ms":3000,"caption":"a pedestrian"}` + "\n"))
	f.Add([]byte("\n  \n{\"kind\":\"alert\"}\n"))
	f.Add([]byte("not json\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := New([]config.Rule{{Name: "walker", Sources: []string{"cam1"}, Keywords: []string{"pedestrian"}, For: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = Replay(bytes.NewReader(data), "fuzz.jsonl", e, func(a sink.Record) {
			if a.Kind != sink.KindAlert || a.Rule != "walker" {
				t.Fatalf("alert %+v is not of rule walker", a)
			}
		})
	})
}
