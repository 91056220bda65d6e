package inference

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	ort "github.com/yalue/onnxruntime_go"
	"gocv.io/x/gocv"
)

// Options configure Load. The zero value runs on CPU with ONNX Runtime's default threads.
type Options struct {
	// LibraryPath is the ONNX Runtime shared library; default $LOOKOUT_ORT_LIB, else
	// .state/ort/libonnxruntime.so found from the working directory upwards (scripts/ort.sh).
	LibraryPath string
	// Provider is "cpu" (default), "cuda" or "tensorrt".
	Provider string
	// DeviceID is the GPU for cuda/tensorrt (default 0).
	DeviceID int
	// AllowCPUFallback makes a provider that cannot load fall back to CPU with a
	// logged warning instead of failing Load.
	AllowCPUFallback bool
	// IntraOpThreads and InterOpThreads: 0 keeps ONNX Runtime's default (all cores / 1).
	IntraOpThreads int
	InterOpThreads int
	// AllowSpinning lets idle ONNX Runtime worker threads spin (lower latency on
	// dedicated cores); default false, which suits shared machines.
	AllowSpinning bool
	// Decoder picks the decoder files when a folder has both layouts (optimum's
	// default export writes both): "auto" (default) uses decoder_model_merged.onnx
	// when present, else decoder_model.onnx + decoder_with_past_model.onnx;
	// "merged" or "split" insist on one. The split files run faster (no If node per
	// step: 1.2x captions/s for models/demo at batch 1) but hold the decoder weights twice.
	Decoder string
	// Resize is "exact" (default): Pillow's resampling reproduced bit for bit, as
	// transformers' ViTImageProcessor does it (about 2.4 ms per 1280x720 frame per
	// core); or "fast": OpenCV's SIMD resize (INTER_AREA when shrinking,
	// INTER_LINEAR when enlarging), several times cheaper but not bit-exact.
	Resize string
	// GraphOptimization is "all" (default), "extended", "basic" or "disable".
	GraphOptimization string
	// Generation overrides generation_config.json field by field.
	Generation GenerationOptions
	// Name identifies the model in records; default the folder's base name.
	Name string
	// Logger receives load-time warnings (provider fallback, sampling ignored). Zero value: silent.
	Logger zerolog.Logger
}

// File names of optimum's image-to-text-with-past export.
const (
	fileConfig       = "config.json"
	fileGeneration   = "generation_config.json"
	filePreprocessor = "preprocessor_config.json"
	fileTokenizer    = "tokenizer.json"
	fileEncoder      = "encoder_model.onnx"
	fileMerged       = "decoder_model_merged.onnx"
	fileDecoder      = "decoder_model.onnx"
	fileDecoderPast  = "decoder_with_past_model.onnx"
	fileAttrModel    = "attributes_model.onnx"
	fileAttrJSON     = "attributes.json"
)

// Model is a loaded captioning model. It is safe for concurrent use: Caption
// calls are serialised around the ONNX Runtime sessions (each call already uses
// every core ORT was given).
type Model struct {
	dir      string
	name     string
	digest   string
	provider string
	cfg      *ModelConfig
	pre      *PreprocessConfig
	gen      GenerationSettings
	attrs    *attributesFile
	tok      *detokenizer
	log      zerolog.Logger

	encIn, encOut   []ort.InputOutputInfo
	decIn, decOut   []ort.InputOutputInfo // merged, or the with-past decoder
	dec0In, dec0Out []ort.InputOutputInfo // split layout: the first-step decoder
	attrIn, attrOut []ort.InputOutputInfo

	encoder  *ort.DynamicAdvancedSession
	decoder  *ort.DynamicAdvancedSession // merged or with-past
	decoder0 *ort.DynamicAdvancedSession // split layout only
	attrSess *ort.DynamicAdvancedSession
	merged   bool
	hasMask  bool // decoder takes attention_mask

	layers, heads, headDim, hidden, vocab int
	encSeq                                int // encoder sequence length T

	sessNanos atomic.Int64 // cumulative time inside ONNX Runtime runs
	running   atomic.Int32 // ONNX Runtime runs in flight now
	peakRuns  atomic.Int32 // the most runs seen in flight at once

	fastResize bool

	// life: Caption calls hold it for reading, so that they run at once
	// (ONNX Runtime sessions take concurrent Run calls); Close takes it for
	// writing, waiting for the calls in flight.
	life   sync.RWMutex
	closed bool
	// spare holds idle workspaces: one per concurrent Caption call at most.
	spareMu sync.Mutex
	spare   []*workspace
}

// workspace is the memory of one Caption call: pixels, encoder states, the
// KV cache and logits. Workspaces are reused, so a steady stream of batches
// allocates nothing large.
type workspace struct {
	preps  []*preprocessor
	pixels []float32
	enc    []float32
	kv     [2][][]float32
	encBuf [2][]float32
	logits []float32
	ids    []int64
	mask   []int64
}

// getWorkspace takes an idle workspace or makes one.
func (m *Model) getWorkspace() *workspace {
	m.spareMu.Lock()
	defer m.spareMu.Unlock()
	if n := len(m.spare); n > 0 {
		ws := m.spare[n-1]
		m.spare = m.spare[:n-1]
		return ws
	}
	return &workspace{}
}

func (m *Model) putWorkspace(ws *workspace) {
	m.spareMu.Lock()
	defer m.spareMu.Unlock()
	m.spare = append(m.spare, ws)
}

var _ Captioner = (*Model)(nil)

// fileError is a load error naming the file.
func fileError(dir, file string, format string, args ...any) error {
	return fmt.Errorf("model %s: %s: %s", dir, file, fmt.Sprintf(format, args...))
}

// Load opens a model folder in optimum's image-to-text-with-past layout, checks
// every file against the others and creates the ONNX Runtime sessions. Errors are
// one line naming the file and what is wrong.
func Load(dir string, opts Options) (*Model, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w; pass a folder exported by optimum with task image-to-text-with-past (e.g. models/demo)", dir, unwrapPathErr(err))
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("model %s: not a directory; pass a model folder", dir)
	}
	m := &Model{dir: dir, log: opts.Logger, name: opts.Name}
	switch opts.Resize {
	case "", "exact":
	case "fast":
		m.fastResize = true
	default:
		return nil, fmt.Errorf("model %s: resize %q is unknown; use exact or fast", dir, opts.Resize)
	}
	switch opts.Decoder {
	case "", "auto", "merged", "split":
	default:
		return nil, fmt.Errorf("model %s: decoder %q is unknown; use auto, merged or split", dir, opts.Decoder)
	}
	if m.name == "" {
		abs, _ := filepath.Abs(dir)
		m.name = filepath.Base(abs)
	}
	read := func(name string, required bool) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && !required {
				return nil, nil
			}
			if errors.Is(err, os.ErrNotExist) {
				return nil, fileError(dir, name, "missing; export the model with optimum task image-to-text-with-past")
			}
			return nil, fileError(dir, name, "%v", unwrapPathErr(err))
		}
		return b, nil
	}
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	// Layout first: a folder of another task has no encoder/decoder pair.
	if !exists(fileEncoder) {
		if exists("model.onnx") {
			return nil, fileError(dir, fileEncoder, "missing (the folder holds model.onnx: a single-model export, not image-to-text-with-past)")
		}
		return nil, fileError(dir, fileEncoder, "missing; export the model with optimum task image-to-text-with-past")
	}
	switch {
	case opts.Decoder == "merged" && !exists(fileMerged):
		return nil, fileError(dir, fileMerged, "missing, and decoder merged was asked for; use decoder auto or split, or export with optimum's default layout")
	case opts.Decoder == "split" && !(exists(fileDecoder) && exists(fileDecoderPast)):
		missing := fileDecoder
		if exists(fileDecoder) {
			missing = fileDecoderPast
		}
		return nil, fileError(dir, missing, "missing, and decoder split was asked for; use decoder auto or merged, or export without optimum's post-processing")
	case opts.Decoder != "split" && exists(fileMerged):
		m.merged = true
	case exists(fileDecoder) && exists(fileDecoderPast):
	case exists(fileDecoder):
		return nil, fileError(dir, fileDecoderPast, "missing and no %s: the export has no KV cache; use task image-to-text-with-past", fileMerged)
	default:
		return nil, fileError(dir, fileMerged, "missing (nor %s + %s); export with task image-to-text-with-past", fileDecoder, fileDecoderPast)
	}
	cfgB, err := read(fileConfig, true)
	if err != nil {
		return nil, err
	}
	if m.cfg, err = parseModelConfig(cfgB); err != nil {
		return nil, fileError(dir, fileConfig, "%v", err)
	}
	genB, err := read(fileGeneration, false)
	if err != nil {
		return nil, err
	}
	// The folder's own settings first, so that an error blames the right
	// place: the file, or the overrides (config model.generation, flags).
	if _, err = resolveGeneration(m.cfg, genB, nil); err != nil {
		return nil, fileError(dir, fileGeneration, "%v", err)
	}
	if m.gen, err = resolveGeneration(m.cfg, genB, &opts.Generation); err != nil {
		return nil, fmt.Errorf("model %s: override of %s: %v (set by model.generation in the config or a command-line flag)", dir, fileGeneration, err)
	}
	preB, err := read(filePreprocessor, true)
	if err != nil {
		return nil, err
	}
	if m.pre, err = parsePreprocessConfig(preB); err != nil {
		return nil, fileError(dir, filePreprocessor, "%v", err)
	}
	tokB, err := read(fileTokenizer, true)
	if err != nil {
		return nil, err
	}
	if m.tok, err = loadTokenizer(tokB); err != nil {
		return nil, fileError(dir, fileTokenizer, "%v", err)
	}
	m.vocab = m.cfg.Decoder.VocabSize
	if m.tok.vocab != m.vocab {
		return nil, fileError(dir, fileTokenizer, "vocabulary has %d tokens but config.json decoder.vocab_size is %d; the tokenizer does not belong to this model", m.tok.vocab, m.vocab)
	}
	m.layers, m.heads = m.cfg.Decoder.NLayer, m.cfg.Decoder.NHead
	m.hidden = m.cfg.Decoder.NEmbd
	m.headDim = m.hidden / m.heads
	attrJSON, attrModel := exists(fileAttrJSON), exists(fileAttrModel)
	if attrJSON != attrModel {
		missing := fileAttrJSON
		if attrJSON {
			missing = fileAttrModel
		}
		return nil, fileError(dir, missing, "missing while its partner is present; ship attributes_model.onnx and attributes.json together")
	}
	if attrJSON {
		b, err := read(fileAttrJSON, true)
		if err != nil {
			return nil, err
		}
		if m.attrs, err = parseAttributes(b); err != nil {
			return nil, fileError(dir, fileAttrJSON, "%v", err)
		}
	}
	if m.gen.SamplingAsked {
		m.log.Warn().Str("model", m.name).Msg("do_sample is not supported; decoding deterministically")
	}
	if err := initEnvironment(opts.LibraryPath); err != nil {
		return nil, err
	}
	if err := m.checkGraphs(); err != nil {
		return nil, err
	}
	if m.digest, err = digestFiles(dir, m.onnxFiles()); err != nil {
		return nil, err
	}
	if err := m.openSessions(&opts); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func (m *Model) onnxFiles() []string {
	f := []string{fileEncoder}
	if m.merged {
		f = append(f, fileMerged)
	} else {
		f = append(f, fileDecoder, fileDecoderPast)
	}
	if m.attrs != nil {
		f = append(f, fileAttrModel)
	}
	return f
}

// digestFiles is sha256 over the names and contents of files, 16 hex digits.
func digestFiles(dir string, files []string) (string, error) {
	h := sha256.New()
	sorted := append([]string(nil), files...)
	sort.Strings(sorted)
	for _, name := range sorted {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return "", fileError(dir, name, "%v", unwrapPathErr(err))
		}
		io.WriteString(h, name)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fileError(dir, name, "read: %v", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// ioSpec is what a graph input or output must look like; -1 dims are free.
type ioSpec struct {
	name  string
	dtype ort.TensorElementDataType
	dims  []int64
}

func checkIO(dir, file, kind string, have []ort.InputOutputInfo, want []ioSpec, allowExtra map[string]bool) error {
	byName := map[string]ort.InputOutputInfo{}
	for _, h := range have {
		byName[h.Name] = h
	}
	for _, w := range want {
		h, ok := byName[w.name]
		if !ok {
			return fileError(dir, file, "has no %s %q (has %s); export with task image-to-text-with-past", kind, w.name, ioNames(have))
		}
		if h.OrtValueType != ort.ONNXTypeTensor || h.DataType != w.dtype {
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

func ioNames(io []ort.InputOutputInfo) string {
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

func ioInfo(dir, file string) ([]ort.InputOutputInfo, []ort.InputOutputInfo, error) {
	in, out, err := ort.GetInputOutputInfo(filepath.Join(dir, file))
	if err != nil {
		return nil, nil, fileError(dir, file, "not a loadable ONNX model (%s); re-export or re-download it", oneLine(firstLine(err.Error())))
	}
	return in, out, nil
}

const (
	f32 = ort.TensorElementDataTypeFloat
	i64 = ort.TensorElementDataTypeInt64
	bl  = ort.TensorElementDataTypeBool
)

// checkGraphs validates every graph's inputs and outputs against the configs.
func (m *Model) checkGraphs() error {
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
		m.encSeq = (m.pre.Height/m.cfg.Encoder.PatchSize)*(m.pre.Width/m.cfg.Encoder.PatchSize) + 1
	}
	if m.encSeq <= 0 {
		return fileError(dir, fileEncoder, "output last_hidden_state has no fixed sequence length and config.json has no encoder.patch_size")
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
	for _, in := range m.decIn {
		if in.Name == "attention_mask" {
			m.hasMask = true
		}
	}
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

func names(io []ort.InputOutputInfo) []string {
	out := make([]string, len(io))
	for i, x := range io {
		out[i] = x.Name
	}
	return out
}

// decoderInputNames orders a decoder's inputs: input_ids, encoder_hidden_states,
// [attention_mask], past (layer-major, key then value), [use_cache_branch].
func (m *Model) decoderNames(withPast, branch bool, in []ort.InputOutputInfo) ([]string, []string) {
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

func (m *Model) openSessions(opts *Options) error {
	provider := opts.Provider
	if provider == "" {
		provider = "cpu"
	}
	err := m.openWith(opts, provider)
	if err != nil && provider != "cpu" && opts.AllowCPUFallback {
		m.log.Warn().Str("model", m.name).Str("provider", provider).Err(err).Msg("provider failed to load; falling back to cpu")
		m.closeSessions()
		provider = "cpu"
		err = m.openWith(opts, provider)
	}
	if err != nil {
		return err
	}
	m.provider = provider
	return nil
}

func (m *Model) openWith(opts *Options, provider string) error {
	so, err := sessionOptions(opts, provider)
	if err != nil {
		return fmt.Errorf("model %s: %w", m.dir, err)
	}
	defer so.Destroy()
	open := func(file string, in, out []string) (*ort.DynamicAdvancedSession, error) {
		s, err := ort.NewDynamicAdvancedSession(filepath.Join(m.dir, file), in, out, so)
		if err != nil {
			return nil, fileError(m.dir, file, "onnxruntime cannot create a %s session: %s", provider, oneLine(firstLine(err.Error())))
		}
		return s, nil
	}
	if m.encoder, err = open(fileEncoder, []string{"pixel_values"}, []string{"last_hidden_state"}); err != nil {
		return err
	}
	if m.merged {
		in, out := m.decoderNames(true, true, m.decIn)
		if m.decoder, err = open(fileMerged, in, out); err != nil {
			return err
		}
	} else {
		in, out := m.decoderNames(false, false, m.dec0In)
		if m.decoder0, err = open(fileDecoder, in, out); err != nil {
			return err
		}
		in, out = m.decoderNames(true, false, m.decIn)
		if m.decoder, err = open(fileDecoderPast, in, out); err != nil {
			return err
		}
	}
	if m.attrs != nil {
		var outs []string
		for _, a := range m.attrs.Attributes {
			outs = append(outs, a.Output)
		}
		if m.attrSess, err = open(fileAttrModel, []string{m.attrs.Input}, outs); err != nil {
			return err
		}
	}
	return nil
}

func (m *Model) closeSessions() {
	for _, s := range []**ort.DynamicAdvancedSession{&m.encoder, &m.decoder, &m.decoder0, &m.attrSess} {
		if *s != nil {
			(*s).Destroy()
			*s = nil
		}
	}
}

// Close releases the sessions. It waits for running Caption calls to finish;
// later calls return an error.
func (m *Model) Close() error {
	m.life.Lock()
	defer m.life.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.closeSessions()
	m.spareMu.Lock()
	m.spare = nil
	m.spareMu.Unlock()
	return nil
}

// Name is the model's name (Options.Name or the folder name).
func (m *Model) Name() string { return m.name }

// Digest is sha256 over the model's .onnx files (16 hex digits).
func (m *Model) Digest() string { return m.digest }

// Provider is the execution provider the sessions run on.
func (m *Model) Provider() string { return m.provider }

// Generation returns the resolved generation settings.
func (m *Model) Generation() GenerationSettings { return m.gen }

// ErrClosed is returned by Caption after Close.
var ErrClosed = errors.New("inference: model is closed")

// Caption captions BGR (or BGRA, gray) 8-bit images of any size, one result per
// image in order. The context is checked between ONNX Runtime runs: a cancelled
// call returns ctx.Err() after the run in flight ends.
func (m *Model) Caption(ctx context.Context, images []gocv.Mat) ([]Result, error) {
	return m.CaptionWith(ctx, images, nil)
}

// CaptionWith is Caption with per-call generation overrides on top of the model's settings.
func (m *Model) CaptionWith(ctx context.Context, images []gocv.Mat, over *GenerationOptions) ([]Result, error) {
	if len(images) == 0 {
		return nil, nil
	}
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
	n := len(images)
	t0 := time.Now()
	if err := m.preprocess(ws, images); err != nil {
		return nil, err
	}
	t1 := time.Now()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := m.encode(ws, n); err != nil {
		return nil, err
	}
	attrs, err := m.attributes(ws, n)
	if err != nil {
		return nil, err
	}
	t2 := time.Now()
	hyps, err := m.generate(ctx, ws, n, &g)
	if err != nil {
		return nil, err
	}
	t3 := time.Now()
	per := func(d time.Duration) time.Duration { return d / time.Duration(n) }
	out := make([]Result, n)
	for i := range out {
		r := &out[i]
		best := hyps[i][0]
		if r.Caption, err = m.tok.decode(best.tokens); err != nil {
			return nil, fmt.Errorf("model %s: %w", m.name, err)
		}
		r.Tokens = best.tokens
		if len(best.tokens) > 0 {
			r.MeanLogProb = best.sum / float64(len(best.tokens))
		}
		for _, h := range hyps[i][1:] {
			c, err := m.tok.decode(h.tokens)
			if err != nil {
				return nil, fmt.Errorf("model %s: %w", m.name, err)
			}
			r.Alternatives = append(r.Alternatives, Alternative{Caption: c, Tokens: h.tokens, Score: h.score})
		}
		if attrs != nil {
			r.Attributes = attrs[i]
		}
		r.Timings = Timings{Preprocess: per(t1.Sub(t0)), Encode: per(t2.Sub(t1)), Decode: per(t3.Sub(t2))}
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
	procs := runtime.GOMAXPROCS(0)
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
	in, err := ort.NewTensor(ort.NewShape(int64(n), 3, int64(m.pre.Height), int64(m.pre.Width)), ws.pixels)
	if err != nil {
		return fmt.Errorf("encoder input: %w", err)
	}
	defer in.Destroy()
	size := n * m.encSeq * m.hidden
	if cap(ws.enc) < size {
		ws.enc = make([]float32, size)
	}
	ws.enc = ws.enc[:size]
	out, err := ort.NewTensor(ort.NewShape(int64(n), int64(m.encSeq), int64(m.hidden)), ws.enc)
	if err != nil {
		return fmt.Errorf("encoder output: %w", err)
	}
	defer out.Destroy()
	if err := m.runSession(m.encoder, []ort.Value{in}, []ort.Value{out}); err != nil {
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
	if m.attrSess == nil {
		return nil, nil
	}
	in, err := ort.NewTensor(ort.NewShape(int64(n), int64(m.encSeq), int64(m.hidden)), ws.enc)
	if err != nil {
		return nil, fmt.Errorf("attributes input: %w", err)
	}
	defer in.Destroy()
	outs := make([]ort.Value, len(m.attrs.Attributes))
	probs := make([][]float32, len(outs))
	for i, a := range m.attrs.Attributes {
		probs[i] = make([]float32, n*len(a.Classes))
		t, err := ort.NewTensor(ort.NewShape(int64(n), int64(len(a.Classes))), probs[i])
		if err != nil {
			return nil, fmt.Errorf("attributes output: %w", err)
		}
		defer t.Destroy()
		outs[i] = t
	}
	if err := m.runSession(m.attrSess, []ort.Value{in}, outs); err != nil {
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
	d := m.newDecoder(ws, n, n*g.NumBeams, g.MaxLength)
	defer d.close()
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
	Layout     string             `json:"layout"` // "merged" or "split"
	Graphs     []GraphInfo        `json:"graphs"`
	Generation GenerationSettings `json:"generation"`
	Attributes []AttributeSpec    `json:"attributes,omitempty"`
	FileBytes  map[string]int64   `json:"file_bytes"`
}

// Info describes the loaded model.
func (m *Model) Info() ModelInfo {
	conv := func(io []ort.InputOutputInfo) []TensorInfo {
		out := make([]TensorInfo, len(io))
		for i, x := range io {
			out[i] = TensorInfo{Name: x.Name, Type: strings.ToLower(strings.TrimPrefix(x.DataType.String(), "ONNX_TENSOR_ELEMENT_DATA_TYPE_")), Shape: append([]int64(nil), x.Dimensions...)}
		}
		return out
	}
	info := ModelInfo{
		Name: m.name, Dir: m.dir, Digest: m.digest, Provider: m.provider,
		Encoder: m.cfg.Encoder, Decoder: m.cfg.Decoder, EncoderSeq: m.encSeq,
		ImageSize: [2]int{m.pre.Width, m.pre.Height}, Resample: m.pre.Filter,
		Mean: m.pre.Mean, Std: m.pre.Std, Layout: "merged", Generation: m.gen,
		FileBytes: map[string]int64{},
	}
	info.Graphs = append(info.Graphs, GraphInfo{fileEncoder, conv(m.encIn), conv(m.encOut)})
	if m.merged {
		info.Graphs = append(info.Graphs, GraphInfo{fileMerged, conv(m.decIn), conv(m.decOut)})
	} else {
		info.Layout = "split"
		info.Graphs = append(info.Graphs, GraphInfo{fileDecoder, conv(m.dec0In), conv(m.dec0Out)},
			GraphInfo{fileDecoderPast, conv(m.decIn), conv(m.decOut)})
	}
	if m.attrs != nil {
		info.Attributes = m.attrs.Attributes
		info.Graphs = append(info.Graphs, GraphInfo{fileAttrModel, conv(m.attrIn), conv(m.attrOut)})
	}
	for _, f := range m.onnxFiles() {
		if st, err := os.Stat(filepath.Join(m.dir, f)); err == nil {
			info.FileBytes[f] = st.Size()
		}
	}
	return info
}

// runSession runs one ONNX Runtime session and accounts its time.
func (m *Model) runSession(s *ort.DynamicAdvancedSession, in, out []ort.Value) error {
	n := m.running.Add(1)
	for p := m.peakRuns.Load(); n > p && !m.peakRuns.CompareAndSwap(p, n); p = m.peakRuns.Load() {
	}
	t := time.Now()
	err := s.Run(in, out)
	m.sessNanos.Add(int64(time.Since(t)))
	m.running.Add(-1)
	return err
}

// PeakConcurrentRuns is the most ONNX Runtime runs this model has had in
// flight at once: above 1 once Caption calls overlapped.
func (m *Model) PeakConcurrentRuns() int { return int(m.peakRuns.Load()) }

// SessionTime is the cumulative time spent inside ONNX Runtime session runs
// (the raw compute the engine's own work is measured against).
func (m *Model) SessionTime() time.Duration { return time.Duration(m.sessNanos.Load()) }

// fastAreaFactor is the integer shrink factor of fast resizing's second (area) step.
const fastAreaFactor = 4

// fastResizeMat resizes img to w x h with OpenCV. Shrinking is a bilinear resize to
// an integer multiple of the target followed by INTER_AREA with that integer
// factor (OpenCV's fast path; INTER_AREA at a fractional ratio costs ~10x more).
// New Mats are appended to owned for the caller to close.
func (m *Model) fastResizeMat(img gocv.Mat, w, h int, owned *[]gocv.Mat) gocv.Mat {
	k := fastAreaFactor
	for k > 1 && (img.Cols() < k*w || img.Rows() < k*h) {
		k /= 2
	}
	r := gocv.NewMat()
	*owned = append(*owned, r)
	if k <= 1 {
		interp := gocv.InterpolationArea
		if img.Rows() < h || img.Cols() < w {
			interp = gocv.InterpolationLinear
		}
		gocv.Resize(img, &r, image.Pt(w, h), 0, 0, interp)
		return r
	}
	gocv.Resize(img, &r, image.Pt(k*w, k*h), 0, 0, gocv.InterpolationLinear)
	r2 := gocv.NewMat()
	*owned = append(*owned, r2)
	gocv.Resize(r, &r2, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	return r2
}
