package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// pullGolden is the part of testdata/golden/<name>.json the pull test reads:
// transformers generate() on the PyTorch checkpoint, per image and case.
type pullGolden struct {
	EOS    int64 `json:"eos_token_id"`
	Images []struct {
		File  string `json:"file"`
		Cases []struct {
			Name      string    `json:"name"`
			Sequences [][]int64 `json:"sequences"`
			Texts     []string  `json:"texts"`
		} `json:"cases"`
	} `json:"images"`
}

// e2eToolchainEnv points lookout at the checkout's Python toolchain (the
// binary is built outside the checkout, so it cannot find it by walking up).
func e2eToolchainEnv(t *testing.T) {
	t.Helper()
	py := filepath.Join(e2e.root, ".state", "venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("Python venv %s: %v; run make deps-py (scripts/venv.sh)", py, err)
	}
	t.Setenv("LOOKOUT_PYTHON", py)
	t.Setenv("LOOKOUT_TRAINING", filepath.Join(e2e.root, "training"))
}

// TestE2EModelPullCheckpoint: `lookout model pull` on the tiny PyTorch
// VisionEncoderDecoder checkpoint exports it (optimum + the optimizer pass),
// `model check` accepts the result, and its captions on the golden images
// equal transformers generate()'s on the same checkpoint, token for token.
// The ViT + BERT family (exported without a cache) goes the same way.
func TestE2EModelPullCheckpoint(t *testing.T) {
	e2eNeedBinary(t)
	e2eToolchainEnv(t)
	for _, tc := range []struct{ name, task, card string }{
		{"tiny-vit-gpt2", "image-to-text-with-past", "VisionEncoderDecoder vit + gpt2 (split decoder), vocab 320"},
		{"tiny-vit-bert", "image-to-text", "VisionEncoderDecoder vit + bert (nocache decoder)"},
	} {
		t.Run(tc.name, func(t *testing.T) { e2ePullCheckpoint(t, tc.name, tc.task, tc.card) })
	}
}

func e2ePullCheckpoint(t *testing.T, name, task, card string) {
	dir := t.TempDir()
	out := filepath.Join(dir, "pulled")
	ckpt := filepath.Join(e2e.root, "testdata", "models", name+"-pytorch")
	code, stdout, stderr, took := e2eRunLookout(t, dir, 3*time.Minute, "model", "pull", ckpt, "--out", out)
	if code != 0 {
		t.Fatalf("model pull: exit %d\n%s", code, e2eTail(stderr, 30))
	}
	t.Logf("model pull of the checkpoint took %s", took.Round(time.Millisecond))
	for _, want := range []string{"export: optimum " + task + " export", "export: ONNX Runtime transformer optimizer pass", "pull: verifying"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("progress line %q missing from stderr:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, card) || strings.Count(stdout, "\n") != 1 {
		t.Errorf("model card line: %q, want it to hold %q", stdout, card)
	}
	var g pullGolden
	b, err := os.ReadFile(filepath.Join(e2e.root, "testdata", "golden", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("golden: %v", err)
	}
	args := []string{"model", "check", "--json", out}
	var want [][]int64
	var texts []string
	for _, im := range g.Images {
		args = append(args, filepath.Join(e2e.root, "testdata", "golden", im.File))
		for _, c := range im.Cases {
			if c.Name == "greedy" { // the checkpoint's generation_config: greedy, its max_length
				want = append(want, trimGoldenRow(c.Sequences[0], g.EOS))
				texts = append(texts, c.Texts[0])
			}
		}
	}
	if len(want) != len(g.Images) || len(want) == 0 {
		t.Fatalf("golden has %d greedy cases for %d images", len(want), len(g.Images))
	}
	code, stdout, stderr, _ = e2eRunLookout(t, dir, time.Minute, args...)
	if code != 0 {
		t.Fatalf("model check of the pulled folder: exit %d\n%s", code, e2eTail(stderr, 20))
	}
	var n int
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var r struct {
			Image   string  `json:"image"`
			Caption string  `json:"caption"`
			Tokens  []int64 `json:"tokens"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("model check --json line %q: %v", sc.Text(), err)
		}
		if n >= len(want) {
			t.Fatalf("more results than images: %s", sc.Text())
		}
		if !slices.Equal(r.Tokens, want[n]) || r.Caption != texts[n] {
			t.Errorf("%s: tokens %v caption %q; transformers %v %q", filepath.Base(r.Image), r.Tokens, r.Caption, want[n], texts[n])
		}
		n++
	}
	if n != len(want) {
		t.Errorf("%d results for %d images", n, len(want))
	}
}

// trimGoldenRow drops the decoder start token and what follows the first EOS.
func trimGoldenRow(row []int64, eos int64) []int64 {
	gen := row[1:]
	if i := slices.Index(gen, eos); i >= 0 {
		return gen[:i+1]
	}
	return gen
}

// TestE2EModelPullSources: an ONNX folder (ViT+GPT-2 and Florence-2) is
// copied and verified; a hub id on this offline machine fails with one line
// naming it and huggingface.co (exit 1); a missing folder, a folder that is
// no model and a non-empty --out are usage errors (exit 2) in one line.
func TestE2EModelPullSources(t *testing.T) {
	e2eNeedBinary(t)
	e2eToolchainEnv(t)
	dir := t.TempDir()
	models := filepath.Join(e2e.root, "testdata", "models")
	for _, tc := range []struct{ src, card string }{
		{"tiny-vit-gpt2", "VisionEncoderDecoder vit + gpt2 (merged decoder)"},
		{"tiny-florence2", "Florence-2 (DaViT + BART)"},
	} {
		out := filepath.Join(dir, tc.src)
		code, stdout, stderr, _ := e2eRunLookout(t, dir, time.Minute, "model", "pull", filepath.Join(models, tc.src), "--out", out)
		if code != 0 || !strings.Contains(stdout, tc.card) {
			t.Errorf("pull %s: exit %d, stdout %q\n%s", tc.src, code, stdout, e2eTail(stderr, 10))
		}
		// PyTorch weights beside the graphs (tiny-florence2/pytorch) do not travel.
		if _, err := os.Stat(filepath.Join(out, "pytorch")); err == nil {
			t.Errorf("pull %s copied the pytorch/ folder", tc.src)
		}
		if code, _, stderr, _ := e2eRunLookout(t, dir, time.Minute, "model", "check", out); code != 0 {
			t.Errorf("model check %s: exit %d\n%s", out, code, stderr)
		}
	}
	notEmpty := filepath.Join(dir, "tiny-vit-gpt2")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"no-such-owner/no-such-model", "--out", filepath.Join(dir, "hub")}, 1, "hub id no-such-owner/no-such-model: this machine cannot reach huggingface.co"},
		{[]string{filepath.Join(dir, "missing"), "--out", filepath.Join(dir, "x")}, 2, "no such file or directory"},
		{[]string{filepath.Join(e2e.root, "testdata", "golden"), "--out", filepath.Join(dir, "x")}, 2, "has no config.json: not a Hugging Face model folder"},
		{[]string{filepath.Join(models, "tiny-vit-gpt2"), "--out", notEmpty}, 2, "is not empty; pass a new folder"},
	} {
		code, stdout, stderr, _ := e2eRunLookout(t, dir, time.Minute, append([]string{"model", "pull"}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		last := lines[len(lines)-1]
		if code != tc.code || !strings.Contains(last, tc.want) || stdout != "" {
			t.Errorf("pull %v: exit %d (want %d), last line %q (want %q), stdout %q", tc.args, code, tc.code, last, tc.want, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "hub")); err == nil {
		t.Errorf("a failed hub pull left its --out folder")
	}
}

// TestE2EModelCheckFamilies: model check names each family fixture's encoder,
// decoder and cache contract; a VisionEncoderDecoder of a family lookout
// does not run (Donut's own donut-swin encoder) is refused in one line naming it.
func TestE2EModelCheckFamilies(t *testing.T) {
	e2eNeedBinary(t)
	dir := t.TempDir()
	models := filepath.Join(e2e.root, "testdata", "models")
	for name, want := range map[string]string{
		"tiny-beit-gpt2":    "beit encoder + gpt2 decoder, self-attention cache (supported)",
		"tiny-deit-trocr":   "deit encoder + trocr decoder, self + cross-attention cache (supported)",
		"tiny-swin-trocr":   "swin encoder + trocr decoder, self + cross-attention cache (supported)",
		"tiny-swin-mbart":   "swin encoder + mbart decoder, self + cross-attention cache (supported)",
		"tiny-vit-bert":     "vit encoder + bert decoder, no cache (supported)",
		"tiny-deit-roberta": "deit encoder + roberta decoder, no cache (supported)",
	} {
		code, stdout, stderr, _ := e2eRunLookout(t, dir, time.Minute, "model", "check", filepath.Join(models, name))
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("model check %s: exit %d, stdout %q (want %q)\n%s", name, code, stdout, want, stderr)
		}
	}
	bad := filepath.Join(dir, "donut")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := `{"model_type": "vision-encoder-decoder", "encoder": {"model_type": "donut-swin"}, "decoder": {"model_type": "mbart"}}`
	e2eWriteFile(t, filepath.Join(bad, "config.json"), cfg)
	code, stdout, stderr, _ := e2eRunLookout(t, dir, time.Minute, "model", "check", bad)
	want := "lookout: model " + bad + ": architecture vision-encoder-decoder with a donut-swin encoder and a mbart decoder is not supported " +
		"(lookout runs VisionEncoderDecoder with encoders vit, deit, beit, swin and decoders gpt2, trocr, bart, mbart, bert, roberta; see docs/MODELS.md)\n"
	if code != 1 || stderr != want || stdout != "" {
		t.Errorf("model check of a donut-swin + mbart folder: exit %d, stderr %q, want %q", code, stderr, want)
	}
}
