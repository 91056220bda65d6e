package inference

import (
	"fmt"
)

// flDecoder steps Florence-2's merged BART decoder. Step 0 feeds empty past
// tensors (use_cache_branch false) and keeps the cross-attention keys the
// graph returns; later steps feed them back with the growing self-attention
// cache, as Transformers.js does. ONNX Runtime allocates the outputs; the
// cache lives in Go slices so that gather (beam reorder) is a row copy.
type flDecoder struct {
	m    *Model
	s    *sessionSet
	rows int
	seq  int       // encoder sequence length
	past int       // decoder positions cached
	enc  []float32 // [rows, seq, D]
	// kv holds 4 slices per layer: decoder key, value [rows,H,past,hd];
	// encoder key, value [rows,H,seq,hd] (empty before step 0 ran).
	kv [][]float32
	// img is the image each row belongs to (nil: row i is image i). Rows of
	// one image share their encoder states and cross-attention keys, so a
	// gather that keeps every row's image copies only the self-attention cache.
	img []int
}

var _ stepper = (*flDecoder)(nil)

func (d *flDecoder) step(tokens []int64) ([]float32, error) {
	m := d.m
	if len(tokens) != d.rows {
		return nil, fmt.Errorf("decoder: %d tokens for %d rows", len(tokens), d.rows)
	}
	emb, _, err := m.embed(d.s, append([]int64(nil), tokens...), d.rows, 1)
	if err != nil {
		return nil, err
	}
	var vals tensorList
	defer vals.release()
	in, err := d.inputs(emb, &vals)
	if err != nil {
		return nil, err
	}
	out, err := m.runDecoder(d.s.flDecoder, in, 1+4*m.layers, d.rows, d.past)
	if err != nil {
		return nil, err
	}
	defer tensorList(out).release()
	return d.keep(out)
}

// inputs builds the decoder's inputs for the current step; every tensor made
// is added to vals for the caller to destroy.
func (d *flDecoder) inputs(emb []float32, vals *tensorList) ([]onnxValue, error) {
	m := d.m
	r, H, hd, D := int64(d.rows), int64(m.heads), int64(m.headDim), int64(m.hidden)
	add := vals.add
	if err := add(newTensor(emb, r, 1, D)); err != nil {
		return nil, err
	}
	if err := add(newTensor(ones(d.rows*d.seq), r, int64(d.seq))); err != nil {
		return nil, err
	}
	if err := add(newTensor(d.enc, r, int64(d.seq), D)); err != nil {
		return nil, err
	}
	for i := 0; i < 4*m.layers; i++ {
		n := int64(d.past)
		if i%4 >= 2 && d.past > 0 {
			n = int64(d.seq)
		} else if i%4 >= 2 {
			n = 0
		}
		data := []float32{0} // a zero-length tensor still needs a buffer
		if d.kv != nil && len(d.kv[i]) > 0 {
			data = d.kv[i]
		}
		if err := add(newTensor(data, r, H, n, hd)); err != nil {
			return nil, err
		}
	}
	if err := add(newTensor([]bool{d.past > 0}, 1)); err != nil {
		return nil, err
	}
	return *vals, nil
}

// keep copies the logits and the new cache out of the step's outputs (the
// decoder is merged: every step returns the whole cache).
func (d *flDecoder) keep(out []onnxValue) ([]float32, error) {
	return keepCrossCache(d.m, &d.kv, &d.past, true, out)
}

// gather makes row i be the current row idx[i] (cache and encoder states).
func (d *flDecoder) gather(idx []int) error {
	return gatherCrossCache(&d.rows, &d.img, &d.enc, d.kv, idx)
}
