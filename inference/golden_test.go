package inference

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

// testGolden checks a model against transformers generate() golden outputs:
// preprocessing, first-step logits, and token ids of every generation case.
func testGolden(t *testing.T, name, dirOverride string) {
	g := loadGolden(t, name)
	dir := filepath.Join(repoRoot(t), g.ModelDir)
	if dirOverride != "" {
		dir = dirOverride
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("model for golden %s: %v", name, err)
	}
	m := loadShared(t, dir)
	var worstPix, sumPix float64
	var nPix int
	for _, im := range g.Images {
		t.Run(im.Name, func(t *testing.T) {
			img := readImage(t, g.path(im.File))
			defer img.Close()
			pix, _, logits, err := m.firstStep(img)
			if err != nil {
				t.Fatal(err)
			}
			want := readF32(t, g.path(im.PixelValues.File))
			if len(want) != len(pix) {
				t.Fatalf("pixel_values: %d values, golden %d", len(pix), len(want))
			}
			var mad, maxd float64
			for i := range want {
				d := math.Abs(float64(pix[i] - want[i]))
				mad += d
				maxd = math.Max(maxd, d)
			}
			worstPix = math.Max(worstPix, maxd)
			sumPix += mad
			nPix += len(want)
			mad /= float64(len(want))
			t.Logf("preprocess vs transformers: mean abs diff %.3g, max %.3g", mad, maxd)
			if mad > 1e-3 {
				t.Errorf("preprocess mean abs diff %.3g > 1e-3", mad)
			}
			var maxl float64
			for i, w := range im.FirstLogits.All {
				maxl = math.Max(maxl, math.Abs(float64(logits[i]-w)))
			}
			t.Logf("first-step logits max abs diff %.3g", maxl)
			if maxl > 1e-4 {
				t.Errorf("first-step logits differ by %.3g > 1e-4", maxl)
			}
			if im.TruthCaption != nil {
				res, err := m.Caption(bg, []gocv.Mat{img})
				if err != nil {
					t.Fatal(err)
				}
				if res[0].Caption != *im.TruthCaption {
					t.Errorf("caption %q, scene truth %q", res[0].Caption, *im.TruthCaption)
				}
				if m.attrs != nil && len(res[0].Attributes) == 0 {
					t.Errorf("model has attribute heads but the result has no attributes")
				}
				t.Logf("caption %q attributes %v", res[0].Caption, res[0].Attributes)
			}
			for _, c := range im.Cases {
				t.Run(c.Name, func(t *testing.T) {
					var over GenerationOptions
					if err := json.Unmarshal(c.Kwargs, &over); err != nil {
						t.Fatalf("kwargs %s: %v", c.Kwargs, err)
					}
					res, err := m.CaptionWith(bg, []gocv.Mat{img}, &over)
					if err != nil {
						t.Fatal(err)
					}
					r := res[0]
					got := [][]int64{r.Tokens}
					texts := []string{r.Caption}
					for _, a := range r.Alternatives {
						got = append(got, a.Tokens)
						texts = append(texts, a.Caption)
					}
					if len(got) != len(c.Sequences) {
						t.Fatalf("%d sequences, golden %d", len(got), len(c.Sequences))
					}
					for i, row := range c.Sequences {
						want := trimGolden(row, g.EOS)
						if !equalIDs(got[i], want) {
							t.Errorf("sequence %d: got %v, transformers %v", i, got[i], want)
						}
						if texts[i] != c.Texts[i] {
							t.Errorf("text %d: got %q, transformers %q", i, texts[i], c.Texts[i])
						}
					}
					if len(c.Scores) > 0 {
						// The best beam's score from its mean log-prob: sum / len**length_penalty.
						lp := 1.0
						if over.LengthPenalty != nil {
							lp = *over.LengthPenalty
						}
						n := float64(len(r.Tokens))
						best := r.MeanLogProb * n / math.Pow(n, lp)
						if d := math.Abs(best - c.Scores[0]); d > 1e-3 {
							t.Errorf("best beam score %v, transformers %v", best, c.Scores[0])
						}
						for i, a := range r.Alternatives {
							if d := math.Abs(a.Score - c.Scores[i+1]); d > 1e-3 {
								t.Errorf("alternative %d score %v, transformers %v", i, a.Score, c.Scores[i+1])
							}
						}
					}
					if r.MeanLogProb > 0 || math.IsNaN(r.MeanLogProb) {
						t.Errorf("confidence %v is not a mean log-probability", r.MeanLogProb)
					}
				})
			}
		})
	}
	if nPix > 0 {
		t.Logf("%s preprocessing over %d images: mean abs diff %.3g, max abs diff %.3g", name, len(g.Images), sumPix/float64(nPix), worstPix)
	}
	t.Run("batch", func(t *testing.T) {
		var over GenerationOptions
		if err := json.Unmarshal(g.Batch.Kwargs, &over); err != nil {
			t.Fatal(err)
		}
		byName := map[string]string{}
		for _, im := range g.Images {
			byName[im.Name] = im.File
		}
		var imgs []gocv.Mat
		for _, n := range g.Batch.Images {
			img := readImage(t, g.path(byName[n]))
			defer img.Close()
			imgs = append(imgs, img)
		}
		res, err := m.CaptionWith(bg, imgs, &over)
		if err != nil {
			t.Fatal(err)
		}
		for i, row := range g.Batch.Sequences {
			if want := trimGolden(row, g.EOS); !equalIDs(res[i].Tokens, want) {
				t.Errorf("batch row %d (%s): got %v, transformers %v", i, g.Batch.Images[i], res[i].Tokens, want)
			}
			if res[i].Caption != g.Batch.Texts[i] {
				t.Errorf("batch row %d text %q, transformers %q", i, res[i].Caption, g.Batch.Texts[i])
			}
		}
	})
}

func TestGoldenTiny(t *testing.T) { testGolden(t, "tiny-vit-gpt2", "") }

// TestGoldenFamilies: one tiny random fixture per VisionEncoderDecoder family
// (python -m lookout_train families; docs/MODELS.md), each against
// transformers generate() on its PyTorch checkpoint, token for token: BEiT +
// GPT-2 (byte-level BPE, self-attention cache), DeiT + TrOCR (byte-level BPE,
// self + cross-attention cache), Swin + TrOCR (SentencePiece Unigram), Swin +
// mBART (Unigram, Donut's pairing, self + cross-attention cache), ViT +
// BERT (WordPiece, no cache), DeiT + RoBERTa (byte-level BPE, no cache).
func TestGoldenFamilies(t *testing.T) {
	for _, f := range []string{"beit-gpt2", "deit-trocr", "swin-trocr", "swin-mbart", "vit-bert", "deit-roberta"} {
		t.Run(f, func(t *testing.T) { testGolden(t, "tiny-"+f, "") })
	}
}

// TestGoldenSplitDecoder checks the fallback layout (decoder_model.onnx +
// decoder_with_past_model.onnx, no merged decoder) against the same golden outputs.
func TestGoldenSplitDecoder(t *testing.T) {
	d := copyDir(t, tinyDir(t))
	if err := os.Remove(filepath.Join(d, fileMerged)); err != nil {
		t.Fatal(err)
	}
	tinySplitFiles(t, d)
	m := loadShared(t, d)
	if m.merged || m.sets[0].decoder0 == nil {
		t.Fatal("split layout not detected")
	}
	testGolden(t, "tiny-vit-gpt2", d)
}

// tinySplitFiles copies the tiny fixture's split decoder files into d.
func tinySplitFiles(t *testing.T, d string) {
	for _, f := range []string{fileDecoder, fileDecoderPast} {
		b, err := os.ReadFile(filepath.Join("testdata", "tiny-split", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDecoderChoice: a folder with both layouts (as optimum's default export leaves it) loads the
// merged decoder under "auto" and the split pair under "split", with the same captions; asking for
// a layout the folder lacks is a one-line error naming the file.
func TestDecoderChoice(t *testing.T) {
	requireORT(t)
	both := copyDir(t, tinyDir(t))
	tinySplitFiles(t, both)
	g := loadGolden(t, "tiny-vit-gpt2")
	var captions [2][]string
	for i, choice := range []string{"auto", "split"} {
		m, err := Load(both, Options{Decoder: choice})
		if err != nil {
			t.Fatal(err)
		}
		if m.merged != (choice == "auto") {
			t.Errorf("decoder %s: merged=%v", choice, m.merged)
		}
		for _, im := range g.Images {
			img := readImage(t, g.path(im.File))
			res, err := m.Caption(context.Background(), []gocv.Mat{img})
			img.Close()
			if err != nil {
				t.Fatal(err)
			}
			captions[i] = append(captions[i], res[0].Caption)
		}
		m.Close()
	}
	if !slices.Equal(captions[0], captions[1]) {
		t.Errorf("merged captions %q, split %q", captions[0], captions[1])
	}
	onlyMerged := copyDir(t, tinyDir(t))
	onlySplit := copyDir(t, tinyDir(t))
	tinySplitFiles(t, onlySplit)
	if err := os.Remove(filepath.Join(onlySplit, fileMerged)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dir, choice, want string }{
		{onlyMerged, "split", fileDecoder},
		{onlySplit, "merged", fileMerged},
		{onlyMerged, "newest", `decoder "newest" is unknown`},
	} {
		_, err := Load(c.dir, Options{Decoder: c.choice})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("decoder %s: got %v, want one line mentioning %s", c.choice, err, c.want)
		}
	}
}

// TestGoldenDemo runs when the demo model and its golden file exist (the training
// run produces them); the tiny fixture covers CI otherwise.
func TestGoldenDemo(t *testing.T) {
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "testdata", "golden", "demo.json")); err != nil {
		t.Skip("testdata/golden/demo.json not generated yet (training helper)")
	}
	testGolden(t, "demo", "")
}

// TestFastResize measures the OpenCV resize option against transformers' pixels
// and checks the demo model still captions every golden frame like transformers.
func TestFastResize(t *testing.T) {
	requireORT(t)
	root := repoRoot(t)
	name := "demo"
	if _, err := os.Stat(filepath.Join(root, "testdata", "golden", "demo.json")); err != nil {
		name = "tiny-vit-gpt2"
	}
	g := loadGolden(t, name)
	m, err := Load(filepath.Join(root, g.ModelDir), Options{Resize: "fast", IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := Load(filepath.Join(root, g.ModelDir), Options{Resize: "bicubic"}); err == nil || !strings.Contains(err.Error(), "resize") {
		t.Errorf("unknown resize option: got %v", err)
	}
	for _, im := range g.Images {
		img := readImage(t, g.path(im.File))
		pix, _, _, err := m.firstStep(img)
		if err != nil {
			t.Fatal(err)
		}
		want := readF32(t, g.path(im.PixelValues.File))
		var mad float64
		for i := range want {
			mad += math.Abs(float64(pix[i] - want[i]))
		}
		mad /= float64(len(want))
		res, err := m.Caption(bg, []gocv.Mat{img})
		img.Close()
		if err != nil {
			t.Fatal(err)
		}
		same := equalIDs(res[0].Tokens, trimGolden(im.Cases[0].Sequences[0], g.EOS))
		t.Logf("%s: fast resize mean abs diff %.4f (in normalised units), greedy caption equal: %v", im.Name, mad, same)
		if mad > 0.1 {
			t.Errorf("%s: fast resize mean abs diff %.3f > 0.1", im.Name, mad)
		}
		// The trained demo model must keep its captions on real frames.
		if name == "demo" && im.TruthCaption != nil && !same {
			t.Errorf("%s: fast resize caption %q differs from transformers %q", im.Name, res[0].Caption, im.Cases[0].Texts[0])
		}
	}
}
