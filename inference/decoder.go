package inference

import (
	"encoding/json"
	"fmt"

	ort "github.com/yalue/onnxruntime_go"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// ortDecoder is the stepper over the ONNX decoder. The KV cache lives in two
// sets of Go buffers (ping-pong): a step reads past from one set and ONNX
// Runtime writes present straight into the other, so a plain step copies
// nothing; gather (beam reorder, dropping finished rows) copies rows once.
// Must be used under Model.mu.
type ortDecoder struct {
	m       *Model
	rows    int
	past    int
	cur     int // kv set holding the past
	encCur  int // encBuf holding the current encoder states
	encFrom []float32
}

// newDecoder prepares buffers for up to maxRows rows and maxLen positions.
func (m *Model) newDecoder(rows, maxRows, maxLen int) *ortDecoder {
	per := maxRows * m.heads * maxLen * m.headDim
	for s := 0; s < 2; s++ {
		if len(m.kv[s]) != 2*m.layers {
			m.kv[s] = make([][]float32, 2*m.layers)
		}
		for i := range m.kv[s] {
			if cap(m.kv[s][i]) < per {
				m.kv[s][i] = make([]float32, per)
			}
		}
		encSize := maxRows * m.encSeq * m.hidden
		if cap(m.encBuf[s]) < encSize {
			m.encBuf[s] = make([]float32, encSize)
		}
	}
	if need := maxRows * m.vocab; cap(m.logits) < need {
		m.logits = make([]float32, need)
	}
	if cap(m.ids) < maxRows {
		m.ids = make([]int64, maxRows)
	}
	if cap(m.mask) < maxRows*maxLen {
		m.mask = make([]int64, maxRows*maxLen)
		for i := range m.mask {
			m.mask[i] = 1
		}
	}
	return &ortDecoder{m: m, rows: rows, encFrom: m.enc}
}

func (d *ortDecoder) encStates() []float32 {
	if d.encFrom != nil {
		return d.encFrom
	}
	return d.m.encBuf[d.encCur]
}

func (d *ortDecoder) step(tokens []int64) ([]float32, error) {
	m := d.m
	rows := len(tokens)
	if rows != d.rows {
		return nil, fmt.Errorf("decoder: %d tokens for %d rows", rows, d.rows)
	}
	var vals []ort.Value
	defer func() {
		for _, v := range vals {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	add := func(v ort.Value, err error) error {
		if err != nil {
			return fmt.Errorf("decoder tensor: %w", err)
		}
		vals = append(vals, v)
		return nil
	}
	r, H, hd := int64(rows), int64(m.heads), int64(m.headDim)
	copy(m.ids, tokens)
	if err := add(ort.NewTensor(ort.NewShape(r, 1), m.ids)); err != nil {
		return nil, err
	}
	if err := add(ort.NewTensor(ort.NewShape(r, int64(m.encSeq), int64(m.hidden)), d.encStates())); err != nil {
		return nil, err
	}
	sess := m.decoder
	usePast := true
	if !m.merged && d.past == 0 {
		sess, usePast = m.decoder0, false
	}
	if (d.past == 0 && m.merged) || (usePast == false && m.decoder0 != nil) {
		if hasMaskInput(m.dec0In) && !m.merged {
			if err := add(ort.NewTensor(ort.NewShape(r, int64(d.past+1)), m.mask)); err != nil {
				return nil, err
			}
		}
	}
	if usePast && m.hasMask {
		if err := add(ort.NewTensor(ort.NewShape(r, int64(d.past+1)), m.mask)); err != nil {
			return nil, err
		}
	}
	if usePast {
		for i := 0; i < 2*m.layers; i++ {
			if err := add(ort.NewTensor(ort.NewShape(r, H, int64(d.past), hd), m.kv[d.cur][i])); err != nil {
				return nil, err
			}
		}
	}
	if m.merged {
		if err := add(ort.NewTensor(ort.NewShape(1), []bool{d.past > 0})); err != nil {
			return nil, err
		}
	}
	nIn := len(vals)
	logits := m.logits[:rows*m.vocab]
	if err := add(ort.NewTensor(ort.NewShape(r, 1, int64(m.vocab)), logits)); err != nil {
		return nil, err
	}
	next := 1 - d.cur
	for i := 0; i < 2*m.layers; i++ {
		if err := add(ort.NewTensor(ort.NewShape(r, H, int64(d.past+1), hd), m.kv[next][i])); err != nil {
			return nil, err
		}
	}
	if err := m.runSession(sess, vals[:nIn], vals[nIn:]); err != nil {
		return nil, fmt.Errorf("model %s: decoder run (%d rows, past %d): %s", m.name, rows, d.past, oneLine(err.Error()))
	}
	d.cur = next
	d.past++
	return logits, nil
}

func hasMaskInput(in []ort.InputOutputInfo) bool {
	for _, x := range in {
		if x.Name == "attention_mask" {
			return true
		}
	}
	return false
}

// gather makes row i be the current row idx[i], for the KV cache and the encoder states.
func (d *ortDecoder) gather(idx []int) error {
	m := d.m
	for _, v := range idx {
		if v < 0 || v >= d.rows {
			return fmt.Errorf("decoder gather: row %d out of %d", v, d.rows)
		}
	}
	block := m.heads * d.past * m.headDim
	next := 1 - d.cur
	for i := 0; i < 2*m.layers; i++ {
		src, dst := m.kv[d.cur][i], m.kv[next][i]
		for r, s := range idx {
			copy(dst[r*block:(r+1)*block], src[s*block:(s+1)*block])
		}
	}
	d.cur = next
	eb := m.encSeq * m.hidden
	src := d.encStates()
	dstSet := 1 - d.encCur
	if d.encFrom != nil {
		dstSet = 0
	}
	dst := m.encBuf[dstSet]
	for r, s := range idx {
		copy(dst[r*eb:(r+1)*eb], src[s*eb:(s+1)*eb])
	}
	d.encCur, d.encFrom = dstSet, nil
	d.rows = len(idx)
	return nil
}
