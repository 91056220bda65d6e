package sink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestJSONLSinkAppendsOneObjectPerLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	s, err := NewJSONLSink(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Write(ctx, testRecords("cam1", 0, 3)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, testRecords("cam2", 0, 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, testRecords("cam1", 9, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: got %v, want ErrClosed", err)
	}
	// Reopening appends rather than truncating.
	s2, err := NewJSONLSink(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Write(ctx, testRecords("cam3", 5, 1)); err != nil {
		t.Fatal(err)
	}
	_ = s2.Close()

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d is not a record: %v", len(got)+1, err)
		}
		got = append(got, r)
	}
	want := append(append(testRecords("cam1", 0, 3), testRecords("cam2", 0, 2)...), testRecords("cam3", 5, 1)...)
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Caption != want[i].Caption || !got[i].CaptureTime.Equal(want[i].CaptureTime) {
			t.Errorf("line %d: got %+v, want %+v", i+1, got[i], want[i])
		}
	}
}

func TestJSONLWriterAndBadPath(t *testing.T) {
	var buf bytes.Buffer
	s := NewJSONLWriter(&buf)
	if err := s.Write(context.Background(), testRecords("a", 0, 2)); err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(buf.Bytes(), []byte("\n")); n != 2 {
		t.Fatalf("got %d lines, want 2", n)
	}
	if _, err := NewJSONLSink(""); err == nil {
		t.Fatal("empty path accepted")
	}
	if _, err := NewJSONLSink(filepath.Join(t.TempDir(), "missing", "dir", "x.jsonl")); err == nil {
		t.Fatal("path in a missing folder accepted")
	}
}
