package cluster

import "testing"

// FuzzParseSourceValue: whoever can write the catalogue topic chooses these
// bytes; a bad record is an error (logged, counted, skipped), never a panic,
// and an accepted one always carries the record's key as its id.
func FuzzParseSourceValue(f *testing.F) {
	f.Add("cam1", []byte(`{"id":"cam1","uri":"synth://driving?seed=1"}`))
	f.Add("cam1", []byte(`{"id":"cam2","uri":"synth://driving"}`))
	f.Add("cam1", []byte(`{"id":"cam1","uri":"rtsp://u:p@h/x","every":"1s","decode":"auto","gate":{"threshold":3}}`))
	f.Add("x", []byte(`{`))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		src, err := ParseSourceValue(key, value)
		if err == nil && src.ID != key {
			t.Fatalf("accepted id %q for key %q", src.ID, key)
		}
	})
}
