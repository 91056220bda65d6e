package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lookout/inference"
)

func runLookout(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func tinyModel(t *testing.T) (string, string) {
	t.Helper()
	repo, _ := filepath.Abs(filepath.Join("..", ".."))
	if _, err := inference.ResolveLibraryPath(""); err != nil {
		t.Fatalf("ONNX Runtime is required: %v (run scripts/ort.sh)", err)
	}
	return filepath.Join(repo, "testdata", "models", "tiny-vit-gpt2"), filepath.Join(repo, "testdata", "golden", "images")
}

func TestModelInfoAndCheck(t *testing.T) {
	dir, imgs := tinyModel(t)
	out, err := runLookout(t, "model", "info", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"vit encoder + gpt2 decoder", "vocab 320", "past_key_values.1.value", "max_length 20", "digest"} {
		if !strings.Contains(out, want) {
			t.Errorf("model info output lacks %q:\n%s", want, out)
		}
	}
	img := filepath.Join(imgs, "shapes_96x54.png")
	out, err = runLookout(t, "model", "check", dir, img)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], img+"\t") {
		t.Fatalf("model check output:\n%s", out)
	}
	out, err = runLookout(t, "model", "check", "--json", dir, img)
	if err != nil || !strings.Contains(out, `"caption"`) || !strings.Contains(out, `"tokens"`) {
		t.Fatalf("model check --json: %v\n%s", err, out)
	}
}

func TestModelCheckErrors(t *testing.T) {
	dir, _ := tinyModel(t)
	var ue usageError
	if _, err := runLookout(t, "model", "check"); !errors.As(err, &ue) {
		t.Errorf("no folder: want a usage error, got %v", err)
	}
	if _, err := runLookout(t, "model", "check", dir, "/nonexistent.png"); !errors.As(err, &ue) {
		t.Errorf("missing image: want a usage error, got %v", err)
	}
	if _, err := runLookout(t, "model", "info", "--provider", "tpu", dir); !errors.As(err, &ue) {
		t.Errorf("bad provider: want a usage error, got %v", err)
	}
	// A broken folder is a runtime error (exit 1) on one line naming the file.
	bad := t.TempDir()
	for _, f := range []string{"config.json", "tokenizer.json"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		os.WriteFile(filepath.Join(bad, f), b, 0o644)
	}
	_, err := runLookout(t, "model", "check", bad)
	if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), "encoder_model.onnx") || strings.Contains(err.Error(), "\n") {
		t.Errorf("broken folder: got %v", err)
	}
}

func TestModelBench(t *testing.T) {
	dir, imgs := tinyModel(t)
	out, err := runLookout(t, "model", "bench", dir, filepath.Join(imgs, "noise_33x29.png"), "--batch", "1,2", "--seconds", "0.05", "--threads", "1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "captions/s") != 2 {
		t.Fatalf("bench output:\n%s", out)
	}
	if _, err := runLookout(t, "model", "bench", dir, filepath.Join(imgs, "noise_33x29.png"), "--batch", "0"); err == nil {
		t.Error("--batch 0 accepted")
	}
}

// The demo model's domain profile shows in model info, and model check says
// which images are in domain; models without a profile say nothing of it.
func TestModelDomainShown(t *testing.T) {
	tiny, imgs := tinyModel(t)
	repo := filepath.Dir(filepath.Dir(tiny))
	demo := filepath.Join(filepath.Dir(repo), "models", "demo")
	out, err := runLookout(t, "model", "info", demo)
	if err != nil || !strings.Contains(out, "domain        profile of 48 principal directions") || !strings.Contains(out, "synthetic scenes") {
		t.Fatalf("model info of the demo model: %v\n%s", err, out)
	}
	synthFrame := filepath.Join(repo, "golden", "frames", "driving_640x360.png")
	out, err = runLookout(t, "model", "check", demo, filepath.Join(imgs, "stripes_40x72.png"), synthFrame)
	if err != nil || strings.Count(out, "in_domain=false") != 1 || strings.Count(out, "in_domain=true") != 1 {
		t.Fatalf("model check: want stripes out of domain and the synthetic frame in: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"model", "info", tiny}, {"model", "check", tiny, synthFrame}} {
		if out, err := runLookout(t, args...); err != nil || strings.Contains(out, "\ndomain ") || strings.Contains(out, "in_domain") {
			t.Fatalf("%v: a model without a profile mentions a domain: %v\n%s", args, err, out)
		}
	}
}
