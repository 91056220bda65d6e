package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"lookout/internal/config"
)

// Catalogue is the fleet's source list: a compacted topic keyed by source
// id whose values are sources as JSON, with the fields of a config's
// sources[] entry; a tombstone removes one. A record that is not a valid
// source is logged once with its key and offset, counted, and skipped: the
// previous definition of that key, if any, stays.
type Catalogue struct {
	t   *Table
	log zerolog.Logger

	mu      sync.Mutex
	sources map[string]config.Source
	bad     int64
	changed chan struct{}
	// onBad, when set, sees every skipped record (metrics).
	onBad func()
}

// CatalogueConfig configures OpenCatalogue.
type CatalogueConfig struct {
	Topic string
	// OnBad is called once per skipped record (a metric). Optional.
	OnBad  func()
	Logger zerolog.Logger
}

// OpenCatalogue creates the topic compacted when missing and starts
// following it. Call WaitSynced before trusting Sources.
func OpenCatalogue(ctx context.Context, opts []kgo.Opt, cfg CatalogueConfig) (*Catalogue, error) {
	c := &Catalogue{log: cfg.Logger.With().Str("component", "catalogue").Logger(), sources: map[string]config.Source{},
		changed: make(chan struct{}, 1), onBad: cfg.OnBad}
	t, err := OpenTable(ctx, opts, TableConfig{Topic: cfg.Topic, OnEntry: c.apply, Logger: c.log})
	if err != nil {
		return nil, err
	}
	c.t = t
	return c, nil
}

// ParseSourceValue decodes and validates one catalogue value for key.
func ParseSourceValue(key string, value []byte) (config.Source, error) {
	src, err := config.ParseSource(value)
	if err != nil {
		return config.Source{}, err
	}
	if src.ID != key {
		return config.Source{}, fmt.Errorf("source: id %q differs from the record key %q", src.ID, key)
	}
	return src, nil
}

func (c *Catalogue) apply(e Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Value == nil {
		if _, ok := c.sources[e.Key]; ok {
			delete(c.sources, e.Key)
			c.notify()
		}
		return
	}
	src, err := ParseSourceValue(e.Key, e.Value)
	if err != nil {
		c.bad++
		if c.onBad != nil {
			c.onBad()
		}
		c.log.Error().Str("key", e.Key).Int64("offset", e.Offset).Err(err).
			Msg("catalogue record skipped: not a valid source; fix it with `lookout sources put` or remove it with `lookout sources rm`")
		return
	}
	c.sources[e.Key] = src
	c.notify()
}

func (c *Catalogue) notify() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Changed receives a value after one or more changes (coalesced).
func (c *Catalogue) Changed() <-chan struct{} { return c.changed }

// WaitSynced waits until the catalogue was read to its end once.
func (c *Catalogue) WaitSynced(ctx context.Context) error { return c.t.WaitSynced(ctx) }

// Sources returns the catalogue sorted by id.
func (c *Catalogue) Sources() []config.Source {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]config.Source, 0, len(c.sources))
	for _, s := range c.sources {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Bad counts the records skipped since open.
func (c *Catalogue) Bad() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bad
}

// Put writes a source (validated first) and waits for the broker.
func (c *Catalogue) Put(ctx context.Context, src config.Source) error {
	b, err := EncodeSource(src)
	if err != nil {
		return err
	}
	if _, err := ParseSourceValue(src.ID, b); err != nil {
		return err
	}
	return c.t.Put(ctx, src.ID, b)
}

// Remove writes the tombstone of id.
func (c *Catalogue) Remove(ctx context.Context, id string) error { return c.t.Delete(ctx, id) }

// Close stops following the topic.
func (c *Catalogue) Close() { c.t.Close() }

// EncodeSource gives a source as catalogue JSON, with the config file's
// field names and durations written as in YAML ("1s").
func EncodeSource(src config.Source) ([]byte, error) {
	y, err := yaml.Marshal(src)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(y, &m); err != nil {
		return nil, err
	}
	for k, v := range m {
		if v == nil {
			delete(m, k)
		}
	}
	return json.Marshal(m)
}

// WorkOf turns catalogue sources into the assignor's work items.
func WorkOf(srcs []config.Source) []Work {
	out := make([]Work, len(srcs))
	for i, s := range srcs {
		out[i] = Work{ID: s.ID, Weight: max(s.Weight, 1)}
	}
	return out
}
