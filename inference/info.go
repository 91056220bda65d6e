package inference

import (
	"os"
	"path/filepath"
	"strings"
)

type TensorInfo struct {
	Name  string  `json:"name"`
	Type  string  `json:"type"`
	Shape []int64 `json:"shape"`
}

// GraphInfo lists one ONNX file's inputs and outputs.
type GraphInfo struct {
	File    string       `json:"file"`
	Inputs  []TensorInfo `json:"inputs"`
	Outputs []TensorInfo `json:"outputs"`
}

// ModelInfo is what `lookout model info` prints.
type ModelInfo struct {
	Name       string             `json:"name"`
	Dir        string             `json:"dir"`
	Digest     string             `json:"digest"`
	Provider   string             `json:"provider"`
	Encoder    EncoderConfig      `json:"encoder"`
	Decoder    DecoderConfig      `json:"decoder"`
	EncoderSeq int                `json:"encoder_sequence_length"`
	ImageSize  [2]int             `json:"image_size"` // width, height after preprocessing
	Resample   int                `json:"resample"`
	Mean, Std  [3]float32         `json:"-"`
	Layout     string             `json:"layout"` // "merged", "split" or "nocache"
	Graphs     []GraphInfo        `json:"graphs"`
	Generation GenerationSettings `json:"generation"`
	Attributes []AttributeSpec    `json:"attributes,omitempty"`
	// Domain is the domain profile's summary (domain_profile.json), when present.
	Domain    *DomainProfile   `json:"domain,omitempty"`
	FileBytes map[string]int64 `json:"file_bytes"`
	// Architecture is "vision-encoder-decoder" or "florence2"; Task is
	// Florence-2's default task.
	Architecture string `json:"architecture"`
	// DecoderKind names the decoder family and its cache contract
	// ("trocr decoder, self + cross-attention cache").
	DecoderKind string `json:"decoder_kind,omitempty"`
	Task        string `json:"task,omitempty"`
}

// Info describes the loaded model.
func (m *Model) Info() ModelInfo {
	conv := tensorInfos
	info := ModelInfo{
		Name: m.name, Dir: m.dir, Digest: m.digest, Provider: m.provider,
		Encoder: m.cfg.Encoder, Decoder: m.cfg.Decoder, EncoderSeq: m.encSeq,
		ImageSize: [2]int{m.pre.Width, m.pre.Height}, Resample: m.pre.Filter,
		Mean: m.pre.Mean, Std: m.pre.Std, Layout: "merged", Generation: m.gen, Architecture: "vision-encoder-decoder",
		FileBytes: map[string]int64{},
	}
	if m.fl == nil {
		info.DecoderKind = m.describeDecoder()
	}
	if m.fl != nil {
		info.Architecture, info.Layout, info.Task, info.Graphs = "florence2", "florence2", m.fl.task, m.fl.graphs
		for _, g := range m.fl.graphs {
			if st, err := os.Stat(filepath.Join(m.fl.onnxDir, g.File)); err == nil {
				info.FileBytes[g.File] = st.Size()
			}
		}
		return info
	}
	info.Graphs = append(info.Graphs, GraphInfo{fileEncoder, conv(m.encIn), conv(m.encOut)})
	if m.merged {
		info.Graphs = append(info.Graphs, GraphInfo{fileMerged, conv(m.decIn), conv(m.decOut)})
	} else if m.kv == kvNone {
		info.Layout = "nocache"
		info.Graphs = append(info.Graphs, GraphInfo{fileDecoder, conv(m.dec0In), conv(m.dec0Out)})
	} else {
		info.Layout = "split"
		info.Graphs = append(info.Graphs, GraphInfo{fileDecoder, conv(m.dec0In), conv(m.dec0Out)},
			GraphInfo{fileDecoderPast, conv(m.decIn), conv(m.decOut)})
	}
	if m.attrs != nil {
		info.Attributes = m.attrs.Attributes
		info.Graphs = append(info.Graphs, GraphInfo{fileAttrModel, conv(m.attrIn), conv(m.attrOut)})
	}
	if d, ok := m.Domain(); ok {
		info.Domain = &d
	}
	for _, f := range m.onnxFiles() {
		if st, err := os.Stat(filepath.Join(m.dir, f)); err == nil {
			info.FileBytes[f] = st.Size()
		}
	}
	return info
}

// tensorInfos converts ONNX Runtime's graph input or output descriptions.
func tensorInfos(io []ioDesc) []TensorInfo {
	out := make([]TensorInfo, len(io))
	for i, x := range io {
		out[i] = TensorInfo{Name: x.Name, Type: strings.ToLower(strings.TrimPrefix(x.DataType.String(), "ONNX_TENSOR_ELEMENT_DATA_TYPE_")), Shape: append([]int64(nil), x.Dimensions...)}
	}
	return out
}
