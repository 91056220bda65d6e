package inference

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"image"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"gocv.io/x/gocv"
)

// repoRoot is the folder holding go.mod above the package.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test folder")
		}
		dir = parent
	}
}

// requireORT fails (never skips) when the ONNX Runtime library is missing.
func requireORT(t testing.TB) {
	t.Helper()
	if _, err := ResolveLibraryPath(""); err != nil {
		t.Fatalf("ONNX Runtime is required: %v (run scripts/ort.sh from the repo root)", err)
	}
}

func tinyDir(t testing.TB) string {
	d := filepath.Join(repoRoot(t), "testdata", "models", "tiny-vit-gpt2")
	if _, err := os.Stat(filepath.Join(d, fileEncoder)); err != nil {
		t.Fatalf("tiny fixture missing at %s: %v (regenerate with scripts/golden.sh)", d, err)
	}
	return d
}

var (
	sharedMu     sync.Mutex
	sharedModels = map[string]*Model{}
)

// loadShared loads a model once per test binary.
func loadShared(t testing.TB, dir string) *Model {
	t.Helper()
	requireORT(t)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if m, ok := sharedModels[dir]; ok {
		return m
	}
	m, err := Load(dir, Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatalf("Load(%s): %v", dir, err)
	}
	sharedModels[dir] = m
	return m
}

type goldenStats struct {
	File   string    `json:"file"`
	Shape  []int     `json:"shape"`
	SHA256 string    `json:"sha256"`
	Mean   float64   `json:"mean"`
	Sum    float64   `json:"sum"`
	First  []float32 `json:"first"`
}

type goldenCase struct {
	Name      string          `json:"name"`
	Kwargs    json.RawMessage `json:"kwargs"`
	Sequences [][]int64       `json:"sequences"`
	Texts     []string        `json:"texts"`
	Scores    []float64       `json:"sequences_scores"`
}

type goldenImage struct {
	Name        string      `json:"name"`
	File        string      `json:"file"`
	PixelValues goldenStats `json:"pixel_values"`
	Encoder     goldenStats `json:"encoder_last_hidden_state"`
	FirstLogits struct {
		All    []float32 `json:"all"`
		Argmax int       `json:"argmax"`
	} `json:"first_step_logits"`
	Cases []goldenCase `json:"cases"`
	// TruthCaption is the scene's ground truth for synthetic frames (null for fixed images).
	TruthCaption *string `json:"truth_caption"`
}

type goldenFile struct {
	Model    string        `json:"model"`
	ModelDir string        `json:"model_dir"`
	EOS      int64         `json:"eos_token_id"`
	Images   []goldenImage `json:"images"`
	Batch    struct {
		Kwargs    json.RawMessage `json:"kwargs"`
		Images    []string        `json:"images"`
		Sequences [][]int64       `json:"sequences"`
		Texts     []string        `json:"texts"`
	} `json:"batch"`
	dir string
}

func loadGolden(t testing.TB, name string) *goldenFile {
	t.Helper()
	p := filepath.Join(repoRoot(t), "testdata", "golden", name+".json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("golden file: %v (regenerate with scripts/golden.sh)", err)
	}
	var g goldenFile
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("golden file %s: %v", p, err)
	}
	g.dir = filepath.Dir(p)
	return &g
}

func (g *goldenFile) path(rel string) string { return filepath.Join(g.dir, rel) }

func readImage(t testing.TB, path string) gocv.Mat {
	t.Helper()
	m := gocv.IMRead(path, gocv.IMReadColor)
	if m.Empty() {
		t.Fatalf("cannot read image %s", path)
	}
	return m
}

func readF32(t testing.TB, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// trimGolden turns a golden row (start token, tokens, eos, pads) into generated tokens through eos.
func trimGolden(row []int64, eos int64) []int64 {
	gen := row[1:]
	for i, t := range gen {
		if t == eos {
			return gen[:i+1]
		}
	}
	return gen
}

// firstStep runs preprocessing, the encoder and one decoder step on one image,
// returning pixel values, encoder states and the raw step-0 logits.
func (m *Model) firstStep(img gocv.Mat) (pix, enc, logits []float32, err error) {
	ws := &workspace{s: m.sets[0]}
	if err := m.preprocess(ws, []gocv.Mat{img}); err != nil {
		return nil, nil, nil, err
	}
	if err := m.encode(ws, 1); err != nil {
		return nil, nil, nil, err
	}
	d, done := m.newStepper(ws, 1, 1, 2)
	defer done()
	l, err := d.step([]int64{m.gen.DecoderStartToken})
	if err != nil {
		return nil, nil, nil, err
	}
	return append([]float32(nil), ws.pixels...), append([]float32(nil), ws.enc...), append([]float32(nil), l...), nil
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var bg = context.Background()

func imagePoint(w, h int) image.Point { return image.Pt(w, h) }
