package e2e

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
// sample's (the first sample included), and the true caption of every
// sample by pts.
func e2eTruthChanges(t *testing.T, truthPath string, every time.Duration) (changes []int64, truth map[int64]string) {
	t.Helper()
	f, err := os.Open(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	next, prev := int64(0), ""
	truth = map[int64]string{}
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
		truth[tr.PTS] = tr.Caption
		if tr.Caption != prev {
			changes = append(changes, tr.PTS)
		}
		prev = tr.Caption
	}
	return changes, truth
}

// TestE2EEventsChangesAndGating runs the real binary over a busy driving
// clip (content changes every 2-8 s) and a calm 10-minute surveillance clip
// (60-180 s), each captioned three ways: every sampled frame, emit: changes,
// and gate 3. The demo model is exact on synthetic scenes, so the truth says
// which records must come: with emit: changes a record at every sampled
// frame whose true caption changed (recall 1.0) and exactly where the
// model's own caption changed, so that a record at no true change is the
// model's mistake, never the emitter's (counted; precision is reported); with
// the gate, every true change still captioned at its first sampled frame,
// and on the calm clip at least 80% fewer model calls. The figures are
// docs/EVENTS.md's table.
func TestE2EEventsChangesAndGating(t *testing.T) {
	model := e2eDemoModel()
	if model == "" {
		t.Fatal("models/demo has no encoder_model.onnx: the demo model ships with the repository; restore it (git checkout models/demo)")
	}
	dir := t.TempDir()
	const every = time.Second
	for _, c := range []struct {
		name, domain, hold, duration, seed string
		minSaving                          float64
	}{
		// Seeds whose every sample the demo model captions exactly
		// (scenes score exact_match=1.000), so that any record at no true
		// change would be the emitter's fault: the test then demands none.
		{"busy-driving", "driving", "2s-8s", "120s", "18", 0},
		{"calm-surveillance", "surveillance", "60s-180s", "600s", "17", 0.8},
	} {
		t.Run(c.name, func(t *testing.T) {
			clip := filepath.Join(dir, c.name+".mp4")
			if code, _, stderr, _ := e2eRunLookout(t, dir, 5*time.Minute, "scenes", "video", "--domain", c.domain, "--seed", c.seed,
				"--duration", c.duration, "--size", "640x360", "--fps", "5", "--hold", c.hold, "--out", clip); code != 0 {
				t.Fatalf("scenes video: exit %d: %s", code, stderr)
			}
			changes, truth := e2eTruthChanges(t, strings.TrimSuffix(clip, ".mp4")+".truth.jsonl", every)
			samples := len(truth)
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
			published := map[int64]bool{}
			for _, p := range got {
				published[p] = true
			}
			for _, p := range changes {
				if !published[p] {
					t.Errorf("emit changes: no record at the true change at pts %d", p)
				}
			}
			trueChange := map[int64]bool{}
			for _, p := range changes {
				trueChange[p] = true
			}
			spurious := 0
			for _, p := range got {
				if !trueChange[p] {
					spurious++
				}
			}
			wrong := 0 // samples the model captioned differently from the truth
			for _, r := range all {
				if r.Caption != truth[r.PTSMillis] {
					wrong++
				}
			}
			if spurious > 2*wrong {
				t.Errorf("emit changes: %d records at no true change, more than the %d model mistakes explain", spurious, wrong)
			}
			// The same against the model's own captions of every sample.
			var own []int64
			for i, r := range all {
				if i == 0 || r.Caption != all[i-1].Caption {
					own = append(own, r.PTSMillis)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(own) {
				t.Errorf("emit changes published caption records at\n%v\nthe captions of every sample change at\n%v", got, own)
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
			t.Logf("TABLE | %s | %d true changes in %d samples (model wrong on %d) | every: %.0f records/h, %.0f calls/h | changes: %.0f records/h (%d heartbeats, %d at no true change), %.0f calls/h | gate 3: %.0f records/h, %.0f calls/h (%.1f%% fewer), %d changes missed |",
				c.name, len(changes), samples, wrong, float64(len(all))/hours, float64(len(all))/hours,
				float64(len(changed))/hours, heartbeats, spurious, float64(len(all))/hours,
				float64(len(gated))/hours, float64(len(gated))/hours, 100*saving, missed)
		})
	}
}
