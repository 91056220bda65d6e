package inference

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
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
	// Sessions is how many copies of the ONNX Runtime sessions Load opens
	// (default 1). Concurrent Caption calls each take a copy while one is free,
	// else share one: ONNX Runtime takes concurrent runs on a session, but
	// they contend on its locks (docs/CAPACITY.md). Each copy holds the
	// weights again.
	Sessions int
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
	// transformers' ViTImageProcessor does it (2.2-3.1 ms per 1280x720 frame per
	// core, BenchmarkPreprocess1280x720); or "fast": OpenCV's SIMD resize
	// (INTER_AREA when shrinking, INTER_LINEAR when enlarging), 0.2-0.3 ms but
	// not bit-exact.
	Resize string
	// GraphOptimization is "all" (default), "extended", "basic" or "disable".
	GraphOptimization string
	// Generation overrides generation_config.json field by field.
	Generation GenerationOptions
	// Name identifies the model in records; default the folder's base name.
	Name string
	// Task is the Florence-2 task a plain Caption call runs (default <CAPTION>);
	// ignored by other models.
	Task string
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
// calls run at once, each with its own workspace and one of the model's
// Options.Sessions copies of the ONNX Runtime sessions (calls beyond that
// share them, which ONNX Runtime allows).
type Model struct {
	dir      string
	name     string
	digest   string
	provider string
	cfg      *ModelConfig
	pre      *PreprocessConfig
	gen      GenerationSettings
	attrs    *attributesFile
	domain   *domainProfile // nil: no domain_profile.json
	tok      *detokenizer
	log      zerolog.Logger

	encIn, encOut   []ioDesc
	decIn, decOut   []ioDesc // merged, or the with-past decoder
	dec0In, dec0Out []ioDesc // split layout: the first-step decoder
	attrIn, attrOut []ioDesc

	// sets are the copies of the ONNX Runtime sessions (Options.Sessions);
	// free holds the idle ones. A Caption call holds one set throughout.
	sets    []*sessionSet
	free    chan *sessionSet
	fl      *florence // Florence-2 only; nil for VisionEncoderDecoder
	merged  bool
	hasMask bool   // decoder takes attention_mask
	kv      kvKind // the decoder graph's cache contract

	layers, heads, headDim, hidden, vocab int
	encSeq                                int // encoder sequence length T

	sessNanos atomic.Int64  // cumulative time inside ONNX Runtime runs
	running   atomic.Int32  // ONNX Runtime runs in flight now
	shareNext atomic.Uint32 // round robin over the sets when none is free
	peakRuns  atomic.Int32  // the most runs seen in flight at once

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
	s      *sessionSet // the sessions this call runs
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

func (m *Model) closeSessions() {
	for _, s := range m.sets {
		s.close()
	}
	m.sets, m.free = nil, nil
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
