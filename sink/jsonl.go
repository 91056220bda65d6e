package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
)

// JSONLSink writes one JSON object per line to a file (appending) or to
// stdout. Write returns once the lines are written and, for a file,
// fsync'd. Safe for concurrent use; lines of one Write are contiguous.
type JSONLSink struct {
	mu     sync.Mutex
	w      io.Writer
	f      *os.File // nil for stdout or a caller's writer
	name   string
	closed bool
}

var _ Sink = (*JSONLSink)(nil)

// NewJSONLSink opens path for appending ("-" means stdout), creating it
// with mode 0644 when missing.
func NewJSONLSink(path string) (*JSONLSink, error) {
	if path == "" {
		return nil, fmt.Errorf("jsonl sink: path is empty: give a file path or - for stdout")
	}
	if path == "-" {
		return &JSONLSink{w: os.Stdout, name: "stdout"}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the message already
		}
		return nil, fmt.Errorf("jsonl sink: cannot open %s for writing: %w; check that its folder exists and is writable", path, err)
	}
	return &JSONLSink{w: f, f: f, name: path}, nil
}

// NewJSONLWriter writes lines to w (no fsync; Close does not close w).
func NewJSONLWriter(w io.Writer) *JSONLSink { return &JSONLSink{w: w, name: "writer"} }

// Name is the sink's label in metrics and logs: "jsonl" whatever the
// file, so that labels stay stable when the path changes.
func (s *JSONLSink) Name() string { return "jsonl" }

// Write appends one line per record.
func (s *JSONLSink) Write(_ context.Context, recs []Record) error {
	var buf []byte
	for _, r := range recs {
		b, err := Encode(r)
		if err != nil {
			return fmt.Errorf("jsonl sink: %w", err)
		}
		buf = append(append(buf, b...), '\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, err := s.w.Write(buf); err != nil {
		return fmt.Errorf("jsonl sink: write %s: %w", s.name, err)
	}
	if s.f != nil {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("jsonl sink: fsync %s: %w", s.name, err)
		}
	}
	return nil
}

// Flush is a no-op: Write is synchronous.
func (s *JSONLSink) Flush(context.Context) error { return nil }

// Close closes the file (not stdout). Writes after Close fail with ErrClosed.
func (s *JSONLSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.f != nil {
		if err := s.f.Close(); err != nil {
			return fmt.Errorf("jsonl sink: close %s: %w", s.name, err)
		}
	}
	return nil
}
