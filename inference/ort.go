package inference

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// EnvLibraryPath names the environment variable that overrides the ONNX Runtime library path.
const EnvLibraryPath = "LOOKOUT_ORT_LIB"

// defaultLibraryRel is where scripts/ort.sh installs the library, relative to the repo root.
const defaultLibraryRel = ".state/ort/libonnxruntime.so"

var (
	envMu   sync.Mutex
	envPath string // library the process environment was initialised with
)

// ResolveLibraryPath returns the ONNX Runtime library to load: explicit, else
// $LOOKOUT_ORT_LIB, else .state/ort/libonnxruntime.so in the current directory or
// the nearest parent that has it, else in the executable's folder or a parent.
func ResolveLibraryPath(explicit string) (string, error) {
	if explicit != "" {
		return checkLibrary(explicit, "")
	}
	if p := os.Getenv(EnvLibraryPath); p != "" {
		return checkLibrary(p, EnvLibraryPath)
	}
	// The working directory first, then the executable's folder (bin/lookout
	// of a checkout finds the checkout's .state from anywhere).
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, defaultLibraryRel)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("onnxruntime library not found (%s in this folder, the executable's folder or a parent, or $%s): run scripts/ort.sh or set %s",
		defaultLibraryRel, EnvLibraryPath, EnvLibraryPath)
}

// checkLibrary checks the library at p; from names where the path came from
// when it was not given explicitly (model.library, --ort-lib).
func checkLibrary(p, from string) (string, error) {
	if from != "" {
		from = " (from " + from + ")"
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("onnxruntime library %s%s: %w; run scripts/ort.sh or fix the path", p, from, unwrapPathErr(err))
	}
	if st.IsDir() {
		return "", fmt.Errorf("onnxruntime library %s%s is a directory; point it at libonnxruntime.so", p, from)
	}
	return p, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// initEnvironment initialises the ONNX Runtime environment once per process.
// A second call with a different library is an error (ORT cannot be reloaded).
func initEnvironment(explicit string) error {
	envMu.Lock()
	defer envMu.Unlock()
	p, err := ResolveLibraryPath(explicit)
	if err != nil {
		return err
	}
	if ort.IsInitialized() {
		if envPath != "" && explicit != "" && !sameFile(envPath, p) {
			return fmt.Errorf("onnxruntime already initialised with %s; one library per process (asked for %s)", envPath, p)
		}
		return nil
	}
	ort.SetSharedLibraryPath(p)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		msg := err.Error()
		if strings.Contains(msg, "API version") {
			return fmt.Errorf("onnxruntime library %s is too old for onnxruntime_go v1.27 (needs ORT 1.24.x): %s; run scripts/ort.sh", p, firstLine(msg))
		}
		return fmt.Errorf("onnxruntime library %s cannot be loaded: %s; run scripts/ort.sh or fix %s", p, firstLine(msg), EnvLibraryPath)
	}
	envPath = p
	return nil
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Providers lists the accepted Options.Provider values.
var Providers = []string{"cpu", "cuda", "tensorrt"}

// sessionOptions builds ONNX Runtime session options for opts and provider; a
// provider that cannot be appended is an error naming it (Load decides on fallback).
func sessionOptions(opts *Options, provider string) (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnxruntime session options: %w", err)
	}
	fail := func(err error) (*ort.SessionOptions, error) {
		so.Destroy()
		return nil, err
	}
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return fail(fmt.Errorf("intra_op_threads %d: %w", opts.IntraOpThreads, err))
		}
	}
	if opts.InterOpThreads > 0 {
		if err := so.SetInterOpNumThreads(opts.InterOpThreads); err != nil {
			return fail(fmt.Errorf("inter_op_threads %d: %w", opts.InterOpThreads, err))
		}
	}
	if !opts.AllowSpinning {
		// Idle ORT workers spinning between decoder steps steal the cores the
		// search and the other pipeline stages need.
		if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return fail(fmt.Errorf("session option allow_spinning: %w", err))
		}
	}
	level, err := optLevel(opts.GraphOptimization)
	if err != nil {
		return fail(err)
	}
	if err := so.SetGraphOptimizationLevel(level); err != nil {
		return fail(fmt.Errorf("graph optimisation level: %w", err))
	}
	switch provider {
	case "", "cpu":
	case "cuda":
		co, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return fail(fmt.Errorf("provider cuda: %s", firstLine(err.Error())))
		}
		defer co.Destroy()
		if err := co.Update(map[string]string{"device_id": fmt.Sprint(opts.DeviceID)}); err != nil {
			return fail(fmt.Errorf("provider cuda options: %s", firstLine(err.Error())))
		}
		if err := so.AppendExecutionProviderCUDA(co); err != nil {
			return fail(fmt.Errorf("provider cuda cannot load (needs onnxruntime-gpu and CUDA 12 libraries): %s", firstLine(err.Error())))
		}
	case "tensorrt":
		to, err := ort.NewTensorRTProviderOptions()
		if err != nil {
			return fail(fmt.Errorf("provider tensorrt: %s", firstLine(err.Error())))
		}
		defer to.Destroy()
		if err := to.Update(map[string]string{"device_id": fmt.Sprint(opts.DeviceID)}); err != nil {
			return fail(fmt.Errorf("provider tensorrt options: %s", firstLine(err.Error())))
		}
		if err := so.AppendExecutionProviderTensorRT(to); err != nil {
			return fail(fmt.Errorf("provider tensorrt cannot load (needs onnxruntime-gpu with TensorRT 10): %s", firstLine(err.Error())))
		}
	default:
		return fail(fmt.Errorf("provider %q is unknown; use one of %s", provider, strings.Join(Providers, ", ")))
	}
	return so, nil
}

func optLevel(s string) (ort.GraphOptimizationLevel, error) {
	switch strings.ToLower(s) {
	case "", "all":
		return ort.GraphOptimizationLevelEnableAll, nil
	case "extended":
		return ort.GraphOptimizationLevelEnableExtended, nil
	case "basic":
		return ort.GraphOptimizationLevelEnableBasic, nil
	case "disable", "none", "off":
		return ort.GraphOptimizationLevelDisableAll, nil
	}
	return 0, fmt.Errorf("graph_optimization %q is unknown; use all, extended, basic or disable", s)
}

// The rest of the package reaches ONNX Runtime only through the names below:
// this file is the package's one contact with the cgo binding.
type (
	session              = ort.DynamicAdvancedSession
	onnxValue            = ort.Value
	ioDesc               = ort.InputOutputInfo
	elemType             = ort.TensorElementDataType
	tensor[T tensorData] = ort.Tensor[T]
	tensorData           = ort.TensorData
)

const onnxTensor = ort.ONNXTypeTensor

// newTensor wraps data (not copied) as a tensor of the given shape.
func newTensor[T tensorData](data []T, dims ...int64) (*tensor[T], error) {
	return ort.NewTensor(ort.NewShape(dims...), data)
}

// release frees an ONNX Runtime object (tensor, value or session).
func release(x interface{ Destroy() error }) { _ = x.Destroy() }

// floatData views an ONNX Runtime allocated float32 tensor.
func floatData(v onnxValue) ([]float32, []int64, error) {
	t, ok := v.(*tensor[float32])
	if !ok {
		return nil, nil, fmt.Errorf("not a float32 tensor (%T)", v)
	}
	return t.GetData(), t.GetShape(), nil
}

func destroyIf[T ort.TensorData](t *tensor[T]) {
	if t != nil {
		release(t)
	}
}

func ioInfo(dir, file string) ([]ioDesc, []ioDesc, error) {
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
	n := max(opts.Sessions, 1)
	m.free = make(chan *sessionSet, n)
	for range n {
		s := &sessionSet{}
		m.sets = append(m.sets, s) // closeSessions releases a half-open set too
		if err := m.openSet(s, open); err != nil {
			return err
		}
		m.free <- s
	}
	return nil
}

// openSet opens one copy of the model's sessions into s.
func (m *Model) openSet(s *sessionSet, open func(file string, in, out []string) (*ort.DynamicAdvancedSession, error)) error {
	var err error
	if m.fl != nil {
		return m.openFlorence(s, open)
	}
	if s.encoder, err = open(fileEncoder, []string{"pixel_values"}, []string{"last_hidden_state"}); err != nil {
		return err
	}
	if m.kv != kvSelf {
		return m.openOtherDecoders(s, open)
	}
	if m.merged {
		in, out := m.decoderNames(true, true, m.decIn)
		if s.decoder, err = open(fileMerged, in, out); err != nil {
			return err
		}
	} else {
		in, out := m.decoderNames(false, false, m.dec0In)
		if s.decoder0, err = open(fileDecoder, in, out); err != nil {
			return err
		}
		in, out = m.decoderNames(true, false, m.decIn)
		if s.decoder, err = open(fileDecoderPast, in, out); err != nil {
			return err
		}
	}
	if m.attrs != nil {
		var outs []string
		for _, a := range m.attrs.Attributes {
			outs = append(outs, a.Output)
		}
		if s.attr, err = open(fileAttrModel, []string{m.attrs.Input}, outs); err != nil {
			return err
		}
	}
	return nil
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
