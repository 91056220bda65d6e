package corpus

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"lookout/synth"
)

// maxLine bounds one JSONL line (a caption record is well under 64 KiB).
const maxLine = 4 << 20

// CaptionLine is the part of a lookout caption record that scoring uses.
type CaptionLine struct {
	PTSMs   int64
	Caption string
}

// SlotScore is the accuracy of one slot over the scored records.
type SlotScore struct {
	Domain   synth.Domain `json:"domain"`
	Name     string       `json:"name"`
	Correct  int          `json:"correct"`
	Total    int          `json:"total"`
	Accuracy float64      `json:"accuracy"`
}

// ScoreResult summarises predicted captions against the truth.
type ScoreResult struct {
	// ExactMatch is the fraction of scored records whose caption equals the
	// truth's (surrounding white space aside).
	ExactMatch float64 `json:"exact_match"`
	// SlotAccuracy is the mean over scored records of the fraction of the
	// truth domain's slots that the parsed caption gets right; a caption
	// that does not parse, or parses to the other domain, scores 0.
	SlotAccuracy float64 `json:"slot_accuracy"`
	// Frames is the number of scored records.
	Frames int `json:"frames"`
	// Unmatched counts caption records with no truth frame at or before
	// their pts, or later than the last frame by more than the largest
	// interval between truth frames.
	Unmatched int `json:"unmatched"`
	// Mismatched counts scored records whose caption is not the truth's
	// (Frames minus the exact matches).
	Mismatched int `json:"mismatched"`
	// Unparseable counts scored records whose caption Parse rejects.
	Unparseable int `json:"unparseable"`
	// Slots holds per-slot accuracy, in schema order, domains in Domains order.
	Slots []SlotScore `json:"slots"`
}

// String is the summary line: "exact_match=0.000 slot_accuracy=0.000 frames=N".
func (r ScoreResult) String() string {
	return fmt.Sprintf("exact_match=%.3f slot_accuracy=%.3f frames=%d", r.ExactMatch, r.SlotAccuracy, r.Frames)
}

// Score matches each caption record to the truth frame with the same pts, or
// else the nearest one before it, and scores it. Records before the first
// truth frame, or past the last one by more than the largest interval
// between truth frames, are counted in Unmatched and not scored. Truth
// frames need not be sorted. With no scored record every figure is 0.
func Score(truth []TruthLine, captions []CaptionLine) ScoreResult {
	match := MatchTruth(truth, captions)
	type tally struct{ correct, total int }
	per := map[synth.Domain]map[string]*tally{}
	var res ScoreResult
	var exact, slotSum float64
	for ci, c := range captions {
		if match[ci] < 0 {
			res.Unmatched++
			continue
		}
		t := truth[match[ci]]
		td, _, terr := synth.Parse(t.Caption)
		if terr != nil {
			td = domainOfSlots(t.Slots)
		}
		res.Frames++
		if !Mismatch(c.Caption, t.Caption) {
			exact++
		} else {
			res.Mismatched++
		}
		pd, ps, perr := synth.Parse(c.Caption)
		if perr != nil {
			res.Unparseable++
		}
		schema := synth.Schema(td)
		if per[td] == nil {
			per[td] = map[string]*tally{}
			for _, sp := range schema {
				per[td][sp.Name] = &tally{}
			}
		}
		right := 0
		for _, sp := range schema {
			ok := perr == nil && pd == td && ps[sp.Name] == t.Slots[sp.Name]
			per[td][sp.Name].total++
			if ok {
				per[td][sp.Name].correct++
				right++
			}
		}
		if len(schema) > 0 {
			slotSum += float64(right) / float64(len(schema))
		}
	}
	if res.Frames > 0 {
		res.ExactMatch = exact / float64(res.Frames)
		res.SlotAccuracy = slotSum / float64(res.Frames)
	}
	for _, d := range synth.Domains {
		if per[d] == nil {
			continue
		}
		for _, sp := range synth.Schema(d) {
			t := per[d][sp.Name]
			res.Slots = append(res.Slots, SlotScore{Domain: d, Name: sp.Name, Correct: t.correct, Total: t.total,
				Accuracy: float64(t.correct) / float64(t.total)})
		}
	}
	return res
}

// domainOfSlots guesses a domain from slot names (for truth captions that do not parse).
func domainOfSlots(s synth.Slots) synth.Domain {
	if _, ok := s["place"]; ok {
		return synth.Surveillance
	}
	return synth.Driving
}

// ReadTruth parses a truth JSONL stream; name labels errors, which are one
// line naming the file and line. Every line needs frame, pts_ms, a caption
// that Parse accepts and the slots that caption parses to.
func ReadTruth(r io.Reader, name string) ([]TruthLine, error) {
	var out []TruthLine
	err := eachLine(r, name, func(n int, line []byte) error {
		var raw struct {
			Frame   *int        `json:"frame"`
			PTSMs   *int64      `json:"pts_ms"`
			Caption *string     `json:"caption"`
			Slots   synth.Slots `json:"slots"`
		}
		if err := json.Unmarshal(line, &raw); err != nil {
			return fmt.Errorf("not a truth record: %w", err)
		}
		switch {
		case raw.Frame == nil:
			return errors.New("missing \"frame\"")
		case raw.PTSMs == nil:
			return errors.New("missing \"pts_ms\"")
		case raw.Caption == nil:
			return errors.New("missing \"caption\"")
		case *raw.Frame < 0 || *raw.PTSMs < 0:
			return errors.New("negative frame or pts_ms")
		}
		d, ps, err := synth.Parse(*raw.Caption)
		if err != nil {
			return fmt.Errorf("truth %w", err)
		}
		if err := synth.Validate(d, raw.Slots); err != nil {
			return err
		}
		if !ps.Equal(raw.Slots) {
			return fmt.Errorf("slots {%s} disagree with the caption's {%s}", raw.Slots, ps)
		}
		out = append(out, TruthLine{Frame: *raw.Frame, PTSMs: *raw.PTSMs, Caption: *raw.Caption, Slots: raw.Slots})
		return nil
	})
	return out, err
}

// ReadCaptions parses lookout's caption records (JSONL). A record whose
// "kind" is present and not "caption" (a gap marker, say) is skipped; every
// other one needs an integer "pts_ms" and a string "caption". Errors are
// one line naming the file and line.
func ReadCaptions(r io.Reader, name string) ([]CaptionLine, error) {
	var out []CaptionLine
	err := eachLine(r, name, func(n int, line []byte) error {
		var raw struct {
			Kind    *string `json:"kind"`
			PTSMs   *int64  `json:"pts_ms"`
			Caption *string `json:"caption"`
		}
		if err := json.Unmarshal(line, &raw); err != nil {
			return fmt.Errorf("not a caption record: %w", err)
		}
		if raw.Kind != nil && *raw.Kind != "caption" {
			return nil
		}
		switch {
		case raw.PTSMs == nil:
			return errors.New("missing \"pts_ms\"")
		case raw.Caption == nil:
			return errors.New("missing \"caption\"")
		}
		out = append(out, CaptionLine{PTSMs: *raw.PTSMs, Caption: *raw.Caption})
		return nil
	})
	return out, err
}

// ReadTruthFile reads a truth JSONL file.
func ReadTruthFile(path string) ([]TruthLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("truth file: %w; pass the X.truth.jsonl written by `lookout scenes video`", err)
	}
	defer f.Close()
	return ReadTruth(f, path)
}

// ReadCaptionsFile reads a caption records JSONL file.
func ReadCaptionsFile(path string) ([]CaptionLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("captions file: %w; pass the JSONL written by `lookout caption --out`", err)
	}
	defer f.Close()
	return ReadCaptions(f, path)
}

// eachLine calls fn for every non-blank line, numbering lines from 1, and
// prefixes fn's error with "name:line: ".
func eachLine(r io.Reader, name string, fn func(n int, line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := fn(n, line); err != nil {
			return fmt.Errorf("%s:%d: %w", name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", name, n+1, err)
	}
	return nil
}

// MatchTruth gives, for each caption, the index in truth of the frame Score
// scores it against (the frame with the same pts, or else the nearest one
// before it), or -1 when Score counts it as unmatched. The replay report
// marks mismatches with it, so its count equals Score's.
func MatchTruth(truth []TruthLine, captions []CaptionLine) []int {
	idx := make([]int, len(truth))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return truth[idx[a]].PTSMs < truth[idx[b]].PTSMs })
	// A record later than the last frame by more than the largest frame
	// interval belongs to no frame of this clip.
	var maxGap int64 = -1
	for i := 1; i < len(idx); i++ {
		maxGap = max(maxGap, truth[idx[i]].PTSMs-truth[idx[i-1]].PTSMs)
	}
	out := make([]int, len(captions))
	for ci, c := range captions {
		i := sort.Search(len(idx), func(i int) bool { return truth[idx[i]].PTSMs > c.PTSMs }) - 1
		if i < 0 || (maxGap >= 0 && i == len(idx)-1 && c.PTSMs-truth[idx[i]].PTSMs > maxGap) {
			out[ci] = -1
			continue
		}
		out[ci] = idx[i]
	}
	return out
}

// Mismatch reports whether a caption differs from the truth's (surrounding
// white space aside).
func Mismatch(caption, truth string) bool {
	return strings.TrimSpace(caption) != strings.TrimSpace(truth)
}
