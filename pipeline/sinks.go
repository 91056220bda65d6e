package pipeline

import (
	"fmt"
	"sync"

	"lookout/sink"
)

// sinkSlot is one sink with its health: the deliverer writes through it,
// Ready reads it.
type sinkSlot struct {
	name string
	s    sink.Sink // metered
	raw  sink.Sink // as given to New
	mu   sync.Mutex
	err  error // last write error, nil once a write succeeded
}

func (s *sinkSlot) setErr(err error) (wasDown bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wasDown = s.err != nil
	s.err = err
	return wasDown
}

func (s *sinkSlot) down() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// ready reports the sink's last write failure, or, for a Readier, its own
// health.
func (s *sinkSlot) ready() error {
	if err := s.down(); err != nil {
		return fmt.Errorf("pipeline: sink %s is down: %w", s.name, err)
	}
	if r, ok := s.raw.(Readier); ok {
		if err := r.Ready(); err != nil {
			return fmt.Errorf("pipeline: sink %s is not ready: %w", s.name, err)
		}
	}
	return nil
}

// Namer is implemented by sinks that name themselves in metric labels and
// logs (every sink of package sink does: kafka, jsonl). Other sinks are
// named sink0, sink1, ... by their position in New's slice. A name already
// taken gets a number: jsonl, jsonl2.
type Namer interface {
	Name() string
}

// KindFilter is implemented by sinks that take only some kinds of record
// (alerts to a topic of their own): the pipeline writes them only those, so
// their metrics count what they hold, and does not call Write when a
// delivery holds none.
type KindFilter interface {
	Accepts(kind string) bool
}

// own returns the records of recs the sink takes: those of the kinds it
// accepts when it is a KindFilter, else all of them (a copy when asked).
func (s *sinkSlot) own(recs []sink.Record, copied bool) []sink.Record {
	f, ok := s.raw.(KindFilter)
	if !ok {
		if copied {
			return append([]sink.Record(nil), recs...)
		}
		return recs
	}
	var out []sink.Record
	for _, r := range recs {
		if f.Accepts(r.Kind) {
			out = append(out, r)
		}
	}
	return out
}

// Readier is implemented by sinks that know their own health (a broker that
// is down). Ready reports their errors.
type Readier interface {
	Ready() error
}

// newSinkSlots names and meters sinks (see Namer).
func newSinkSlots(sinks []sink.Sink, m Metrics) []*sinkSlot {
	var slots []*sinkSlot
	used := map[string]bool{}
	for i, s := range sinks {
		name := fmt.Sprintf("sink%d", i)
		if n, ok := s.(Namer); ok && n.Name() != "" {
			name = n.Name()
		}
		// Two sinks of one kind (two JSONL files) must not share a label.
		for base, k := name, 2; used[name]; k++ {
			name = fmt.Sprintf("%s%d", base, k)
		}
		used[name] = true
		slots = append(slots, &sinkSlot{name: name, s: newMeteredSink(s, name, m), raw: s})
	}
	return slots
}
