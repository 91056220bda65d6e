package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lookout/sink"
)

// e2eTruthChanges reads a scenes video truth file and returns, for sampling
// at every, the sampled pts whose true caption differs from the previous
// sample's (the first sample included), and how many samples there are.
func e2eTruthChanges(t *testing.T, truthPath string, every time.Duration) (changes []int64, samples int) {
	t.Helper()
	f, err := os.Open(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	next, prev := int64(0), ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var tr struct {
			PTS     int64  `json:"pts_ms"`
			Caption string `json:"caption"`
		}
		if err := json.Unmarshal(sc.Bytes(), &tr); err != nil {
			t.Fatalf("%s: %v", truthPath, err)
		}
		if tr.PTS < next {
			continue
		}
		next = (tr.PTS/every.Milliseconds() + 1) * every.Milliseconds()
		samples++
		if tr.Caption != prev {
			changes = append(changes, tr.PTS)
		}
		prev = tr.Caption
	}
	return changes, samples
}

// TestE2EEventsChangesAndGating runs the real binary over a busy driving
// clip (content changes every 2-8 s) and a calm 10-minute surveillance clip
// (60-180 s), each captioned three ways: every sampled frame, emit: changes,
// and gate 3. The demo model is exact on synthetic scenes, so the truth says
// which records must come: with emit: changes exactly the sampled frames
// whose true caption changed (recall and precision 1.0); with the gate, every
// change still captioned at its first sampled frame, and on the calm clip at
// least 80% fewer model calls. The figures are docs/EVENTS.md's table.
func TestE2EEventsChangesAndGating(t *testing.T) {
	model := e2eDemoModel()
	if model == "" {
		t.Fatal("models/demo has no encoder_model.onnx: the demo model ships with the repository; restore it (git checkout models/demo)")
	}
	dir := t.TempDir()
	const every = time.Second
	for _, c := range []struct {
		name, domain, hold, duration string
		minSaving                    float64
	}{
		{"busy-driving", "driving", "2s-8s", "120s", 0},
		{"calm-surveillance", "surveillance", "60s-180s", "600s", 0.8},
	} {
		t.Run(c.name, func(t *testing.T) {
			clip := filepath.Join(dir, c.name+".mp4")
			if code, _, stderr, _ := e2eRunLookout(t, dir, 5*time.Minute, "scenes", "video", "--domain", c.domain, "--seed", "17",
				"--duration", c.duration, "--size", "480x270", "--fps", "5", "--hold", c.hold, "--out", clip); code != 0 {
				t.Fatalf("scenes video: exit %d: %s", code, stderr)
			}
			changes, samples := e2eTruthChanges(t, strings.TrimSuffix(clip, ".mp4")+".truth.jsonl", every)
			run := func(mode string, extra ...string) []sink.Record {
				out := filepath.Join(dir, c.name+"."+mode+".jsonl")
				args := append([]string{"caption", clip, "--model", model, "--every", every.String(), "--out", out}, extra...)
				if code, _, stderr, _ := e2eRunLookout(t, dir, 5*time.Minute, args...); code != 0 {
					t.Fatalf("caption %s: exit %d: %s", mode, code, stderr)
				}
				var recs []sink.Record
				for _, r := range e2eReadJSONL(t, out) {
					recs = append(recs, r.Rec)
				}
				return recs
			}
			all := run("every")
			if len(all) != samples {
				t.Fatalf("every: %d records for %d samples", len(all), samples)
			}
			changed := run("changes", "--emit", "changes", "--heartbeat", "60s")
			var got []int64
			heartbeats := 0
			for _, r := range changed {
				switch r.Kind {
				case sink.KindCaption:
					got = append(got, r.PTSMillis)
				case sink.KindHeartbeat:
					heartbeats++
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(changes) {
				t.Errorf("emit changes published caption records at\n%v\nthe truth changes at the samples\n%v", got, changes)
			}
			gated := run("gated", "--gate", "3")
			calls := map[int64]bool{}
			for _, r := range gated {
				calls[r.PTSMillis] = true
			}
			missed := 0
			for _, p := range changes {
				if !calls[p] {
					missed++
					t.Errorf("gate 3: the change at pts %d was not captioned at its first sampled frame", p)
				}
			}
			saving := 1 - float64(len(gated))/float64(len(all))
			if saving < c.minSaving {
				t.Errorf("gate 3 saved %.0f%% of model calls, want at least %.0f%%", 100*saving, 100*c.minSaving)
			}
			hours := float64(samples) * every.Hours()
			t.Logf("TABLE | %s | %d true changes in %d samples | every: %.0f records/h, %.0f calls/h | changes: %.0f records/h (%d heartbeats), %.0f calls/h | gate 3: %.0f records/h, %.0f calls/h (%.1f%% fewer), %d changes missed |",
				c.name, len(changes), samples, float64(len(all))/hours, float64(len(all))/hours,
				float64(len(changed))/hours, heartbeats, float64(len(all))/hours,
				float64(len(gated))/hours, float64(len(gated))/hours, 100*saving, missed)
		})
	}
}
