package inference

import (
	"encoding/json"
	"fmt"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// ortDecoder is the stepper over the ONNX decoder. The KV cache lives in two
// sets of Go buffers (ping-pong): a step reads past from one set and ONNX
// Runtime writes present straight into the other, so a plain step copies
// nothing; gather (beam reorder, dropping finished rows) copies rows once.
// One decoder serves one Caption call, with that call's workspace.
type ortDecoder struct {
	m       *Model
	ws      *workspace
	rows    int
	past    int
	cur     int // kv set holding the past
	encCur  int // encBuf holding the current encoder states
	encFrom []float32
	// img is the image each row belongs to (nil: row i is image i); rows of
	// one image share encoder states, so a gather that keeps every row's
	// image leaves them in place.
	img []int

	// Tensors whose shape only changes with the row count, kept across steps
	// (they wrap Go buffers, so refilling the buffer updates them).
	idsT    *tensor[int64]
	encT    *tensor[float32]
	logitsT *tensor[float32]
	branchT [2]*tensor[bool]
}

// dropFixed destroys the row-shaped tensors (after a gather or at the end).
func (d *ortDecoder) dropFixed() {
	if d.idsT != nil {
		release(d.idsT)
	}
	if d.encT != nil {
		release(d.encT)
	}
	if d.logitsT != nil {
		release(d.logitsT)
	}
	d.idsT, d.encT, d.logitsT = nil, nil, nil
}

// close releases every tensor the decoder holds.
func (d *ortDecoder) close() {
	d.dropFixed()
	for i, t := range d.branchT {
		if t != nil {
			release(t)
			d.branchT[i] = nil
		}
	}
}

func (d *ortDecoder) fixed() error {
	m, ws := d.m, d.ws
	r := int64(d.rows)
	var err error
	if d.idsT == nil {
		if d.idsT, err = newTensor(ws.ids, r, 1); err != nil {
			return fmt.Errorf("decoder tensor: %w", err)
		}
	}
	if d.encT == nil {
		if d.encT, err = newTensor(d.encStates(), r, int64(m.encSeq), int64(m.hidden)); err != nil {
			return fmt.Errorf("decoder tensor: %w", err)
		}
	}
	if d.logitsT == nil {
		if d.logitsT, err = newTensor(ws.logits, r, 1, int64(m.vocab)); err != nil {
			return fmt.Errorf("decoder tensor: %w", err)
		}
	}
	for i, v := range []bool{false, true} {
		if d.branchT[i] == nil {
			if d.branchT[i], err = newTensor([]bool{v}, 1); err != nil {
				return fmt.Errorf("decoder tensor: %w", err)
			}
		}
	}
	return nil
}

// newDecoder prepares buffers for up to maxRows rows and maxLen positions.
func (m *Model) newDecoder(ws *workspace, rows, maxRows, maxLen int) *ortDecoder {
	per := maxRows * m.heads * maxLen * m.headDim
	for s := 0; s < 2; s++ {
		if len(ws.kv[s]) != 2*m.layers {
			ws.kv[s] = make([][]float32, 2*m.layers)
		}
		for i := range ws.kv[s] {
			if cap(ws.kv[s][i]) < per {
				ws.kv[s][i] = make([]float32, per)
			}
		}
		encSize := maxRows * m.encSeq * m.hidden
		if cap(ws.encBuf[s]) < encSize {
			ws.encBuf[s] = make([]float32, encSize)
		}
	}
	if need := maxRows * m.vocab; cap(ws.logits) < need {
		ws.logits = make([]float32, need)
	}
	if cap(ws.ids) < maxRows {
		ws.ids = make([]int64, maxRows)
	}
	if cap(ws.mask) < maxRows*maxLen {
		ws.mask = make([]int64, maxRows*maxLen)
		for i := range ws.mask {
			ws.mask[i] = 1
		}
	}
	return &ortDecoder{m: m, ws: ws, rows: rows, encFrom: ws.enc}
}

func (d *ortDecoder) encStates() []float32 {
	if d.encFrom != nil {
		return d.encFrom
	}
	return d.ws.encBuf[d.encCur]
}

func (d *ortDecoder) step(tokens []int64) ([]float32, error) {
	m, ws := d.m, d.ws
	rows := len(tokens)
	if rows != d.rows {
		return nil, fmt.Errorf("decoder: %d tokens for %d rows", rows, d.rows)
	}
	var vals []onnxValue
	defer func() {
		for _, v := range vals {
			if v != nil {
				release(v)
			}
		}
	}()
	add := func(v onnxValue, err error) error {
		if err != nil {
			return fmt.Errorf("decoder tensor: %w", err)
		}
		vals = append(vals, v)
		return nil
	}
	r, H, hd := int64(rows), int64(m.heads), int64(m.headDim)
	if err := d.fixed(); err != nil {
		return nil, err
	}
	copy(ws.ids, tokens)
	in := []onnxValue{d.idsT, d.encT}
	// Input order follows Model.decoderNames: ids, encoder states, [attention_mask], [past], [use_cache_branch].
	sess, usePast, maskIn := ws.s.decoder, true, m.hasMask
	if !m.merged && d.past == 0 {
		sess, usePast, maskIn = ws.s.decoder0, false, hasMaskInput(m.dec0In)
	}
	if maskIn {
		if err := add(newTensor(ws.mask, r, int64(d.past+1))); err != nil {
			return nil, err
		}
	}
	if usePast {
		for i := 0; i < 2*m.layers; i++ {
			if err := add(newTensor(ws.kv[d.cur][i], r, H, int64(d.past), hd)); err != nil {
				return nil, err
			}
		}
	}
	in = append(in, vals...)
	if m.merged {
		b := 0
		if d.past > 0 {
			b = 1
		}
		in = append(in, d.branchT[b])
	}
	nTemp := len(vals)
	next := 1 - d.cur
	for i := 0; i < 2*m.layers; i++ {
		if err := add(newTensor(ws.kv[next][i], r, H, int64(d.past+1), hd)); err != nil {
			return nil, err
		}
	}
	out := append([]onnxValue{d.logitsT}, vals[nTemp:]...)
	logits := ws.logits[:rows*m.vocab]
	if err := m.runSession(sess, in, out); err != nil {
		return nil, fmt.Errorf("model %s: decoder run (%d rows, past %d): %s", m.name, rows, d.past, oneLine(err.Error()))
	}
	d.cur = next
	d.past++
	return logits, nil
}

func hasMaskInput(in []ioDesc) bool {
	for _, x := range in {
		if x.Name == "attention_mask" {
			return true
		}
	}
	return false
}

// gather makes row i be the current row idx[i], for the KV cache and the encoder states.
func (d *ortDecoder) gather(idx []int) error {
	m, ws := d.m, d.ws
	for _, v := range idx {
		if v < 0 || v >= d.rows {
			return fmt.Errorf("decoder gather: row %d out of %d", v, d.rows)
		}
	}
	block := m.heads * d.past * m.headDim
	next := 1 - d.cur
	for i := 0; i < 2*m.layers; i++ {
		src, dst := ws.kv[d.cur][i], ws.kv[next][i]
		for r, s := range idx {
			copy(dst[r*block:(r+1)*block], src[s*block:(s+1)*block])
		}
	}
	d.cur = next
	if d.sameImages(idx) {
		d.dropFixed()
		return nil
	}
	eb := m.encSeq * m.hidden
	src := d.encStates()
	dstSet := 1 - d.encCur
	if d.encFrom != nil {
		dstSet = 0
	}
	dst := ws.encBuf[dstSet]
	for r, s := range idx {
		copy(dst[r*eb:(r+1)*eb], src[s*eb:(s+1)*eb])
	}
	d.encCur, d.encFrom = dstSet, nil
	d.rows = len(idx)
	d.dropFixed()
	return nil
}

// sameImages records the rows' images after gathering idx and reports whether
// every row keeps the image it had (a beam reorder within each image).
func (d *ortDecoder) sameImages(idx []int) bool {
	img, same := rowImages(&d.img, d.rows, idx)
	d.img = img
	return same
}
