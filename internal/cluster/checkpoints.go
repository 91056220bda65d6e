package cluster

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Checkpoints keeps replay checkpoints in a compacted topic keyed by source
// id, so that a replay resumes on whichever instance owns it next, from the
// last pts every sink accepted. Values are {"uri": ..., "pts_ms": ...}, the
// same as the files a single instance keeps under data_dir.
type Checkpoints struct {
	t   *Table
	log zerolog.Logger

	mu      sync.Mutex
	m       map[string]checkpoint
	lastErr time.Time
}

type checkpoint struct {
	URI       string `json:"uri"`
	PTSMillis int64  `json:"pts_ms"`
}

// OpenCheckpoints creates the topic compacted when missing, reads it to its
// end and then follows it.
func OpenCheckpoints(ctx context.Context, opts []kgo.Opt, topic string, log zerolog.Logger) (*Checkpoints, error) {
	c := &Checkpoints{m: map[string]checkpoint{}, log: log.With().Str("component", "checkpoints").Logger()}
	t, err := OpenTable(ctx, opts, TableConfig{Topic: topic, OnEntry: c.apply, Logger: c.log})
	if err != nil {
		return nil, err
	}
	c.t = t
	if err := t.WaitSynced(ctx); err != nil {
		t.Close()
		return nil, err
	}
	return c, nil
}

func (c *Checkpoints) apply(e Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Value == nil {
		delete(c.m, e.Key)
		return
	}
	var cp checkpoint
	if err := json.Unmarshal(e.Value, &cp); err != nil {
		c.log.Warn().Str("key", e.Key).Int64("offset", e.Offset).Err(err).Msg("checkpoint record skipped: not JSON")
		return
	}
	c.m[e.Key] = cp
}

// Load returns the checkpoint of source id if it was written for uri.
func (c *Checkpoints) Load(id, uri string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp, ok := c.m[id]
	if !ok || cp.URI != uri {
		return 0, false
	}
	return cp.PTSMillis, true
}

// Save records that source id is delivered up to ptsMillis. It does not
// wait for the broker (it runs on the delivery path); a failed write is
// logged at most every 10 s, and the next Save supersedes it.
func (c *Checkpoints) Save(id, uri string, ptsMillis int64) error {
	b, _ := json.Marshal(checkpoint{URI: uri, PTSMillis: ptsMillis})
	c.mu.Lock()
	c.m[id] = checkpoint{URI: uri, PTSMillis: ptsMillis}
	c.mu.Unlock()
	c.t.cl.TryProduce(context.Background(), &kgo.Record{Topic: c.t.topic, Key: []byte(id), Value: b}, func(_ *kgo.Record, err error) {
		if err == nil {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if time.Since(c.lastErr) > 10*time.Second {
			c.lastErr = time.Now()
			c.log.Warn().Err(err).Str("source", id).Msg("checkpoint not written to Kafka; a later one will be")
		}
	})
	return nil
}

// Close flushes pending checkpoints (briefly) and stops.
func (c *Checkpoints) Close() { c.t.Close() }
