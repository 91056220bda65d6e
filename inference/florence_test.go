package inference

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

// florenceGolden is testdata/golden/tiny-florence2.json (lookout_train florence golden).
type florenceGolden struct {
	ModelDir string `json:"model_dir"`
	Prompts  map[string]struct {
		Text     string  `json:"text"`
		InputIDs []int64 `json:"input_ids"`
	} `json:"prompts"`
	Images []struct {
		File  string `json:"file"`
		Size  [2]int `json:"size"`
		Tasks []struct {
			Task  string `json:"task"`
			Cases []struct {
				Name   string          `json:"name"`
				Kwargs json.RawMessage `json:"kwargs"`
				IDs    []int64         `json:"ids"`
				Text   string          `json:"text"`
				Post   json.RawMessage `json:"post"`
			} `json:"cases"`
		} `json:"tasks"`
	} `json:"images"`
	Crafted []struct {
		Text string          `json:"text"`
		Size [2]int          `json:"size"`
		Post json.RawMessage `json:"post"`
		Pure string          `json:"pure"`
	} `json:"crafted"`
}

type odPost struct {
	Bboxes [][4]int `json:"bboxes"`
	Labels []string `json:"labels"`
}

func loadFlorenceGolden(t *testing.T) florenceGolden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "testdata", "golden", "tiny-florence2.json"))
	if err != nil {
		t.Fatalf("florence golden: %v (regenerate with scripts/golden.sh)", err)
	}
	var g florenceGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func objectsOf(p odPost) []Object {
	var out []Object
	for i, b := range p.Bboxes {
		out = append(out, Object{Label: p.Labels[i], Box: b})
	}
	return out
}

// TestFlorencePostProcessCrafted checks the <OD> box parsing and the pure-text
// answer against Florence2Processor.post_process_generation on crafted texts
// (bins at the edges, odd image sizes, labels with spaces, non-ASCII, newlines).
func TestFlorencePostProcessCrafted(t *testing.T) {
	g := loadFlorenceGolden(t)
	if len(g.Crafted) == 0 {
		t.Fatal("golden has no crafted cases")
	}
	for _, c := range g.Crafted {
		var want odPost
		if err := json.Unmarshal(c.Post, &want); err != nil {
			t.Fatal(err)
		}
		got := florenceObjects(c.Text, c.Size[0], c.Size[1])
		if !slices.Equal(got, objectsOf(want)) {
			t.Errorf("%q at %v: objects %v, transformers %v", c.Text, c.Size, got, objectsOf(want))
		}
		if p := florencePureText(c.Text); p != c.Pure {
			t.Errorf("%q: pure text %q, transformers %q", c.Text, p, c.Pure)
		}
	}
}

// TestFlorenceGolden checks token ids and post-processed answers of the tiny
// Florence-2 against transformers generate() for every task, image and case.
func TestFlorenceGolden(t *testing.T) {
	g := loadFlorenceGolden(t)
	m := loadShared(t, filepath.Join(repoRoot(t), g.ModelDir))
	if a := m.Info().Architecture; a != "florence2" {
		t.Fatalf("architecture %q, want florence2", a)
	}
	for task, p := range g.Prompts {
		if got := m.fl.prompts[task]; !slices.Equal(got, p.InputIDs) {
			t.Errorf("prompt %s: ids %v, transformers %v", task, got, p.InputIDs)
		}
	}
	var runs, boxes int
	for _, im := range g.Images {
		img := readImage(t, filepath.Join(repoRoot(t), "testdata", "golden", im.File))
		defer img.Close()
		for _, tk := range im.Tasks {
			for _, c := range tk.Cases {
				t.Run(filepath.Base(im.File)+"/"+tk.Task+"/"+c.Name, func(t *testing.T) {
					var over GenerationOptions
					if err := json.Unmarshal(c.Kwargs, &over); err != nil {
						t.Fatal(err)
					}
					res, err := m.CaptionTask(bg, []gocv.Mat{img}, tk.Task, &over)
					if err != nil {
						t.Fatal(err)
					}
					r := res[0]
					runs++
					if want := trimGolden(c.IDs, 2); !equalIDs(r.Tokens, want) {
						t.Errorf("tokens %v, transformers %v", r.Tokens, want)
					}
					checkFlorenceAnswer(t, tk.Task, r, c.Post)
					boxes += len(r.Objects)
				})
			}
		}
	}
	t.Logf("%d generate runs equal, %d boxes", runs, boxes)
}

func checkFlorenceAnswer(t *testing.T, task string, r Result, post json.RawMessage) {
	t.Helper()
	switch task {
	case TaskOD:
		var want odPost
		if err := json.Unmarshal(post, &want); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Objects, objectsOf(want)) {
			t.Errorf("objects %v, transformers %v", r.Objects, objectsOf(want))
		}
	default:
		var want string
		if err := json.Unmarshal(post, &want); err != nil {
			t.Fatal(err)
		}
		got := r.Caption
		if task == TaskOCR {
			got = r.OCR
		}
		if got != want {
			t.Errorf("answer %q, transformers %q", got, want)
		}
	}
}

// BenchmarkFlorence is one <OD> caption of a golden image with beam 3 (the
// Florence-2 defaults' search), on the tiny fixture.
func BenchmarkFlorence(b *testing.B) {
	dir := filepath.Join(repoRoot(b), "testdata", "models", "tiny-florence2")
	m := loadShared(b, dir)
	img := readImage(b, filepath.Join(repoRoot(b), "testdata", "golden", "images", "shapes_96x54.png"))
	defer img.Close()
	beams := 3
	over := &GenerationOptions{NumBeams: &beams}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.CaptionTask(bg, []gocv.Mat{img}, TaskOD, over); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(m.SessionTime().Nanoseconds())/float64(b.N), "ort-ns/op")
}

// TestParseFlorenceConfig: both spellings of the text model load; other text
// models and broken sizes are refused naming the field.
func TestParseFlorenceConfig(t *testing.T) {
	base := `{"model_type":"florence2","text_config":{"model_type":%q,"vocab_size":51289,"d_model":768,"decoder_layers":6,"decoder_attention_heads":%d,"max_position_embeddings":1024,"eos_token_id":2,"decoder_start_token_id":2}}`
	for _, c := range []struct {
		typ   string
		heads int
		err   string
	}{
		{"bart", 12, ""},
		{"florence2_language", 12, ""},
		{"t5", 12, "text_config.model_type"},
		{"bart", 7, "text_config.d_model 768 is not a positive multiple of decoder_attention_heads 7"},
	} {
		cfg, _, err := parseFlorenceConfig([]byte(fmt.Sprintf(base, c.typ, c.heads)))
		if c.err == "" {
			if err != nil || cfg.Decoder.NLayer != 6 || cfg.Decoder.VocabSize != 51289 {
				t.Errorf("%s: %v %+v", c.typ, err, cfg)
			}
		} else if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s heads %d: error %v, want %q", c.typ, c.heads, err, c.err)
		}
	}
}

// TestFlorenceLoadErrors: a missing graph, an unknown task and a task on a
// VisionEncoderDecoder folder are one line naming the file or the option.
func TestFlorenceLoadErrors(t *testing.T) {
	requireORT(t)
	src := filepath.Join(repoRoot(t), "testdata", "models", "tiny-florence2")
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, Options{Task: "<DETECT>"}); err == nil || !strings.Contains(err.Error(), `task "<DETECT>" is not supported; use one of <CAPTION>`) {
		t.Errorf("unknown task: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "onnx", fileFlEmbed)); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "onnx") + ": embed_tokens.onnx: missing; a Florence-2 folder holds"
	if _, err := Load(dir, Options{}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("missing graph: %v, want %q", err, want)
	}
	ved := filepath.Join(repoRoot(t), "testdata", "models", "tiny-vit-gpt2")
	if _, err := Load(ved, Options{Task: TaskOD}); err == nil || !strings.Contains(err.Error(), "task <OD> needs a Florence-2 model") {
		t.Errorf("task on a ViT model: %v", err)
	}
	if arch, ok, err := Architecture(ved); arch != "vision-encoder-decoder" || !ok || err != nil {
		t.Errorf("Architecture(tiny-vit-gpt2) = %q %v %v", arch, ok, err)
	}
}
