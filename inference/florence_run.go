package inference

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"gocv.io/x/gocv"
)

// flKVNames lists the KV inputs or outputs of Florence-2's decoder, layer-major:
// decoder key, decoder value, encoder key, encoder value.
func (m *Model) flKVNames(prefix string) []string {
	var out []string
	for i := 0; i < m.layers; i++ {
		for _, part := range []string{"decoder", "encoder"} {
			out = append(out, fmt.Sprintf("%s.%d.%s.key", prefix, i, part), fmt.Sprintf("%s.%d.%s.value", prefix, i, part))
		}
	}
	return out
}

// checkFlorenceGraphs validates the four graphs against the configs.
func (m *Model) checkFlorenceGraphs() error {
	fl, D := m.fl, int64(m.hidden)
	kv := func(prefix string) []ioSpec {
		var s []ioSpec
		for _, n := range m.flKVNames(prefix) {
			s = append(s, ioSpec{n, f32, []int64{-1, int64(m.heads), -1, int64(m.headDim)}})
		}
		return s
	}
	decIn := append([]ioSpec{{"inputs_embeds", f32, []int64{-1, -1, D}}, {"encoder_attention_mask", i64, []int64{-1, -1}},
		{"encoder_hidden_states", f32, []int64{-1, -1, D}}, {"use_cache_branch", bl, []int64{1}}}, kv("past_key_values")...)
	decOut := append([]ioSpec{{"logits", f32, []int64{-1, -1, int64(m.vocab)}}}, kv("present")...)
	graphs := []struct {
		file    string
		in, out []ioSpec
	}{
		{fileFlVision, []ioSpec{{"pixel_values", f32, []int64{-1, 3, int64(m.pre.Height), int64(m.pre.Width)}}}, []ioSpec{{"image_features", f32, []int64{-1, -1, D}}}},
		{fileFlEmbed, []ioSpec{{"input_ids", i64, []int64{-1, -1}}}, []ioSpec{{"inputs_embeds", f32, []int64{-1, -1, D}}}},
		{fileFlEncoder, []ioSpec{{"inputs_embeds", f32, []int64{-1, -1, D}}, {"attention_mask", i64, []int64{-1, -1}}}, []ioSpec{{"last_hidden_state", f32, []int64{-1, -1, D}}}},
		{fileFlDecoder, decIn, decOut},
	}
	for _, g := range graphs {
		in, out, err := ioInfo(fl.onnxDir, g.file)
		if err != nil {
			return err
		}
		if err := checkIO(fl.onnxDir, g.file, "input", in, g.in, nil); err != nil {
			return err
		}
		if err := checkIO(fl.onnxDir, g.file, "output", out, g.out, nil); err != nil {
			return err
		}
		fl.graphs = append(fl.graphs, GraphInfo{g.file, tensorInfos(in), tensorInfos(out)})
	}
	return nil
}

// openFlorence creates the four sessions in s with open (Model.openWith's opener).
func (m *Model) openFlorence(s *sessionSet, open func(file string, in, out []string) (*session, error)) error {
	fl := m.fl
	var err error
	rel := func(f string) string {
		r, _ := filepath.Rel(m.dir, filepath.Join(fl.onnxDir, f))
		return r
	}
	if s.vision, err = open(rel(fileFlVision), []string{"pixel_values"}, []string{"image_features"}); err != nil {
		return err
	}
	if s.embed, err = open(rel(fileFlEmbed), []string{"input_ids"}, []string{"inputs_embeds"}); err != nil {
		return err
	}
	if s.flEncoder, err = open(rel(fileFlEncoder), []string{"inputs_embeds", "attention_mask"}, []string{"last_hidden_state"}); err != nil {
		return err
	}
	in := append([]string{"inputs_embeds", "encoder_attention_mask", "encoder_hidden_states"}, m.flKVNames("past_key_values")...)
	in = append(in, "use_cache_branch")
	out := append([]string{"logits"}, m.flKVNames("present")...)
	s.flDecoder, err = open(rel(fileFlDecoder), in, out)
	return err
}

var _ TaskCaptioner = (*Model)(nil)

// SupportsTask reports whether the model runs task (Florence-2 models only).
func (m *Model) SupportsTask(task string) bool { return m.fl != nil && KnownTask(task) }

// CaptionTask runs one Florence-2 task on every image ("" = the model's
// default task). Other models ignore task unless it is set, which is an error.
func (m *Model) CaptionTask(ctx context.Context, images []gocv.Mat, task string, over *GenerationOptions) ([]Result, error) {
	if m.fl == nil {
		if task != "" {
			return nil, fmt.Errorf("model %s: task %s needs a Florence-2 model", m.name, task)
		}
		return m.CaptionWith(ctx, images, over)
	}
	if len(images) == 0 {
		return nil, nil
	}
	task, err := m.florenceTask(task)
	if err != nil {
		return nil, err
	}
	return m.withWorkspace(over, func(ws *workspace, g *GenerationSettings) ([]Result, error) {
		return m.florenceRun(ctx, ws, images, task, g)
	})
}

// florenceRun is one Florence-2 call: preprocess, encode, search, answer.
func (m *Model) florenceRun(ctx context.Context, ws *workspace, images []gocv.Mat, task string, g *GenerationSettings) ([]Result, error) {
	n := len(images)
	t0, t1, err := m.prepare(ctx, ws, images)
	if err != nil {
		return nil, err
	}
	enc, seq, err := m.florenceEncode(ws, n, task)
	if err != nil {
		return nil, err
	}
	t2 := time.Now()
	d := &flDecoder{m: m, s: ws.s, rows: n, seq: seq, enc: enc}
	hyps, err := m.search(ctx, d, n, g)
	if err != nil {
		return nil, err
	}
	t3 := time.Now()
	// An alternative that does not decode is kept, with no text.
	altText := func(ids []int64) (string, error) {
		text, _ := m.tok.decodeRaw(ids)
		return florencePureText(text), nil
	}
	out := make([]Result, n)
	for i := range out {
		r := &out[i]
		text, err := m.tok.decodeRaw(hyps[i][0].tokens)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", m.name, err)
		}
		florenceAnswer(r, task, text, images[i].Cols(), images[i].Rows())
		_ = fillHypotheses(r, hyps[i], altText) // altText never fails
		r.Timings = stageTimings(n, t0, t1, t2, t3)
	}
	return out, nil
}

// florenceEncode runs the vision encoder, embeds the task prompt, puts the
// image features before it and runs the BART encoder: [n, seq, D].
func (m *Model) florenceEncode(ws *workspace, n int, task string) ([]float32, int, error) {
	fl, D := m.fl, m.hidden
	feat, fshape, err := m.runOne(ws.s.vision, "vision encoder", func() ([]onnxValue, func(), error) {
		t, err := newTensor(ws.pixels, int64(n), 3, int64(m.pre.Height), int64(m.pre.Width))
		return []onnxValue{t}, func() { release(t) }, err
	})
	if err != nil {
		return nil, 0, err
	}
	prompt := fl.prompts[task]
	ids := make([]int64, 0, n*len(prompt))
	for i := 0; i < n; i++ {
		ids = append(ids, prompt...)
	}
	emb, _, err := m.embed(ws.s, ids, n, len(prompt))
	if err != nil {
		return nil, 0, err
	}
	N, P := int(fshape[1]), len(prompt)
	seq := N + P
	x := make([]float32, 0, n*seq*D)
	for i := 0; i < n; i++ {
		x = append(x, feat[i*N*D:(i+1)*N*D]...)
		x = append(x, emb[i*P*D:(i+1)*P*D]...)
	}
	mask := ones(n * seq)
	enc, _, err := m.runOne(ws.s.flEncoder, "encoder", func() ([]onnxValue, func(), error) {
		a, err := newTensor(x, int64(n), int64(seq), int64(D))
		if err != nil {
			return nil, func() {}, err
		}
		b, err := newTensor(mask, int64(n), int64(seq))
		return []onnxValue{a, b}, func() { release(a); destroyIf(b) }, err
	})
	return enc, seq, err
}

// embed runs embed_tokens on ids [rows, s].
func (m *Model) embed(set *sessionSet, ids []int64, rows, s int) ([]float32, []int64, error) {
	return m.runOne(set.embed, "embed_tokens", func() ([]onnxValue, func(), error) {
		t, err := newTensor(ids, int64(rows), int64(s))
		return []onnxValue{t}, func() { destroyIf(t) }, err
	})
}

// runOne runs a session with one output that ONNX Runtime allocates, and
// returns a Go copy of it with its shape.
func (m *Model) runOne(s *session, what string, inputs func() ([]onnxValue, func(), error)) ([]float32, []int64, error) {
	in, free, err := inputs()
	defer free()
	if err != nil {
		return nil, nil, fmt.Errorf("%s input: %w", what, err)
	}
	out := []onnxValue{nil}
	if err := m.runSession(s, in, out); err != nil {
		return nil, nil, fmt.Errorf("model %s: %s run: %s", m.name, what, oneLine(err.Error()))
	}
	defer release(out[0])
	data, shape, err := floatData(out[0])
	if err != nil {
		return nil, nil, fmt.Errorf("model %s: %s output: %w", m.name, what, err)
	}
	return append([]float32(nil), data...), shape, nil
}

func ones(n int) []int64 {
	s := make([]int64, n)
	for i := range s {
		s[i] = 1
	}
	return s
}
