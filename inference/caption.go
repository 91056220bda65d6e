package inference

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"lookout/internal/cores"
)

// Caption captions BGR (or BGRA, gray) 8-bit images of any size, one result per
// image in order. The context is checked between ONNX Runtime runs: a cancelled
// call returns ctx.Err() after the run in flight ends.
func (m *Model) Caption(ctx context.Context, images []gocv.Mat) ([]Result, error) {
	return m.CaptionWith(ctx, images, nil)
}

// CaptionWith is Caption with per-call generation overrides on top of the model's settings.
func (m *Model) CaptionWith(ctx context.Context, images []gocv.Mat, over *GenerationOptions) ([]Result, error) {
	if m.fl != nil {
		return m.CaptionTask(ctx, images, "", over)
	}
	if len(images) == 0 {
		return nil, nil
	}
	return m.withWorkspace(over, func(ws *workspace, g *GenerationSettings) ([]Result, error) {
		return m.captionRun(ctx, ws, images, g)
	})
}

// withWorkspace resolves over on top of the model's generation settings and
// runs f with a workspace, the model held open meanwhile: the frame of every
// captioning call (BLIP, GIT and Florence-2 alike).
func (m *Model) withWorkspace(over *GenerationOptions, f func(*workspace, *GenerationSettings) ([]Result, error)) ([]Result, error) {
	g := m.gen
	if over != nil {
		var err error
		if g, err = m.regen(over); err != nil {
			return nil, err
		}
	}
	m.life.RLock()
	defer m.life.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	ws := m.getWorkspace()
	defer m.putWorkspace(ws)
	s, shared := m.takeSessions()
	if !shared {
		defer m.putSessions(s)
	}
	ws.s = s
	defer func() { ws.s = nil }()
	return f(ws, &g)
}

// prepare preprocesses images into ws, then checks ctx before the encoder
// runs; it returns when preprocessing started and ended.
func (m *Model) prepare(ctx context.Context, ws *workspace, images []gocv.Mat) (t0, t1 time.Time, err error) {
	t0 = time.Now()
	if err = m.preprocess(ws, images); err != nil {
		return t0, t0, err
	}
	t1 = time.Now()
	return t0, t1, ctx.Err()
}

// stageTimings splits the stage times of a batch of n images evenly: the
// batch runs as one.
func stageTimings(n int, t0, t1, t2, t3 time.Time) Timings {
	per := func(d time.Duration) time.Duration { return d / time.Duration(n) }
	return Timings{Preprocess: per(t1.Sub(t0)), Encode: per(t2.Sub(t1)), Decode: per(t3.Sub(t2))}
}

// fillHypotheses sets r's tokens and mean log-probability from the best of
// hyps (best first) and its alternatives from the others, their text by alt.
func fillHypotheses(r *Result, hyps []hypothesis, alt func([]int64) (string, error)) error {
	best := hyps[0]
	r.Tokens = best.tokens
	if len(best.tokens) > 0 {
		r.MeanLogProb = best.sum / float64(len(best.tokens))
	}
	for _, h := range hyps[1:] {
		c, err := alt(h.tokens)
		if err != nil {
			return err
		}
		r.Alternatives = append(r.Alternatives, Alternative{Caption: c, Tokens: h.tokens, Score: h.score})
	}
	return nil
}

// captionRun is one BLIP or GIT call: preprocess, encode, search, decode.
func (m *Model) captionRun(ctx context.Context, ws *workspace, images []gocv.Mat, g *GenerationSettings) ([]Result, error) {
	n := len(images)
	t0, t1, err := m.prepare(ctx, ws, images)
	if err != nil {
		return nil, err
	}
	if err := m.encode(ws, n); err != nil {
		return nil, err
	}
	attrs, err := m.attributes(ws, n)
	if err != nil {
		return nil, err
	}
	doms := m.domainScores(ws.enc, n)
	t2 := time.Now()
	hyps, err := m.generate(ctx, ws, n, g)
	if err != nil {
		return nil, err
	}
	t3 := time.Now()
	out := make([]Result, n)
	for i := range out {
		r := &out[i]
		if r.Caption, err = m.tok.decode(hyps[i][0].tokens); err != nil {
			return nil, fmt.Errorf("model %s: %w", m.name, err)
		}
		if err := fillHypotheses(r, hyps[i], m.tok.decode); err != nil {
			return nil, fmt.Errorf("model %s: %w", m.name, err)
		}
		if attrs != nil {
			r.Attributes = attrs[i]
		}
		if doms != nil {
			r.Domain = doms[i]
		}
		r.Timings = stageTimings(n, t0, t1, t2, t3)
	}
	return out, nil
}

// regen resolves per-call overrides on top of the load-time settings.
func (m *Model) regen(over *GenerationOptions) (GenerationSettings, error) {
	g := m.gen
	es := g.EarlyStopping
	base := GenerationOptions{
		MaxLength: &g.MaxLength, MinLength: &g.MinLength, NumBeams: &g.NumBeams,
		NumReturnSequences: &g.NumReturnSequences, LengthPenalty: &g.LengthPenalty,
		EarlyStopping: &es, NoRepeatNgramSize: &g.NoRepeatNgramSize,
		RepetitionPenalty: &g.RepetitionPenalty, DecoderStartToken: &g.DecoderStartToken,
		EOSTokenID: g.EOSTokenIDs, PadTokenID: &g.PadTokenID,
	}
	base.ForcedBOSTokenID, base.ForcedEOSTokenID = g.ForcedBOS, g.ForcedEOS
	merged := base
	cfg := *m.cfg
	// Apply base then over: resolveGeneration handles max_new_tokens precedence.
	b, err := jsonMarshal(merged)
	if err != nil {
		return g, err
	}
	out, err := resolveGeneration(&cfg, b, over)
	if err != nil {
		return g, fmt.Errorf("model %s: %w", m.name, err)
	}
	return out, nil
}

func (m *Model) preprocess(ws *workspace, images []gocv.Mat) error {
	h, w := m.pre.Height, m.pre.Width
	size := 3 * h * w
	n := len(images)
	if cap(ws.pixels) < n*size {
		ws.pixels = make([]float32, n*size)
	}
	ws.pixels = ws.pixels[:n*size]
	// Check every image before starting work.
	for i, img := range images {
		if _, ih, iw, _, _, err := matBytes(img); err != nil {
			return fmt.Errorf("image %d: %w", i, err)
		} else if !m.pre.Resize && (ih != h || iw != w) {
			return fmt.Errorf("image %d is %dx%d; the model takes %dx%d and preprocessor_config.json disables resizing", i, iw, ih, w, h)
		}
	}
	// Images are independent: spread them over the cores, one preprocessor
	// (coefficient cache and scratch) per worker.
	procs := cores.N()
	workers := min(n, procs, 8)
	par := max(1, procs/workers) // leftover cores split each image's rows
	for len(ws.preps) < workers {
		ws.preps = append(ws.preps, newPreprocessor(m.pre))
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for wk := 0; wk < workers; wk++ {
		wg.Add(1)
		go func(p *preprocessor, wk int) {
			defer wg.Done()
			var owned []gocv.Mat
			defer func() {
				for _, r := range owned {
					r.Close()
				}
			}()
			for i := wk; i < n; i += workers {
				img := images[i]
				if m.fastResize && m.pre.Resize && (img.Rows() != h || img.Cols() != w) {
					img = m.fastResizeMat(img, w, h, &owned)
				}
				data, ih, iw, stride, ch, err := matBytes(img)
				if err != nil {
					errs[i] = fmt.Errorf("image %d: %w", i, err)
					continue
				}
				p.run(data, ih, iw, stride, ch, ws.pixels[i*size:(i+1)*size], par)
				runtime.KeepAlive(img)
			}
		}(ws.preps[wk], wk)
	}
	wg.Wait()
	runtime.KeepAlive(images)
	return errors.Join(errs...)
}

// encode runs the encoder on ws.pixels into ws.enc [n, T, D].
func (m *Model) encode(ws *workspace, n int) error {
	in, err := newTensor(ws.pixels, int64(n), 3, int64(m.pre.Height), int64(m.pre.Width))
	if err != nil {
		return fmt.Errorf("encoder input: %w", err)
	}
	defer release(in)
	size := n * m.encSeq * m.hidden
	if cap(ws.enc) < size {
		ws.enc = make([]float32, size)
	}
	ws.enc = ws.enc[:size]
	out, err := newTensor(ws.enc, int64(n), int64(m.encSeq), int64(m.hidden))
	if err != nil {
		return fmt.Errorf("encoder output: %w", err)
	}
	defer release(out)
	if err := m.runSession(ws.s.encoder, []onnxValue{in}, []onnxValue{out}); err != nil {
		return fmt.Errorf("model %s: encoder run: %s", m.name, oneLine(err.Error()))
	}
	return nil
}

// notApplicable is the class an attribute head picks when the attribute does not
// apply to the image (e.g. a vehicle slot in a surveillance frame); such
// attributes are left out of Result.Attributes.
const notApplicable = "n/a"

// attributes runs the attribute heads on the encoder output: the most probable
// class of each head and its probability, omitting heads whose answer is "n/a".
func (m *Model) attributes(ws *workspace, n int) ([]map[string]Attribute, error) {
	if ws.s.attr == nil {
		return nil, nil
	}
	in, err := newTensor(ws.enc, int64(n), int64(m.encSeq), int64(m.hidden))
	if err != nil {
		return nil, fmt.Errorf("attributes input: %w", err)
	}
	defer release(in)
	outs := make([]onnxValue, len(m.attrs.Attributes))
	probs := make([][]float32, len(outs))
	for i, a := range m.attrs.Attributes {
		probs[i] = make([]float32, n*len(a.Classes))
		t, err := newTensor(probs[i], int64(n), int64(len(a.Classes)))
		if err != nil {
			return nil, fmt.Errorf("attributes output: %w", err)
		}
		defer release(t)
		outs[i] = t
	}
	if err := m.runSession(ws.s.attr, []onnxValue{in}, outs); err != nil {
		return nil, fmt.Errorf("model %s: attributes run: %s", m.name, oneLine(err.Error()))
	}
	res := make([]map[string]Attribute, n)
	for b := 0; b < n; b++ {
		res[b] = map[string]Attribute{}
		for i, a := range m.attrs.Attributes {
			row := probs[i][b*len(a.Classes) : (b+1)*len(a.Classes)]
			best := 0
			for c := range row {
				if row[c] > row[best] {
					best = c
				}
			}
			if a.Classes[best] == notApplicable {
				continue
			}
			res[b][a.Name] = Attribute{Value: a.Classes[best], Prob: float64(row[best])}
		}
	}
	return res, nil
}

// generate runs greedy or beam search over the encoded batch.
func (m *Model) generate(ctx context.Context, ws *workspace, n int, g *GenerationSettings) ([][]hypothesis, error) {
	d, done := m.newStepper(ws, n, n*g.NumBeams, g.MaxLength)
	defer done()
	return m.search(ctx, d, n, g)
}

// search runs greedy or beam search over any architecture's stepper.
func (m *Model) search(ctx context.Context, d stepper, n int, g *GenerationSettings) ([][]hypothesis, error) {
	if g.NumBeams <= 1 {
		hs, _, err := greedySearch(ctx, d, n, m.vocab, g)
		if err != nil {
			return nil, err
		}
		out := make([][]hypothesis, n)
		for i, h := range hs {
			out[i] = []hypothesis{h}
		}
		return out, nil
	}
	hs, _, err := beamSearch(ctx, d, n, m.vocab, g)
	return hs, err
}

// TensorInfo describes one graph input or output; -1 marks a dynamic dimension.
