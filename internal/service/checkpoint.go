package service

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// checkpointStore keeps replay checkpoints: files under data_dir, or in
// cluster mode a compacted Kafka topic (cluster.Checkpoints).
type checkpointStore interface {
	Load(id, uri string) (int64, bool)
	Save(id, uri string, ptsMillis int64) error
}

// checkpoints keeps, per replayed source, the PTS of the last record every
// sink acknowledged, so a killed replay resumes where delivery stopped. Each
// source has a small JSON file, replaced atomically (write, fsync, rename).
type checkpoints struct {
	dir string
	mu  sync.Mutex
}

type checkpoint struct {
	URI       string `json:"uri"`
	PTSMillis int64  `json:"pts_ms"`
}

func openCheckpoints(dir string) (*checkpoints, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data_dir: cannot create %s: %w", dir, err)
	}
	return &checkpoints{dir: dir}, nil
}

func (c *checkpoints) path(id string) string { return filepath.Join(c.dir, id+".json") }

// Load returns the checkpoint of source id if it was written for the same URI.
func (c *checkpoints) Load(id, uri string) (int64, bool) {
	b, err := os.ReadFile(c.path(id))
	if err != nil {
		return 0, false
	}
	var cp checkpoint
	if json.Unmarshal(b, &cp) != nil || cp.URI != uri {
		return 0, false
	}
	return cp.PTSMillis, true
}

// Save records that every record up to ptsMillis of source id is delivered.
func (c *checkpoints) Save(id, uri string, ptsMillis int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, _ := json.Marshal(checkpoint{URI: uri, PTSMillis: ptsMillis})
	tmp, err := os.CreateTemp(c.dir, id+".*.tmp")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.path(id))
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
}
