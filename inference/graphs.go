package inference

import (
	"fmt"
)

// ioSpec is what a graph input or output must look like; -1 dims are free.
type ioSpec struct {
	name  string
	dtype elemType
	dims  []int64
}

func checkIO(dir, file, kind string, have []ioDesc, want []ioSpec, allowExtra map[string]bool) error {
	byName := map[string]ioDesc{}
	for _, h := range have {
		byName[h.Name] = h
	}
	for _, w := range want {
		h, ok := byName[w.name]
		if !ok {
			return fileError(dir, file, "has no %s %q (has %s); export with task image-to-text-with-past", kind, w.name, ioNames(have))
		}
		if h.OrtValueType != onnxTensor || h.DataType != w.dtype {
			return fileError(dir, file, "%s %q is %s, want a %s tensor", kind, w.name, h.DataType, w.dtype)
		}
		if len(h.Dimensions) != len(w.dims) {
			return fileError(dir, file, "%s %q has rank %d, want %d", kind, w.name, len(h.Dimensions), len(w.dims))
		}
		for i, d := range w.dims {
			if d >= 0 && h.Dimensions[i] >= 0 && h.Dimensions[i] != d {
				return fileError(dir, file, "%s %q dimension %d is %d, want %d (config.json disagrees with the graph)", kind, w.name, i, h.Dimensions[i], d)
			}
		}
		delete(byName, w.name)
	}
	for name := range byName {
		if kind == "input" && !allowExtra[name] {
			return fileError(dir, file, "has unexpected input %q; not an image-to-text-with-past export", name)
		}
	}
	return nil
}

func ioNames(io []ioDesc) string {
	s := ""
	for i, x := range io {
		if i > 0 {
			s += ", "
		}
		s += x.Name
		if i == 6 && len(io) > 8 {
			return s + fmt.Sprintf(", ... %d more", len(io)-7)
		}
	}
	if s == "" {
		return "none"
	}
	return s
}

// checkGraphs validates every graph's inputs and outputs against the configs.
func (m *Model) checkGraphs() error {
	if err := m.checkEncoder(); err != nil {
		return err
	}
	if err := m.checkDecoders(); err != nil {
		return err
	}
	for _, in := range m.decIn {
		if in.Name == "attention_mask" {
			m.hasMask = true
		}
	}
	return m.checkAttributes()
}

// checkEncoder checks encoder_model.onnx and finds the encoder sequence length.
func (m *Model) checkEncoder() error {
	var err error
	dir := m.dir
	if m.encIn, m.encOut, err = ioInfo(dir, fileEncoder); err != nil {
		return err
	}
	h, w := int64(m.pre.Height), int64(m.pre.Width)
	if err := checkIO(dir, fileEncoder, "input", m.encIn, []ioSpec{{"pixel_values", f32, []int64{-1, int64(m.cfg.Encoder.NumChannels), h, w}}}, nil); err != nil {
		return err
	}
	if is := m.cfg.Encoder.ImageSize; is > 0 && m.pre.Resize && (m.pre.Height != is || m.pre.Width != is) {
		return fileError(dir, filePreprocessor, "size %dx%d differs from config.json encoder.image_size %d; the encoder input pixel_values would not fit", m.pre.Width, m.pre.Height, is)
	}
	if m.cfg.Encoder.NumChannels != 3 {
		return fileError(dir, fileConfig, "encoder.num_channels is %d, want 3", m.cfg.Encoder.NumChannels)
	}
	if err := checkIO(dir, fileEncoder, "output", m.encOut, []ioSpec{{"last_hidden_state", f32, []int64{-1, -1, int64(m.hidden)}}}, nil); err != nil {
		return err
	}
	for _, o := range m.encOut {
		if o.Name == "last_hidden_state" {
			m.encSeq = int(o.Dimensions[1])
		}
	}
	if m.encSeq <= 0 && m.cfg.Encoder.PatchSize > 0 {
		m.encSeq = encoderSeq(m.cfg.Encoder, m.pre.Height, m.pre.Width)
	}
	if m.encSeq <= 0 {
		return fileError(dir, fileEncoder, "output last_hidden_state has no fixed sequence length and config.json has no encoder.patch_size")
	}
	return nil
}

// checkDecoders checks the merged decoder, or the split pair.
func (m *Model) checkDecoders() error {
	var err error
	dir := m.dir
	if m.kv, err = m.decoderKind(); err != nil {
		return err
	}
	if m.kv != kvSelf {
		return m.checkOtherDecoders(m.kv)
	}
	kvIn := func() []ioSpec {
		var s []ioSpec
		for i := 0; i < m.layers; i++ {
			for _, kv := range []string{"key", "value"} {
				s = append(s, ioSpec{fmt.Sprintf("past_key_values.%d.%s", i, kv), f32, []int64{-1, int64(m.heads), -1, int64(m.headDim)}})
			}
		}
		return s
	}
	outs := []ioSpec{{"logits", f32, []int64{-1, -1, int64(m.vocab)}}}
	for i := 0; i < m.layers; i++ {
		for _, kv := range []string{"key", "value"} {
			outs = append(outs, ioSpec{fmt.Sprintf("present.%d.%s", i, kv), f32, []int64{-1, int64(m.heads), -1, int64(m.headDim)}})
		}
	}
	base := []ioSpec{{"input_ids", i64, []int64{-1, -1}}, {"encoder_hidden_states", f32, []int64{-1, -1, int64(m.hidden)}}}
	extra := map[string]bool{"attention_mask": true}
	if m.merged {
		if m.decIn, m.decOut, err = ioInfo(dir, fileMerged); err != nil {
			return err
		}
		in := append(append(append([]ioSpec{}, base...), kvIn()...), ioSpec{"use_cache_branch", bl, []int64{1}})
		if err := checkIO(dir, fileMerged, "input", m.decIn, in, extra); err != nil {
			return err
		}
		if err := checkIO(dir, fileMerged, "output", m.decOut, outs, nil); err != nil {
			return err
		}
	} else {
		if m.dec0In, m.dec0Out, err = ioInfo(dir, fileDecoder); err != nil {
			return err
		}
		if err := checkIO(dir, fileDecoder, "input", m.dec0In, base, extra); err != nil {
			return err
		}
		if err := checkIO(dir, fileDecoder, "output", m.dec0Out, outs, nil); err != nil {
			return err
		}
		if m.decIn, m.decOut, err = ioInfo(dir, fileDecoderPast); err != nil {
			return err
		}
		if err := checkIO(dir, fileDecoderPast, "input", m.decIn, append(append([]ioSpec{}, base...), kvIn()...), extra); err != nil {
			return err
		}
		if err := checkIO(dir, fileDecoderPast, "output", m.decOut, outs, nil); err != nil {
			return err
		}
	}
	return nil
}

// checkAttributes checks attributes_model.onnx against attributes.json.
func (m *Model) checkAttributes() error {
	var err error
	dir := m.dir
	if m.attrs != nil {
		if m.attrIn, m.attrOut, err = ioInfo(dir, fileAttrModel); err != nil {
			return err
		}
		if err := checkIO(dir, fileAttrModel, "input", m.attrIn, []ioSpec{{m.attrs.Input, f32, []int64{-1, -1, int64(m.hidden)}}}, nil); err != nil {
			return err
		}
		var outs []ioSpec
		for _, a := range m.attrs.Attributes {
			outs = append(outs, ioSpec{a.Output, f32, []int64{-1, int64(len(a.Classes))}})
		}
		if err := checkIO(dir, fileAttrModel, "output", m.attrOut, outs, nil); err != nil {
			return fmt.Errorf("%w (attributes.json lists it)", err)
		}
	}
	return nil
}

func names(io []ioDesc) []string {
	out := make([]string, len(io))
	for i, x := range io {
		out[i] = x.Name
	}
	return out
}

// decoderInputNames orders a decoder's inputs: input_ids, encoder_hidden_states,
// [attention_mask], past (layer-major, key then value), [use_cache_branch].
func (m *Model) decoderNames(withPast, branch bool, in []ioDesc) ([]string, []string) {
	inN := []string{"input_ids", "encoder_hidden_states"}
	for _, x := range in {
		if x.Name == "attention_mask" {
			inN = append(inN, "attention_mask")
		}
	}
	if withPast {
		for i := 0; i < m.layers; i++ {
			inN = append(inN, fmt.Sprintf("past_key_values.%d.key", i), fmt.Sprintf("past_key_values.%d.value", i))
		}
	}
	if branch {
		inN = append(inN, "use_cache_branch")
	}
	outN := []string{"logits"}
	for i := 0; i < m.layers; i++ {
		outN = append(outN, fmt.Sprintf("present.%d.key", i), fmt.Sprintf("present.%d.value", i))
	}
	return inN, outN
}
