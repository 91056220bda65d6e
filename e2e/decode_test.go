package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestE2EKeyframeReplay: a synthetic clip re-encoded with a keyframe every
// second, replayed with --decode keyframes twice and with --decode all: the
// three runs give the same records (ids, pts, captions), and the demo model
// still scores exact match 1.000 against the truth.
func TestE2EKeyframeReplay(t *testing.T) {
	model := e2eDemoModel()
	if model == "" {
		t.Fatal("models/demo has no encoder_model.onnx: restore it (git checkout models/demo)")
	}
	src := e2eClip(t, "drive60", "--domain", "driving", "--seed", "11", "--duration", "60s", "--size", "640x360", "--fps", "30")
	dir := t.TempDir()
	clip := filepath.Join(dir, "drive60-k1.mp4")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-i", src, "-c:v", "libx264", "-preset", "veryfast", "-g", "30",
		"-keyint_min", "30", "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p", clip).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg (scripts/deps-apt.sh installs it): %v: %s", err, out)
	}
	truth, err := os.ReadFile(strings.TrimSuffix(src, ".mp4") + ".truth.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	e2eWriteFile(t, strings.TrimSuffix(clip, ".mp4")+".truth.jsonl", string(truth))
	var runs []string
	var recs [][]e2eJsonlRecord
	for i, decode := range []string{"keyframes", "keyframes", "all"} {
		out := filepath.Join(dir, fmt.Sprintf("run%d-%s.jsonl", i, decode))
		code, _, stderr, took := e2eRunLookout(t, dir, 3*time.Minute, "caption", clip, "--every", "1s", "--decode", decode, "--model", model, "--out", out)
		if code != 0 {
			t.Fatalf("caption --decode %s: exit %d: %s", decode, code, stderr)
		}
		r := e2eReadJSONL(t, out)
		if len(r) != 60 {
			t.Fatalf("--decode %s: %d records, want 60", decode, len(r))
		}
		var sig []string
		for j, x := range r {
			if x.Rec.PTSMillis != int64(j)*1000 {
				t.Errorf("--decode %s record %d: pts %d, want %d", decode, j, x.Rec.PTSMillis, j*1000)
			}
			sig = append(sig, x.Rec.ID+" "+x.Rec.Caption)
		}
		runs = append(runs, strings.Join(sig, "\n"))
		recs = append(recs, r)
		t.Logf("--decode %s: 60 records in %.1fs", decode, took.Seconds())
	}
	if runs[0] != runs[1] {
		t.Errorf("two keyframe replays differ")
	}
	if runs[0] != runs[2] {
		t.Errorf("keyframe and full-decode replays differ")
	}
	code, stdout, stderr, _ := e2eRunLookout(t, dir, time.Minute, "scenes", "score", "--truth", strings.TrimSuffix(clip, ".mp4")+".truth.jsonl",
		"--captions", filepath.Join(dir, "run0-keyframes.jsonl"))
	if code != 0 {
		t.Fatalf("scenes score: exit %d\n%s", code, stderr)
	}
	m := e2eScoreLine.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("scenes score printed no summary line:\n%s", stdout)
	}
	if exact, _ := strconv.ParseFloat(m[1], 64); exact != 1 {
		t.Errorf("keyframe replay: %s, want exact_match 1.000", m[0])
	}
	t.Logf("keyframe replay: %s", m[0])
}
