package inference

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// Load opens a model folder, checks every file against the others and creates
// the ONNX Runtime sessions. config.json picks the family: model_type
// "florence2" loads Florence-2 (onnx-community's layout); anything else is read
// as optimum's image-to-text-with-past layout. Errors are one line naming the
// file and what is wrong.
func Load(dir string, opts Options) (*Model, error) {
	m, err := newModel(dir, &opts)
	if err != nil {
		return nil, err
	}
	load := m.loadVED
	if cfgB, err := m.read(fileConfig, false); err == nil && isFlorenceConfig(cfgB) {
		load = func(o *Options) error { return m.loadFlorence(cfgB, o) }
	}
	if err := load(&opts); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// isFlorenceConfig reports whether config.json says model_type florence2.
func isFlorenceConfig(b []byte) bool {
	var c struct {
		ModelType string `json:"model_type"`
	}
	return strictJSON(b, &c) == nil && c.ModelType == "florence2"
}

// newModel checks the folder and the options that need no file.
func newModel(dir string, opts *Options) (*Model, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w; pass a folder exported by optimum with task image-to-text-with-past (e.g. models/demo) or a Florence-2 folder", dir, unwrapPathErr(err))
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
	return m, nil
}

// read returns a file of the folder; an absent optional file is nil, nil.
func (m *Model) read(name string, required bool) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(m.dir, name))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !required {
			return nil, nil
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil, fileError(m.dir, name, "missing; export the model with optimum task image-to-text-with-past")
		}
		return nil, fileError(m.dir, name, "%v", unwrapPathErr(err))
	}
	return b, nil
}

func (m *Model) exists(name string) bool {
	_, err := os.Stat(filepath.Join(m.dir, name))
	return err == nil
}

// loadVED loads optimum's VisionEncoderDecoder layout.
func (m *Model) loadVED(opts *Options) error {
	if opts.Task != "" {
		return fmt.Errorf("model %s: task %s needs a Florence-2 model (config.json model_type florence2); remove model.task or --task", m.dir, opts.Task)
	}
	if err := m.pickLayout(opts.Decoder); err != nil {
		return err
	}
	cfgB, err := m.read(fileConfig, true)
	if err != nil {
		return err
	}
	if m.cfg, err = parseModelConfig(cfgB); err != nil {
		return fileError(m.dir, fileConfig, "%v", err)
	}
	if err := m.readCommon(opts); err != nil {
		return err
	}
	m.vocab = m.cfg.Decoder.VocabSize
	if m.tok.vocab != m.vocab {
		return fileError(m.dir, fileTokenizer, "vocabulary has %d tokens but config.json decoder.vocab_size is %d; the tokenizer does not belong to this model", m.tok.vocab, m.vocab)
	}
	m.layers, m.heads = m.cfg.Decoder.NLayer, m.cfg.Decoder.NHead
	m.hidden = m.cfg.Decoder.NEmbd
	m.headDim = m.hidden / m.heads
	if err := m.readAttributes(); err != nil {
		return err
	}
	if err := m.readDomain(); err != nil {
		return err
	}
	if err := initEnvironment(opts.LibraryPath); err != nil {
		return err
	}
	if err := m.checkGraphs(); err != nil {
		return err
	}
	if m.digest, err = digestFiles(m.dir, m.onnxFiles()); err != nil {
		return err
	}
	return m.openSessions(opts)
}

// pickLayout finds the encoder and the decoder files (merged or split).
func (m *Model) pickLayout(decoder string) error {
	dir, exists := m.dir, m.exists
	// Layout first: a folder of another task has no encoder/decoder pair.
	if !exists(fileEncoder) {
		if exists("model.onnx") {
			return fileError(dir, fileEncoder, "missing (the folder holds model.onnx: a single-model export, not image-to-text-with-past)")
		}
		return fileError(dir, fileEncoder, "missing; export the model with optimum task image-to-text-with-past")
	}
	switch {
	case decoder == "merged" && !exists(fileMerged):
		return fileError(dir, fileMerged, "missing, and decoder merged was asked for; use decoder auto or split, or export with optimum's default layout")
	case decoder == "split" && !(exists(fileDecoder) && exists(fileDecoderPast)):
		missing := fileDecoder
		if exists(fileDecoder) {
			missing = fileDecoderPast
		}
		return fileError(dir, missing, "missing, and decoder split was asked for; use decoder auto or merged, or export without optimum's post-processing")
	case decoder != "split" && exists(fileMerged):
		m.merged = true
	case exists(fileDecoder):
		// Alone, it is a decoder without a cache (BERT, RoBERTa) or an
		// incomplete export: checkDecoders reads the graph to tell.
	default:
		return fileError(dir, fileMerged, "missing (nor %s + %s); export with task image-to-text-with-past", fileDecoder, fileDecoderPast)
	}
	return nil
}

// readCommon reads what both families share: generation_config.json (with
// the overrides), preprocessor_config.json and tokenizer.json. m.cfg is set.
func (m *Model) readCommon(opts *Options) error {
	dir := m.dir
	genB, err := m.read(fileGeneration, false)
	if err != nil {
		return err
	}
	// The folder's own settings first, so that an error blames the right
	// place: the file, or the overrides (config model.generation, flags).
	if _, err = resolveGeneration(m.cfg, genB, nil); err != nil {
		return fileError(dir, fileGeneration, "%v", err)
	}
	if m.gen, err = resolveGeneration(m.cfg, genB, &opts.Generation); err != nil {
		return fmt.Errorf("model %s: override of %s: %v (set by model.generation in the config or a command-line flag)", dir, fileGeneration, err)
	}
	if m.gen.SamplingAsked {
		m.log.Warn().Str("model", m.name).Msg("do_sample is not supported; decoding deterministically")
	}
	preB, err := m.read(filePreprocessor, true)
	if err != nil {
		return err
	}
	if m.pre, err = parsePreprocessConfig(preB); err != nil {
		return fileError(dir, filePreprocessor, "%v", err)
	}
	tokB, err := m.read(fileTokenizer, true)
	if err != nil {
		return err
	}
	if m.tok, err = loadTokenizer(tokB); err != nil {
		return fileError(dir, fileTokenizer, "%v", err)
	}
	return nil
}

// readAttributes reads the optional attribute heads (both files or neither).
func (m *Model) readAttributes() error {
	attrJSON, attrModel := m.exists(fileAttrJSON), m.exists(fileAttrModel)
	if attrJSON != attrModel {
		missing := fileAttrJSON
		if attrJSON {
			missing = fileAttrModel
		}
		return fileError(m.dir, missing, "missing while its partner is present; ship attributes_model.onnx and attributes.json together")
	}
	if !attrJSON {
		return nil
	}
	b, err := m.read(fileAttrJSON, true)
	if err != nil {
		return err
	}
	if m.attrs, err = parseAttributes(b); err != nil {
		return fileError(m.dir, fileAttrJSON, "%v", err)
	}
	return nil
}

func (m *Model) onnxFiles() []string {
	f := []string{fileEncoder}
	if m.merged {
		f = append(f, fileMerged)
	} else if m.kv == kvNone {
		f = append(f, fileDecoder)
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
