package inference

import (
	"fmt"
	"slices"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// kvKind is a decoder graph's cache contract, read from the graph itself.
type kvKind int

const (
	// kvSelf: GPT-2 style, past_key_values.{i}.key/value (self-attention
	// only; cross-attention recomputed from encoder_hidden_states).
	kvSelf kvKind = iota
	// kvCross: TrOCR/BART style, past_key_values.{i}.decoder.* (self) and
	// .encoder.* (cross-attention keys, computed once at step 0).
	kvCross
	// kvNone: no cache (optimum's BERT and RoBERTa decoders): every step runs
	// the whole prefix and reads the last position's logits.
	kvNone
)

func (k kvKind) String() string {
	return [...]string{"self-attention cache", "self + cross-attention cache", "no cache"}[k]
}

// decoderKind reads the first decoder graph's outputs (merged, or
// decoder_model.onnx) and says which contract it follows.
func (m *Model) decoderKind() (kvKind, error) {
	file := fileDecoder
	if m.merged {
		file = fileMerged
	}
	_, out, err := ioInfo(m.dir, file)
	if err != nil {
		return kvSelf, err
	}
	outs := names(out)
	switch {
	case slices.Contains(outs, "present.0.decoder.key"):
		return kvCross, nil
	case !m.merged && !m.exists(fileDecoderPast) && !slices.Contains(outs, "present.0.key"):
		return kvNone, nil
	case !m.merged && !m.exists(fileDecoderPast):
		return kvSelf, fileError(m.dir, fileDecoderPast, "missing and no %s: the export has no KV cache; use task image-to-text-with-past", fileMerged)
	}
	return kvSelf, nil
}

// crossKV lists the cache tensor names of a kvCross graph, layer-major:
// decoder key, decoder value, encoder key, encoder value.
func (m *Model) crossKV(prefix string, withEncoder bool) []string {
	var s []string
	for i := 0; i < m.layers; i++ {
		for _, part := range []string{"decoder", "encoder"} {
			if part == "encoder" && !withEncoder {
				continue
			}
			for _, kv := range []string{"key", "value"} {
				s = append(s, fmt.Sprintf("%s.%d.%s.%s", prefix, i, part, kv))
			}
		}
	}
	return s
}

// checkOtherDecoders checks a kvCross or kvNone decoder and fills the I/O descriptions.
func (m *Model) checkOtherDecoders(kind kvKind) error {
	var err error
	dir, H, hd := m.dir, int64(m.heads), int64(m.headDim)
	logits := ioSpec{"logits", f32, []int64{-1, -1, int64(m.vocab)}}
	ids := ioSpec{"input_ids", i64, []int64{-1, -1}}
	enc := ioSpec{"encoder_hidden_states", f32, []int64{-1, -1, int64(m.hidden)}}
	kvSpecs := func(names []string) []ioSpec {
		s := make([]ioSpec, len(names))
		for i, n := range names {
			s[i] = ioSpec{n, f32, []int64{-1, H, -1, hd}}
		}
		return s
	}
	extra := map[string]bool{"attention_mask": true}
	check := func(file string, in, out []ioSpec) ([]ioDesc, []ioDesc, error) {
		hi, ho, err := ioInfo(dir, file)
		if err != nil {
			return nil, nil, err
		}
		if err := checkIO(dir, file, "input", hi, in, extra); err != nil {
			return nil, nil, err
		}
		return hi, ho, checkIO(dir, file, "output", ho, out, nil)
	}
	full := append([]ioSpec{logits}, kvSpecs(m.crossKV("present", true))...)
	switch {
	case kind == kvNone:
		m.dec0In, m.dec0Out, err = check(fileDecoder, []ioSpec{ids, enc}, []ioSpec{logits})
	case m.merged:
		in := append(append([]ioSpec{ids, enc}, kvSpecs(m.crossKV("past_key_values", true))...), ioSpec{"use_cache_branch", bl, []int64{1}})
		m.decIn, m.decOut, err = check(fileMerged, in, full)
	default:
		if m.dec0In, m.dec0Out, err = check(fileDecoder, []ioSpec{ids, enc}, full); err != nil {
			return err
		}
		// The with-past graph takes no encoder states: its cross-attention keys come from step 0.
		extra["encoder_hidden_states"] = true
		in := append([]ioSpec{ids}, kvSpecs(m.crossKV("past_key_values", true))...)
		out := append([]ioSpec{logits}, kvSpecs(m.crossKV("present", false))...)
		m.decIn, m.decOut, err = check(fileDecoderPast, in, out)
	}
	return err
}

// openOtherDecoders opens the kvCross / kvNone decoder sessions with their
// inputs and outputs in the order the steppers feed them.
func (m *Model) openOtherDecoders(s *sessionSet, open func(file string, in, out []string) (*ort.DynamicAdvancedSession, error)) error {
	var err error
	names := func(in []ioDesc, past bool, branch bool) []string {
		n := []string{"input_ids"}
		if hasInput(in, "encoder_hidden_states") {
			n = append(n, "encoder_hidden_states")
		}
		if hasInput(in, "attention_mask") {
			n = append(n, "attention_mask")
		}
		if past {
			n = append(n, m.crossKV("past_key_values", true)...)
		}
		if branch {
			n = append(n, "use_cache_branch")
		}
		return n
	}
	switch {
	case m.kv == kvNone:
		s.decoder0, err = open(fileDecoder, names(m.dec0In, false, false), []string{"logits"})
	case m.merged:
		s.decoder, err = open(fileMerged, names(m.decIn, true, true), append([]string{"logits"}, m.crossKV("present", true)...))
	default:
		if s.decoder0, err = open(fileDecoder, names(m.dec0In, false, false), append([]string{"logits"}, m.crossKV("present", true)...)); err != nil {
			return err
		}
		s.decoder, err = open(fileDecoderPast, names(m.decIn, true, false), append([]string{"logits"}, m.crossKV("present", false)...))
	}
	return err
}

func hasInput(in []ioDesc, name string) bool {
	for _, x := range in {
		if x.Name == name {
			return true
		}
	}
	return false
}

// newStepper picks the stepper for the decoder's contract.
func (m *Model) newStepper(ws *workspace, n, maxRows, maxLen int) (stepper, func()) {
	switch m.kv {
	case kvCross:
		return &crossDecoder{m: m, s: ws.s, rows: n, enc: append([]float32(nil), ws.enc[:n*m.encSeq*m.hidden]...)}, func() {}
	case kvNone:
		return &fullDecoder{m: m, s: ws.s, rows: n, enc: append([]float32(nil), ws.enc[:n*m.encSeq*m.hidden]...), hist: make([][]int64, n)}, func() {}
	}
	d := m.newDecoder(ws, n, maxRows, maxLen)
	return d, d.close
}

// pickRows returns the rows idx of s, a slice of equal row blocks.
func pickRows(s []float32, rows int, idx []int) []float32 {
	if len(s) == 0 {
		return s
	}
	block := len(s) / rows
	out := make([]float32, 0, block*len(idx))
	for _, r := range idx {
		out = append(out, s[r*block:(r+1)*block]...)
	}
	return out
}

func checkGather(idx []int, rows int) error {
	for _, v := range idx {
		if v < 0 || v >= rows {
			return fmt.Errorf("decoder gather: row %d out of %d", v, rows)
		}
	}
	return nil
}

// runDecoder runs a decoder session; ONNX Runtime allocates the outputs,
// which the caller releases.
func (m *Model) runDecoder(s *ort.DynamicAdvancedSession, in []onnxValue, nOut, rows, past int) ([]onnxValue, error) {
	out := make([]onnxValue, nOut)
	if err := m.runSession(s, in, out); err != nil {
		for _, v := range out {
			if v != nil {
				release(v)
			}
		}
		return nil, fmt.Errorf("model %s: decoder run (%d rows, past %d): %s", m.name, rows, past, oneLine(err.Error()))
	}
	return out, nil
}

// tensorList collects tensors made for one run, so that one deferred call releases them.
type tensorList []onnxValue

func (l *tensorList) add(v onnxValue, err error) error {
	if err != nil {
		return fmt.Errorf("decoder tensor: %w", err)
	}
	*l = append(*l, v)
	return nil
}

func (l tensorList) release() {
	for _, v := range l {
		if v != nil {
			release(v)
		}
	}
}

// describeDecoder is model check's phrase for the decoder contract.
func (m *Model) describeDecoder() string {
	return strings.TrimSpace(fmt.Sprintf("%s decoder, %s", m.cfg.Decoder.ModelType, m.kv))
}
