package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"
)

// copyDir copies a model folder's regular files into a fresh temp folder.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
	return dst
}

func editJSON(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s does not contain %q", path, old)
	}
	if err := os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadBadFolders(t *testing.T) {
	requireORT(t)
	src := tinyDir(t)
	truncate := func(name string) func(t *testing.T, d string) {
		return func(t *testing.T, d string) {
			p := filepath.Join(d, name)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b[:len(b)/3], 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	remove := func(name string) func(t *testing.T, d string) {
		return func(t *testing.T, d string) {
			if err := os.Remove(filepath.Join(d, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	write := func(name, content string) func(t *testing.T, d string) {
		return func(t *testing.T, d string) {
			if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name   string
		break_ func(t *testing.T, d string)
		want   []string // substrings of the one-line error
	}{
		{"missing encoder", remove(fileEncoder), []string{fileEncoder, "missing"}},
		{"missing decoder", remove(fileMerged), []string{fileMerged, "missing"}},
		{"missing tokenizer", remove(fileTokenizer), []string{fileTokenizer, "missing"}},
		{"missing config", remove(fileConfig), []string{fileConfig, "missing"}},
		{"missing preprocessor", remove(filePreprocessor), []string{filePreprocessor, "missing"}},
		{"truncated encoder", truncate(fileEncoder), []string{fileEncoder, "not a loadable ONNX model"}},
		{"truncated decoder", truncate(fileMerged), []string{fileMerged, "not a loadable ONNX model"}},
		{"empty decoder", write(fileMerged, ""), []string{fileMerged, "not a loadable ONNX model"}},
		{"single-model layout", func(t *testing.T, d string) {
			if err := os.Rename(filepath.Join(d, fileEncoder), filepath.Join(d, "model.onnx")); err != nil {
				t.Fatal(err)
			}
		}, []string{"model.onnx", "not image-to-text-with-past"}},
		{"decoder without past", func(t *testing.T, d string) {
			if err := os.Rename(filepath.Join(d, fileMerged), filepath.Join(d, fileDecoder)); err != nil {
				t.Fatal(err)
			}
		}, []string{fileDecoderPast, "no KV cache"}},
		{"encoder as decoder", func(t *testing.T, d string) {
			b, _ := os.ReadFile(filepath.Join(d, fileEncoder))
			os.WriteFile(filepath.Join(d, fileMerged), b, 0o644)
		}, []string{fileMerged, "input_ids"}},
		{"bad config JSON", write(fileConfig, `{"model_type": "vision-encoder-decoder",`), []string{fileConfig, "JSON"}},
		{"bad generation JSON", write(fileGeneration, `{"num_beams": "three"}`), []string{fileGeneration, "num_beams"}},
		{"bad preprocessor JSON", write(filePreprocessor, `[1,2]`), []string{filePreprocessor}},
		{"bad tokenizer JSON", write(fileTokenizer, `{"model": {"type": "BPE"`), []string{fileTokenizer}},
		{"wrong model type", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, fileConfig), `"model_type": "vision-encoder-decoder"`, `"model_type": "bert"`)
		}, []string{fileConfig, "model_type"}},
		{"vocab mismatch", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, fileConfig), `"vocab_size": 320`, `"vocab_size": 321`)
		}, []string{fileTokenizer, "321"}},
		{"layer count mismatch", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, fileConfig), `"n_layer": 2`, `"n_layer": 3`)
		}, []string{fileMerged, "past_key_values.2.key"}},
		{"image size mismatch", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, filePreprocessor), `"height": 32`, `"height": 48`)
		}, []string{filePreprocessor, "pixel_values"}},
		{"attributes without model", write(fileAttrJSON, `{"attributes":[{"name":"x","classes":["a","b"]}]}`), []string{fileAttrModel, "missing"}},
		{"bad eos", write(fileGeneration, `{"eos_token_id": 999, "max_length": 20}`), []string{fileGeneration, "eos_token_id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := copyDir(t, src)
			c.break_(t, d)
			m, err := Load(d, Options{})
			if err == nil {
				m.Close()
				t.Fatal("Load succeeded on a broken folder")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			t.Log(msg)
		})
	}
	t.Run("not a directory", func(t *testing.T) {
		_, err := Load(filepath.Join(src, fileConfig), Options{})
		if err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("absent folder", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope"), Options{})
		if err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestLibraryPath(t *testing.T) {
	t.Setenv(EnvLibraryPath, "/nonexistent/libonnxruntime.so")
	_, err := ResolveLibraryPath("")
	if err == nil || !strings.Contains(err.Error(), EnvLibraryPath) || !strings.Contains(err.Error(), "scripts/ort.sh") {
		t.Fatalf("bad env path: got %v", err)
	}
	_, err = ResolveLibraryPath(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "directory") {
		t.Fatalf("directory as library: got %v", err)
	}
	t.Setenv(EnvLibraryPath, "")
	t.Chdir(t.TempDir())
	_, err = ResolveLibraryPath("")
	if err == nil || !strings.Contains(err.Error(), "run scripts/ort.sh") {
		t.Fatalf("no library anywhere: got %v", err)
	}
}

func TestProviders(t *testing.T) {
	dir := tinyDir(t)
	requireORT(t)
	_, err := Load(dir, Options{Provider: "tpu"})
	if err == nil || !strings.Contains(err.Error(), `provider "tpu" is unknown`) {
		t.Fatalf("unknown provider: got %v", err)
	}
	_, err = Load(dir, Options{GraphOptimization: "max"})
	if err == nil || !strings.Contains(err.Error(), "graph_optimization") {
		t.Fatalf("bad optimisation level: got %v", err)
	}
	if hasGPU() {
		t.Log("GPU present: fallback path not exercised here (see TestGPU)")
		return
	}
	// The CPU-only library has no CUDA provider: a clear error, or a logged fallback.
	_, err = Load(dir, Options{Provider: "cuda"})
	if err == nil || !strings.Contains(err.Error(), "cuda") {
		t.Fatalf("cuda on the CPU library: got %v", err)
	}
	var logs bytes.Buffer
	m, err := Load(dir, Options{Provider: "cuda", AllowCPUFallback: true, Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatalf("fallback: %v", err)
	}
	defer m.Close()
	if m.Provider() != "cpu" || !strings.Contains(logs.String(), "falling back to cpu") {
		t.Fatalf("provider %q, logs %q", m.Provider(), logs.String())
	}
}

func hasGPU() bool {
	_, err := os.Stat("/dev/nvidia0")
	return err == nil
}

// TestGPU captions the golden images on CUDA and compares with CPU. It needs a GPU
// and an onnxruntime-gpu library in $LOOKOUT_ORT_LIB.
func TestGPU(t *testing.T) {
	if !hasGPU() {
		t.Skip("no GPU (/dev/nvidia0)")
	}
	requireORT(t)
	dir := tinyDir(t)
	m, err := Load(dir, Options{Provider: "cuda"})
	if err != nil {
		t.Fatalf("cuda provider: %v (set %s to an onnxruntime-gpu 1.24 library)", err, EnvLibraryPath)
	}
	defer m.Close()
	cpu := loadShared(t, dir)
	g := loadGolden(t, "tiny-vit-gpt2")
	for _, im := range g.Images {
		img := readImage(t, g.path(im.File))
		a, err := m.Caption(bg, []gocv.Mat{img})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := cpu.Caption(bg, []gocv.Mat{img})
		img.Close()
		if !equalIDs(a[0].Tokens, b[0].Tokens) {
			t.Errorf("%s: cuda %v, cpu %v", im.Name, a[0].Tokens, b[0].Tokens)
		}
	}
}

func TestConcurrentCaptions(t *testing.T) {
	t.Run("shared", func(t *testing.T) { testConcurrentCaptions(t, loadShared(t, tinyDir(t))) })
	t.Run("sessions3", func(t *testing.T) {
		requireORT(t)
		m, err := Load(tinyDir(t), Options{IntraOpThreads: 1, Sessions: 3})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if len(m.sets) != 3 {
			t.Fatalf("%d session sets, want 3", len(m.sets))
		}
		testConcurrentCaptions(t, m)
	})
}

// TestSessionSets: calls take a free copy of the sessions each, share one
// round robin when none is free, and give theirs back.
func TestSessionSets(t *testing.T) {
	requireORT(t)
	m, err := Load(tinyDir(t), Options{IntraOpThreads: 1, Sessions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, sa := m.takeSessions()
	b, sb := m.takeSessions()
	if sa || sb || a == b || a.encoder == b.encoder || a.decoder == b.decoder {
		t.Fatalf("two takes of two sets: shared %v %v, same set %v", sa, sb, a == b)
	}
	c, sc := m.takeSessions()
	if !sc || (c != a && c != b) {
		t.Fatalf("a third take with none free: shared %v, one of the two sets %v", sc, c == a || c == b)
	}
	m.putSessions(b)
	if d, sd := m.takeSessions(); sd || d != b {
		t.Fatalf("after b came back: got shared %v, b %v", sd, d == b)
	}
}

func testConcurrentCaptions(t *testing.T, m *Model) {
	g := loadGolden(t, "tiny-vit-gpt2")
	var imgs []gocv.Mat
	var want [][]int64
	for _, im := range g.Images {
		img := readImage(t, g.path(im.File))
		defer img.Close()
		imgs = append(imgs, img)
		want = append(want, trimGolden(im.Cases[0].Sequences[0], g.EOS))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for it := 0; it < 5; it++ {
				// Rotate batches so goroutines use different sizes and orders.
				n := 1 + (w+it)%len(imgs)
				batch := make([]gocv.Mat, n)
				idx := make([]int, n)
				for i := range batch {
					idx[i] = (w + i) % len(imgs)
					batch[i] = imgs[idx[i]]
				}
				res, err := m.Caption(bg, batch)
				if err != nil {
					errs <- err
					return
				}
				for i, r := range res {
					if !equalIDs(r.Tokens, want[idx[i]]) {
						errs <- errors.New("concurrent caption differs from golden greedy")
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The calls really ran at once (they took turns on one lock before).
	if p := m.PeakConcurrentRuns(); p < 2 {
		t.Errorf("at most %d ONNX Runtime run in flight across 6 goroutines, want concurrent runs", p)
	}
	t.Logf("peak concurrent ONNX Runtime runs: %d", m.PeakConcurrentRuns())
}

func TestCaptionContextAndClose(t *testing.T) {
	requireORT(t)
	m, err := Load(tinyDir(t), Options{Name: "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Name() != "tiny" || len(m.Digest()) != 16 {
		t.Errorf("name %q digest %q", m.Name(), m.Digest())
	}
	img := gocv.NewMatWithSize(50, 70, gocv.MatTypeCV8UC3)
	defer img.Close()
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := m.Caption(ctx, []gocv.Mat{img}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v", err)
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if _, err := m.Caption(bg, []gocv.Mat{img, empty}); err == nil || !strings.Contains(err.Error(), "image 1") {
		t.Errorf("empty image: got %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Caption(bg, []gocv.Mat{img}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: got %v", err)
	}
}

func TestDigestStable(t *testing.T) {
	requireORT(t)
	src := tinyDir(t)
	a := loadShared(t, src)
	d := copyDir(t, src)
	b, err := Load(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Digest() != b.Digest() {
		t.Errorf("same files, digests %s vs %s", a.Digest(), b.Digest())
	}
	// Change one weight byte: the digest must change.
	p := filepath.Join(d, fileEncoder)
	raw, _ := os.ReadFile(p)
	raw[len(raw)-5] ^= 1
	os.WriteFile(p, raw, 0o644)
	c, err := Load(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Digest() == a.Digest() {
		t.Error("digest did not change with the weights")
	}
}

// TestAttributes runs attribute heads (exported like training/lookout_train/export.py)
// on the tiny fixture and compares the probabilities with PyTorch's.
func TestAttributes(t *testing.T) {
	requireORT(t)
	d := copyDir(t, tinyDir(t))
	for _, f := range []string{fileAttrModel, fileAttrJSON} {
		b, err := os.ReadFile(filepath.Join("testdata", "tiny-attrs", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var expected map[string]map[string][]float64
	b, err := os.ReadFile(filepath.Join("testdata", "tiny-attrs", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &expected); err != nil {
		t.Fatal(err)
	}
	m, err := Load(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	classes := map[string][]string{"scene": {"street", "park", "indoor"}, "light": {"day", "night"}}
	g := loadGolden(t, "tiny-vit-gpt2")
	var imgs []gocv.Mat
	var names []string
	for _, im := range g.Images {
		img := readImage(t, g.path(im.File))
		defer img.Close()
		imgs = append(imgs, img)
		names = append(names, filepath.Base(im.File))
	}
	res, err := m.Caption(bg, imgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		want := expected[names[i]]
		if len(r.Attributes) != 2 {
			t.Fatalf("%s: attributes %v", names[i], r.Attributes)
		}
		for attr, probs := range want {
			best := 0
			for c := range probs {
				if probs[c] > probs[best] {
					best = c
				}
			}
			got := r.Attributes[attr]
			if got.Value != classes[attr][best] || math.Abs(got.Prob-probs[best]) > 1e-5 {
				t.Errorf("%s %s: got %+v, PyTorch %s %.6f", names[i], attr, got, classes[attr][best], probs[best])
			}
		}
	}
	// A graph output missing from attributes_model.onnx is a load error naming it.
	editJSON(t, filepath.Join(d, fileAttrJSON), `"probs_light"`, `"probs_weather"`)
	if _, err := Load(d, Options{}); err == nil || !strings.Contains(err.Error(), "probs_weather") {
		t.Fatalf("bad attributes.json output: got %v", err)
	}
}

func TestGenerationOverrides(t *testing.T) {
	m := loadShared(t, tinyDir(t))
	img := gocv.NewMatWithSize(40, 60, gocv.MatTypeCV8UC3)
	defer img.Close()
	bad := []struct {
		over GenerationOptions
		want string
	}{
		{GenerationOptions{MaxLength: ptr(65)}, "n_positions"},
		{GenerationOptions{NumBeams: ptr(0)}, "num_beams"},
		{GenerationOptions{NumBeams: ptr(2), NumReturnSequences: ptr(3)}, "num_return_sequences"},
		{GenerationOptions{RepetitionPenalty: ptr(0.0)}, "repetition_penalty"},
		{GenerationOptions{MinLength: ptr(30)}, "min_length"},
	}
	for _, c := range bad {
		if _, err := m.CaptionWith(bg, []gocv.Mat{img}, &c.over); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("override %+v: got %v, want an error naming %s", c.over, err, c.want)
		}
	}
	// max_new_tokens bounds the generated tokens; min_length forbids early EOS.
	res, err := m.CaptionWith(bg, []gocv.Mat{img}, &GenerationOptions{MaxNewTokens: ptr(3)})
	if err != nil || len(res[0].Tokens) > 3 {
		t.Fatalf("max_new_tokens 3: %v %v", err, res)
	}
	res, err = m.CaptionWith(bg, []gocv.Mat{img}, &GenerationOptions{MinLength: ptr(12), NumBeams: ptr(2)})
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range res[0].Tokens[:10] {
		if tok == 0 {
			t.Fatalf("EOS at %d despite min_length 12: %v", i, res[0].Tokens)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestImageFormats: BGRA and gray frames caption like their BGR equivalents.
func TestImageFormats(t *testing.T) {
	m := loadShared(t, tinyDir(t))
	g := loadGolden(t, "tiny-vit-gpt2")
	bgr := readImage(t, g.path(g.Images[2].File))
	defer bgr.Close()
	bgra, gray, grayBGR := gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer bgra.Close()
	defer gray.Close()
	defer grayBGR.Close()
	gocv.CvtColor(bgr, &bgra, gocv.ColorBGRToBGRA)
	gocv.CvtColor(bgr, &gray, gocv.ColorBGRToGray)
	gocv.CvtColor(gray, &grayBGR, gocv.ColorGrayToBGR)
	res, err := m.Caption(bg, []gocv.Mat{bgr, bgra, gray, grayBGR})
	if err != nil {
		t.Fatal(err)
	}
	if !equalIDs(res[0].Tokens, res[1].Tokens) {
		t.Errorf("BGRA %v, BGR %v", res[1].Tokens, res[0].Tokens)
	}
	if !equalIDs(res[2].Tokens, res[3].Tokens) {
		t.Errorf("gray %v, gray as BGR %v", res[2].Tokens, res[3].Tokens)
	}
	f := gocv.NewMatWithSize(4, 4, gocv.MatTypeCV32FC3)
	defer f.Close()
	if _, err := m.Caption(bg, []gocv.Mat{f}); err == nil || !strings.Contains(err.Error(), "8-bit") {
		t.Errorf("float image: got %v", err)
	}
}

// TestLegacyGenerationInConfig: without generation_config.json, generation fields of
// config.json apply (as transformers' GenerationConfig.from_model_config does).
func TestLegacyGenerationInConfig(t *testing.T) {
	requireORT(t)
	d := copyDir(t, tinyDir(t))
	os.Remove(filepath.Join(d, fileGeneration))
	editJSON(t, filepath.Join(d, fileConfig), `"model_type": "vision-encoder-decoder"`, `"model_type": "vision-encoder-decoder", "max_length": 5, "num_beams": 2`)
	m, err := Load(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if g := m.Generation(); g.MaxLength != 5 || g.NumBeams != 2 || g.DecoderStartToken != 0 {
		t.Fatalf("settings %+v", g)
	}
}

// TestRegionOfInterest: a non-continuous Mat (a region of a frame) captions like its copy.
func TestRegionOfInterest(t *testing.T) {
	m := loadShared(t, tinyDir(t))
	g := loadGolden(t, "tiny-vit-gpt2")
	full := readImage(t, g.path(g.Images[2].File)) // 96x54
	defer full.Close()
	roi := full.Region(image.Rect(10, 5, 70, 50))
	defer roi.Close()
	if roi.IsContinuous() {
		t.Fatal("region unexpectedly continuous")
	}
	cp := roi.Clone()
	defer cp.Close()
	res, err := m.Caption(bg, []gocv.Mat{roi, cp})
	if err != nil {
		t.Fatal(err)
	}
	if !equalIDs(res[0].Tokens, res[1].Tokens) {
		t.Errorf("region %v, copy %v", res[0].Tokens, res[1].Tokens)
	}
}
