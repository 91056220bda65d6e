package inference

import (
	"fmt"
	"slices"
)

// crossDecoder steps a TrOCR/BART style decoder (kvCross): step 0 runs with
// the encoder states and returns the cross-attention keys, which later steps
// feed back with the growing self-attention cache (as optimum's
// ORTModelForVision2Seq does). Split layout: decoder_model.onnx for step 0,
// decoder_with_past_model.onnx after; merged: one graph behind
// use_cache_branch. ONNX Runtime allocates the outputs; the cache lives in Go
// slices so that gather (beam reorder) is a row copy.
type crossDecoder struct {
	m    *Model
	s    *sessionSet
	rows int
	past int
	enc  []float32 // [rows, T, D]
	// kv: 4 per layer: decoder key, value [rows,H,past,hd]; encoder key, value [rows,H,T,hd].
	kv  [][]float32
	img []int // the image of each row (nil: row i is image i)
}

var _ stepper = (*crossDecoder)(nil)

func (d *crossDecoder) step(tokens []int64) ([]float32, error) {
	m := d.m
	if len(tokens) != d.rows {
		return nil, fmt.Errorf("decoder: %d tokens for %d rows", len(tokens), d.rows)
	}
	var vals tensorList
	defer vals.release()
	r, H, hd, T := int64(d.rows), int64(m.heads), int64(m.headDim), int64(m.encSeq)
	sess, in := d.s.decoder, m.decIn
	first := !m.merged && d.past == 0
	if first {
		sess, in = d.s.decoder0, m.dec0In
	}
	if err := vals.add(newTensor(append([]int64(nil), tokens...), r, 1)); err != nil {
		return nil, err
	}
	if hasInput(in, "encoder_hidden_states") {
		if err := vals.add(newTensor(d.enc, r, T, int64(m.hidden))); err != nil {
			return nil, err
		}
	}
	if hasInput(in, "attention_mask") {
		if err := vals.add(newTensor(ones(d.rows*(d.past+1)), r, int64(d.past+1))); err != nil {
			return nil, err
		}
	}
	if !first {
		for i := 0; i < 4*m.layers; i++ {
			n := int64(d.past)
			if i%4 >= 2 {
				n = T
				if d.past == 0 {
					n = 0
				}
			}
			data := []float32{0} // a zero-length tensor still needs a buffer
			if len(d.kv) > 0 && len(d.kv[i]) > 0 {
				data = d.kv[i]
			}
			if err := vals.add(newTensor(data, r, H, n, hd)); err != nil {
				return nil, err
			}
		}
	}
	if m.merged {
		if err := vals.add(newTensor([]bool{d.past > 0}, 1)); err != nil {
			return nil, err
		}
	}
	nOut := 1 + 4*m.layers
	if !m.merged && d.past > 0 {
		nOut = 1 + 2*m.layers
	}
	out, err := m.runDecoder(sess, vals, nOut, d.rows, d.past)
	if err != nil {
		return nil, err
	}
	defer tensorList(out).release()
	return d.keep(out)
}

// keep copies the logits and the new cache out of the step's outputs.
func (d *crossDecoder) keep(out []onnxValue) ([]float32, error) {
	return keepCrossCache(d.m, &d.kv, &d.past, d.m.merged, out)
}

// keepCrossCache copies the logits and the new cache out of the outputs of
// a decoder step whose cache holds, per layer, self-attention key and value
// then cross-attention key and value (kv[4*layer+j]). A merged decoder
// returns all four at every step; a split one's later steps only the first
// two. Cross-attention keys come from step 0 only.
func keepCrossCache(m *Model, kv *[][]float32, past *int, merged bool, out []onnxValue) ([]float32, error) {
	logits, _, err := floatData(out[0])
	if err != nil {
		return nil, fmt.Errorf("model %s: decoder logits: %w", m.name, err)
	}
	logits = append([]float32(nil), logits...)
	if *kv == nil {
		*kv = make([][]float32, 4*m.layers)
	}
	for l := 0; l < m.layers; l++ {
		for j := 0; j < 4; j++ {
			if j >= 2 && *past > 0 {
				continue // cross-attention keys come from step 0 only
			}
			src := 1 + 4*l + j
			if !merged && *past > 0 {
				src = 1 + 2*l + j
			}
			v, _, err := floatData(out[src])
			if err != nil {
				return nil, fmt.Errorf("model %s: decoder present %d: %w", m.name, src-1, err)
			}
			(*kv)[4*l+j] = append((*kv)[4*l+j][:0:0], v...)
		}
	}
	*past++
	return logits, nil
}

// gather makes row i be the current row idx[i]; rows that keep their image
// keep their encoder states and cross-attention keys in place.
func (d *crossDecoder) gather(idx []int) error {
	return gatherCrossCache(&d.rows, &d.img, &d.enc, d.kv, idx)
}

// gatherCrossCache makes row i be the current row idx[i] of a decoder
// with encoder states enc and a cache laid out as keepCrossCache's; rows
// that keep their image keep their encoder states and cross-attention keys
// in place. img tracks each row's image (see rowImages).
func gatherCrossCache(rows *int, img *[]int, enc *[]float32, kv [][]float32, idx []int) error {
	if err := checkGather(idx, *rows); err != nil {
		return err
	}
	next, same := rowImages(img, *rows, idx)
	if !same {
		*enc = pickRows(*enc, *rows, idx)
	}
	for i := range kv {
		if i%4 < 2 || !same {
			kv[i] = pickRows(kv[i], *rows, idx)
		}
	}
	*rows, *img = len(idx), next
	return nil
}

// rowImages returns each row's image after gathering idx and whether every
// row keeps the image it had.
func rowImages(cur *[]int, rows int, idx []int) ([]int, bool) {
	if *cur == nil {
		*cur = make([]int, rows)
		for i := range *cur {
			(*cur)[i] = i
		}
	}
	img := make([]int, len(idx))
	for r, src := range idx {
		img[r] = (*cur)[src]
	}
	return img, slices.Equal(img, *cur)
}

// fullDecoder steps a decoder exported without a cache (kvNone: BERT,
// RoBERTa): each step runs the whole prefix, start token included, and
// returns the last position's logits. Its cost grows with the length
// (docs/MODELS.md has the figures).
type fullDecoder struct {
	m    *Model
	s    *sessionSet
	rows int
	enc  []float32 // [rows, T, D]
	hist [][]int64 // tokens fed so far, per row
	img  []int
	last []float32
}

var _ stepper = (*fullDecoder)(nil)

func (d *fullDecoder) step(tokens []int64) ([]float32, error) {
	m := d.m
	if len(tokens) != d.rows {
		return nil, fmt.Errorf("decoder: %d tokens for %d rows", len(tokens), d.rows)
	}
	for i, t := range tokens {
		d.hist[i] = append(d.hist[i], t)
	}
	L := len(d.hist[0])
	ids := make([]int64, 0, d.rows*L)
	for _, h := range d.hist {
		ids = append(ids, h...)
	}
	var vals tensorList
	defer vals.release()
	r := int64(d.rows)
	if err := vals.add(newTensor(ids, r, int64(L))); err != nil {
		return nil, err
	}
	if err := vals.add(newTensor(d.enc, r, int64(m.encSeq), int64(m.hidden))); err != nil {
		return nil, err
	}
	if hasInput(m.dec0In, "attention_mask") {
		if err := vals.add(newTensor(ones(d.rows*L), r, int64(L))); err != nil {
			return nil, err
		}
	}
	out, err := m.runDecoder(d.s.decoder0, vals, 1, d.rows, L-1)
	if err != nil {
		return nil, err
	}
	defer tensorList(out).release()
	logits, _, err := floatData(out[0])
	if err != nil {
		return nil, fmt.Errorf("model %s: decoder logits: %w", m.name, err)
	}
	V := m.vocab
	if cap(d.last) < d.rows*V {
		d.last = make([]float32, d.rows*V)
	}
	d.last = d.last[:d.rows*V]
	for i := 0; i < d.rows; i++ {
		copy(d.last[i*V:(i+1)*V], logits[(i*L+L-1)*V:(i*L+L)*V])
	}
	return d.last, nil
}

func (d *fullDecoder) gather(idx []int) error {
	if err := checkGather(idx, d.rows); err != nil {
		return err
	}
	img, same := rowImages(&d.img, d.rows, idx)
	if !same {
		d.enc = pickRows(d.enc, d.rows, idx)
	}
	hist := make([][]int64, len(idx))
	for r, s := range idx {
		hist[r] = append([]int64(nil), d.hist[s]...)
	}
	d.rows, d.img, d.hist = len(idx), img, hist
	return nil
}
