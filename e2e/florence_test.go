package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2EFlorenceTasks runs the tiny Florence-2 fixture through `lookout run`
// with three file sources that ask for different tasks (<OD>, <OCR>, the
// default <CAPTION>): every record matches the schema, <OD> records carry
// objects with boxes inside the 320x180 frame, <OCR> records carry ocr, and the
// same config on a VisionEncoderDecoder model is refused with one line per
// source (exit 2). `lookout model check` names both architectures and refuses
// an unsupported one in one line.
func TestE2EFlorenceTasks(t *testing.T) {
	e2eNeedBinary(t)
	dir := t.TempDir()
	clip := e2eSmallClip(t)
	flor := filepath.Join(e2e.root, "testdata", "models", "tiny-florence2")
	out := filepath.Join(dir, "out.jsonl")
	body := func(model string) string {
		return fmt.Sprintf("data_dir: %s\nlog: {level: warn, format: json}\nhttp: {listen: \"\"}\nmodel: {dir: %s}\n"+
			"sources:\n  - {id: od, uri: %s, every: 2s, task: \"<OD>\"}\n  - {id: ocr, uri: %s, every: 2s, task: \"<OCR>\"}\n"+
			"  - {id: cap, uri: %s, every: 2s}\nsinks:\n  jsonl: {path: %s}\n", filepath.Join(dir, "data-"+filepath.Base(model)), model, clip, clip, clip, out)
	}
	cfg := e2eWriteFile(t, filepath.Join(dir, "florence.yaml"), body(flor))
	// A service does not exit when its file sources end: wait for the 60
	// records (3 sources x 40 s at every 2s), then stop it.
	p := e2eStartLookout(t, dir, "run", "--config", cfg)
	deadline := time.Now().Add(2 * time.Minute)
	for len(e2eReadJSONL(t, out)) < 60 && time.Now().Before(deadline) && !p.exited() {
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(p.started)
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("lookout run: exit %d\n%s", code, e2eTail(p.stderr.String(), 20))
	}
	recs := e2eReadJSONL(t, out)
	check := newE2ESchemaCheck(t)
	per := map[string]int{}
	boxes := 0
	for _, r := range recs {
		check.check(r.Rec.SourceID, r.Raw)
		per[r.Rec.SourceID]++
		switch r.Rec.SourceID {
		case "od":
			for _, o := range r.Rec.Objects {
				boxes++
				b := o.Box
				if b[0] < 0 || b[2] < 0 || b[0] >= 320 || b[2] >= 320 || b[1] < 0 || b[3] < 0 || b[1] >= 180 || b[3] >= 180 {
					t.Errorf("od pts %d: box %v outside the 320x180 frame", r.Rec.PTSMillis, b)
				}
			}
			if r.Rec.OCR != "" {
				t.Errorf("od record has ocr %q", r.Rec.OCR)
			}
		case "ocr":
			if r.Rec.OCR == "" || r.Rec.OCR != r.Rec.Caption || len(r.Rec.Objects) > 0 {
				t.Errorf("ocr pts %d: ocr %q caption %q objects %d", r.Rec.PTSMillis, r.Rec.OCR, r.Rec.Caption, len(r.Rec.Objects))
			}
		case "cap":
			if r.Rec.OCR != "" || len(r.Rec.Objects) > 0 || r.Rec.Caption == "" {
				t.Errorf("cap pts %d: caption %q ocr %q objects %d", r.Rec.PTSMillis, r.Rec.Caption, r.Rec.OCR, len(r.Rec.Objects))
			}
		}
	}
	check.done(len(recs))
	for _, id := range []string{"od", "ocr", "cap"} {
		if per[id] != 20 {
			t.Errorf("source %s: %d records, want 20 (40 s at every 2s)", id, per[id])
		}
	}
	if boxes == 0 {
		t.Errorf("no <OD> record has objects (the fixture answers boxes on these frames)")
	}
	t.Logf("%d records in %.1fs, %d boxes", len(recs), took.Seconds(), boxes)

	ved := e2eWriteFile(t, filepath.Join(dir, "ved.yaml"), body(e2eTinyModel()))
	code, _, stderr, _ := e2eRunLookout(t, dir, time.Minute, "run", "--config", ved)
	if code != 2 || !strings.Contains(stderr, "lookout: source od: task <OD> needs a Florence-2 model; model tiny-vit-gpt2 is vision-encoder-decoder") ||
		!strings.Contains(stderr, "source ocr: task <OCR> needs a Florence-2 model") {
		t.Errorf("tasks on a VisionEncoderDecoder model: exit %d, want 2 with one line per source\n%s", code, e2eTail(stderr, 10))
	}

	code, stdout, _, _ := e2eRunLookout(t, dir, time.Minute, "model", "check", flor)
	if code != 0 || !strings.Contains(stdout, "architecture florence2 (supported)") {
		t.Errorf("model check florence: exit %d: %s", code, stdout)
	}
	blip := filepath.Join(dir, "blip")
	if err := os.MkdirAll(blip, 0o755); err != nil {
		t.Fatal(err)
	}
	e2eWriteFile(t, filepath.Join(blip, "config.json"), `{"model_type": "blip"}`)
	code, _, stderr, _ = e2eRunLookout(t, dir, time.Minute, "model", "check", blip)
	if want := "lookout: model " + blip + ": architecture blip is not supported (lookout runs vision-encoder-decoder and florence2)\n"; code != 1 || stderr != want {
		t.Errorf("model check blip: exit %d stderr %q, want exit 1 and %q", code, stderr, want)
	}
}
