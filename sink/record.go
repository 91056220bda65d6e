// Package sink delivers caption records: to Kafka (behind a disk spool), to
// JSONL files and to annotated video.
package sink

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// SchemaVersion is the version of Record's JSON layout (docs/SCHEMA.md).
const SchemaVersion = 1

// Record kinds.
const (
	KindCaption = "caption"
	// KindGap marks a source that came back after an outage.
	KindGap = "gap"
	// KindHeartbeat repeats a source's current caption when nothing changed
	// for a while (sources[].emit: changes, heartbeat).
	KindHeartbeat = "heartbeat"
	// KindAlert says a rule's match held (docs/EVENTS.md, "Rules"): the
	// record repeats the caption record that completed the match and names
	// the rule and that record's id.
	KindAlert = "alert"
)

// Record is one JSON object per sampled frame (or per gap).
type Record struct {
	SchemaVersion int               `json:"schema_version"`
	ID            string            `json:"id"`
	Kind          string            `json:"kind"`
	SourceID      string            `json:"source_id"`
	Labels        map[string]string `json:"labels,omitempty"`
	Seq           int64             `json:"seq"`
	PTSMillis     int64             `json:"pts_ms"`
	// Run is set on live sources' records: it names one opening of the
	// source (a UUIDv7), since a live PTS starts again at 0 each time.
	Run         string    `json:"run,omitempty"`
	CaptureTime time.Time `json:"capture_time"`
	Caption     string    `json:"caption"`
	// Confidence is in [0, 1]: the geometric mean of the caption's token
	// probabilities (see ConfidenceFromMeanLogProb), not a measured
	// accuracy. docs/SCHEMA.md.
	Confidence float64         `json:"confidence"`
	Attributes map[string]Attr `json:"attributes,omitempty"`
	// InDomain and DomainDistance (models with a domain profile only) say
	// whether the frame resembles the model's training frames and how far
	// it lies from them (docs/MODELS.md, "Out-of-domain flag").
	InDomain       *bool    `json:"in_domain,omitempty"`
	DomainDistance *float64 `json:"domain_distance,omitempty"`
	// Objects (a Florence-2 <OD> source) are labelled boxes in frame pixels;
	// OCR (an <OCR> source) is the text read in the frame.
	Objects []Object `json:"objects,omitempty"`
	OCR     string   `json:"ocr,omitempty"`
	Model   string   `json:"model"`
	// Instance names the lookout instance that produced the record (cluster
	// mode, cluster.instance); absent otherwise. docs/SCALING.md.
	Instance    string `json:"instance,omitempty"`
	ModelDigest string `json:"model_digest"`
	GapMillis   int64  `json:"gap_ms,omitempty"`
	// PrevCaption and HeldMillis (emit: changes) are the caption this record
	// replaces and how long, in stream time, it held; a heartbeat carries
	// how long its caption has held.
	PrevCaption string `json:"prev_caption,omitempty"`
	HeldMillis  int64  `json:"held_ms,omitempty"`
	// Rule and CaptionID (alert records) name the rule that fired and the
	// caption record that completed its match.
	Rule          string  `json:"rule,omitempty"`
	CaptionID     string  `json:"caption_id,omitempty"`
	LatencyMillis Latency `json:"latency_ms"`
}

// Object is one detected object: a label and a box [x1, y1, x2, y2] in the
// pixels of the frame.
type Object struct {
	Label string `json:"label"`
	Box   [4]int `json:"box"`
}

// Attr is one structured attribute predicted next to the caption.
type Attr struct {
	Value string  `json:"value"`
	Prob  float64 `json:"prob"`
}

// Latency is the per-stage time spent on the record, in milliseconds.
type Latency struct {
	Queue      float64 `json:"queue"`
	Preprocess float64 `json:"preprocess"`
	Encode     float64 `json:"encode"`
	Decode     float64 `json:"decode"`
	// Total is capture time to the moment the record was handed to sinks.
	Total float64 `json:"total"`
}

// RecordID is deterministic in (source, run, pts, model, kind), so that
// consumers can drop the duplicates an at-least-once delivery may produce:
// a record keeps its id through every retry. run is empty for replays (the
// same frame of the same file gives the same id on every replay) and names
// the opening of a live source otherwise (a restarted camera never reuses an
// id). docs/SCHEMA.md gives the formula.
func RecordID(sourceID, run string, ptsMillis int64, modelDigest, kind string) string {
	key := fmt.Sprintf("%s\x00%d\x00%s\x00%s", sourceID, ptsMillis, modelDigest, kind)
	if run != "" {
		key += "\x00" + run
	}
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:16])
}

// AlertID is the id of the alert rule fired on the caption record
// captionID: deterministic, so a replay, a retry and `lookout rules test`
// give the same id, and two rules firing on one frame give two ids.
func AlertID(captionID, rule string) string {
	h := sha256.Sum256([]byte(captionID + "\x00" + KindAlert + "\x00" + rule))
	return hex.EncodeToString(h[:16])
}

// Encode is a record's JSON, as every sink writes it.
func Encode(r Record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode record %s of source %q: %w", r.ID, r.SourceID, err)
	}
	return b, nil
}
