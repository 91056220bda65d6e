package inference

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

func seedFile(f *testing.F, name string) {
	dir := filepath.Join("..", "testdata", "models", "tiny-vit-gpt2")
	if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
		f.Add(b)
	}
}

func FuzzParseModelConfig(f *testing.F) {
	seedFile(f, fileConfig)
	f.Add([]byte(`{"model_type":"vision-encoder-decoder","encoder":{"model_type":"vit"},"decoder":{"model_type":"gpt2","vocab_size":5,"n_embd":4,"n_head":2,"n_layer":1},"eos_token_id":[1,2]}`))
	f.Add([]byte(`{"decoder":{"n_head":0}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseModelConfig(b)
		if err != nil {
			return
		}
		if c.Decoder.NEmbd%c.Decoder.NHead != 0 || c.Decoder.VocabSize <= 0 {
			t.Fatalf("accepted an inconsistent config: %+v", c.Decoder)
		}
		g, err := resolveGeneration(c, nil, nil)
		if err == nil && (g.DecoderStartToken < 0 || g.DecoderStartToken >= int64(c.Decoder.VocabSize)) {
			t.Fatalf("start token %d outside vocab %d", g.DecoderStartToken, c.Decoder.VocabSize)
		}
	})
}

func FuzzResolveGeneration(f *testing.F) {
	seedFile(f, fileGeneration)
	f.Add([]byte(`{"num_beams":3,"length_penalty":0.6,"early_stopping":"never","max_new_tokens":5}`))
	f.Add([]byte(`{"early_stopping":true,"eos_token_id":[0,1],"min_length":30}`))
	f.Add([]byte(`{"max_length":-1}`))
	cfg := &ModelConfig{ModelType: "vision-encoder-decoder", Decoder: DecoderConfig{VocabSize: 320, NEmbd: 32, NHead: 2, NLayer: 2}}
	zero := int64(0)
	cfg.DecoderStartTokenID = &zero
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := resolveGeneration(cfg, b, nil)
		if err != nil {
			return
		}
		if g.MaxLength < 2 || g.NumBeams < 1 || g.NumReturnSequences > g.NumBeams || g.MinLength > g.MaxLength {
			t.Fatalf("accepted invalid settings %+v", g)
		}
	})
}

func FuzzParsePreprocessConfig(f *testing.F) {
	seedFile(f, filePreprocessor)
	f.Add([]byte(`{"image_processor_type":"ViTImageProcessor","size":224,"image_mean":0.5,"image_std":[1,2,3]}`))
	f.Add([]byte(`{"feature_extractor_type":"ViTFeatureExtractor","resample":3,"size":{"height":0}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePreprocessConfig(b)
		if err != nil {
			return
		}
		if p.Height <= 0 || p.Width <= 0 || p.Std[0] == 0 {
			t.Fatalf("accepted invalid config %+v", p)
		}
		// A small resize must not panic with any accepted filter.
		pp := newPreprocessor(p)
		if p.Height*p.Width <= 64*64 {
			src := make([]uint8, 7*5*3)
			pp.run(src, 7, 5, 15, 3, make([]float32, 3*p.Height*p.Width), 2)
		}
	})
}

func FuzzParseAttributes(f *testing.F) {
	f.Add([]byte(`{"attributes":[{"name":"scene","classes":["road","park"],"output":"probs_scene"}],"input":"last_hidden_state"}`))
	f.Add([]byte(`{"attributes":[{"name":"a","classes":[]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseAttributes(b)
		if err != nil {
			return
		}
		for _, s := range a.Attributes {
			if s.Name == "" || len(s.Classes) == 0 || s.Output == "" {
				t.Fatalf("accepted invalid attribute %+v", s)
			}
		}
	})
}

func FuzzLoadTokenizer(f *testing.F) {
	seedFile(f, fileTokenizer)
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[]},"decoder":{"type":"ByteLevel"}}`))
	f.Add([]byte(`{"model":{"type":"WordPiece","vocab":{}}}`))
	f.Add([]byte(`{"pre_tokenizer":{"type":"Split","pattern":{"Regex":"(?=a)"}},"model":{"type":"BPE","vocab":{},"merges":[]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := loadTokenizer(b)
		if err != nil {
			return
		}
		if _, err := d.decode([]int64{0, 1, 2, -1, 1 << 40}); err != nil {
			t.Logf("decode error (recovered): %v", err)
		}
	})
}

// FuzzFlorenceObjects: any generated text parses without panicking, every box
// lies within the frame (bins 0..999 map inside it), labels are ASCII, and
// parseFlorenceConfig rejects or accepts without panicking.
func FuzzFlorenceObjects(f *testing.F) {
	f.Add("car<loc_0><loc_0><loc_999><loc_999>", 640, 480)
	f.Add("</s><s>a b<loc_1><loc_2><loc_3><loc_4><loc_5><loc_6><loc_7><loc_8>", 1, 1)
	f.Add("x\n<loc_10><loc_20><loc_30><loc_40>caf\u00e9<od><loc_1><loc_2><loc_3><loc_4>", 97, 55)
	f.Fuzz(func(t *testing.T, text string, w, h int) {
		if w <= 0 || h <= 0 || w > 1<<14 || h > 1<<14 {
			return
		}
		inBins := true // every <loc_N> has N <= 999: then every box lies inside the frame
		for _, m := range regexp.MustCompile(`<loc_(\d+)>`).FindAllStringSubmatch(text, -1) {
			if n, err := strconv.Atoi(m[1]); err != nil || n > 999 {
				inBins = false
			}
		}
		for _, o := range florenceObjects(text, w, h) {
			for _, r := range o.Label {
				if r >= 128 {
					t.Fatalf("label %q is not ASCII", o.Label)
				}
			}
			b := o.Box
			if inBins && (b[0] < 0 || b[1] < 0 || b[2] < 0 || b[3] < 0 || b[0] > w || b[2] > w || b[1] > h || b[3] > h) {
				t.Fatalf("box %v outside %dx%d for %q", b, w, h, text)
			}
		}
		_ = florencePureText(text)
		_, _, _ = parseFlorenceConfig([]byte(text))
	})
}

// FuzzParseDomainProfile: domain_profile.json comes with a model folder
// from anywhere; a bad one is an error, never a panic, and an accepted one
// matches the hidden size it was checked against.
func FuzzParseDomainProfile(f *testing.F) {
	f.Add([]byte(`{"version":1,"trained_on":"x","threshold":0.5,"mean":[0,0,0],"components":[[1,0,0]]}`), 3)
	f.Add([]byte(`{"version":1,"trained_on":"x","threshold":0.5,"mean":[0,0],"components":[[1,0,0]]}`), 3)
	f.Add([]byte(`{"version":2}`), 4)
	f.Add([]byte(`not json`), 1)
	f.Fuzz(func(t *testing.T, data []byte, hidden int) {
		if hidden < 0 || hidden > 64 {
			return
		}
		p, err := parseDomainProfile(data, hidden)
		if err != nil {
			return
		}
		if len(p.Mean) != hidden || len(p.Components) == 0 || len(p.Components) >= hidden || !(p.Threshold > 0) {
			t.Fatalf("accepted an inconsistent profile for hidden %d: %d mean values, %d components, threshold %v",
				hidden, len(p.Mean), len(p.Components), p.Threshold)
		}
	})
}
