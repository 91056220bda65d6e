package rules

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"lookout/sink"
)

// ReplayStats counts what Replay read.
type ReplayStats struct {
	Captions, Alerts int
	Sources          map[string]bool
}

// Replay feeds a captions JSONL file (a sink.jsonl file or `lookout
// caption --out`) through e in file order and calls alert for each alert,
// as the service would have fired it: same records, same ids. The file
// should hold every caption record (emit: every), since a rule measures how
// long its match held on every sampled frame. Alert, heartbeat and blank
// lines are skipped. A line that is not a record is an error naming it:
// "captions.jsonl:12: not a lookout record: ...".
func Replay(r io.Reader, name string, e *Engine, alert func(sink.Record)) (ReplayStats, error) {
	st := ReplayStats{Sources: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var rec sink.Record
		if err := json.Unmarshal(b, &rec); err != nil {
			return st, fmt.Errorf("%s:%d: not a lookout record: %v", name, line, err)
		}
		if rec.Kind == "" || rec.SourceID == "" || rec.ID == "" {
			return st, fmt.Errorf("%s:%d: not a lookout record: kind, source_id and id are required", name, line)
		}
		if rec.Kind == sink.KindCaption {
			st.Captions++
			st.Sources[rec.SourceID] = true
		}
		for _, a := range e.Observe(rec) {
			st.Alerts++
			alert(a)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return st, fmt.Errorf("%s: a line longer than 16 MiB: not a captions file", name)
		}
		return st, fmt.Errorf("%s: %w", name, err)
	}
	return st, nil
}
