package inference

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Florence-2 graphs, as onnx-community's folders for Transformers.js name them
// (in the folder itself or its onnx/ subfolder).
const (
	fileFlVision  = "vision_encoder.onnx"
	fileFlEmbed   = "embed_tokens.onnx"
	fileFlEncoder = "encoder_model.onnx"
	fileFlDecoder = "decoder_model_merged.onnx"
)

// florence is the Florence-2 half of a Model: a DaViT vision encoder whose
// features are put before the task prompt's embeddings, a BART encoder over
// both, and a BART decoder with self- and cross-attention KV caches.
type florence struct {
	onnxDir string // folder holding the four graphs
	task    string // default task
	prompts map[string][]int64
	imageID int64

	graphs []GraphInfo
}

// florenceConfig is the part of a Florence-2 config.json lookout reads.
type florenceConfig struct {
	ModelType    string `json:"model_type"`
	ImageTokenID *int64 `json:"image_token_id"`
	TextConfig   struct {
		ModelType           string   `json:"model_type"`
		VocabSize           int      `json:"vocab_size"`
		DModel              int      `json:"d_model"`
		DecoderLayers       int      `json:"decoder_layers"`
		DecoderHeads        int      `json:"decoder_attention_heads"`
		MaxPositions        int      `json:"max_position_embeddings"`
		DecoderStartTokenID *int64   `json:"decoder_start_token_id"`
		BosTokenID          *int64   `json:"bos_token_id"`
		PadTokenID          *int64   `json:"pad_token_id"`
		EOSTokenID          TokenIDs `json:"eos_token_id"`
	} `json:"text_config"`
}

// Architecture names the model family of a folder from its config.json:
// "vision-encoder-decoder", "florence2", or the folder's own model_type for
// families lookout does not run (supported false).
func Architecture(dir string) (arch string, supported bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, fileConfig))
	if err != nil {
		return "", false, fmt.Errorf("model %s: %s: %v", dir, fileConfig, unwrapPathErr(err))
	}
	var c struct {
		ModelType string `json:"model_type"`
		Encoder   struct {
			ModelType string `json:"model_type"`
		} `json:"encoder"`
		Decoder struct {
			ModelType string `json:"model_type"`
		} `json:"decoder"`
	}
	if err := strictJSON(b, &c); err != nil {
		return "", false, fileError(dir, fileConfig, "%v", err)
	}
	if c.ModelType == "vision-encoder-decoder" && (!slices.Contains(Encoders, c.Encoder.ModelType) || !slices.Contains(Decoders, c.Decoder.ModelType)) {
		return fmt.Sprintf("vision-encoder-decoder with a %s encoder and a %s decoder", c.Encoder.ModelType, c.Decoder.ModelType), false, nil
	}
	switch c.ModelType {
	case "vision-encoder-decoder", "florence2":
		return c.ModelType, true, nil
	case "":
		return "", false, fileError(dir, fileConfig, "has no model_type")
	}
	return c.ModelType, false, nil
}

// parseFlorenceConfig reads config.json into the generic ModelConfig the
// generation settings resolve against.
func parseFlorenceConfig(data []byte) (*ModelConfig, *florenceConfig, error) {
	var f florenceConfig
	if err := strictJSON(data, &f); err != nil {
		return nil, nil, err
	}
	t := f.TextConfig
	switch {
	case t.ModelType != "" && t.ModelType != "bart" && t.ModelType != "florence2_language":
		// transformers 4.57 writes "bart"; Microsoft's remote-code config (copied by
		// onnx-community's folders) says "florence2_language" for the same BART.
		return nil, nil, fmt.Errorf("text_config.model_type is %q, want \"bart\" or \"florence2_language\"", t.ModelType)
	case t.VocabSize <= 0 || t.VocabSize > 1<<24:
		return nil, nil, fmt.Errorf("text_config.vocab_size %d is out of range", t.VocabSize)
	case t.DecoderLayers <= 0 || t.DecoderLayers > 1024:
		return nil, nil, fmt.Errorf("text_config.decoder_layers %d is out of range", t.DecoderLayers)
	case t.DecoderHeads <= 0 || t.DModel <= 0 || t.DModel%t.DecoderHeads != 0:
		return nil, nil, fmt.Errorf("text_config.d_model %d is not a positive multiple of decoder_attention_heads %d", t.DModel, t.DecoderHeads)
	}
	c := &ModelConfig{ModelType: f.ModelType, DecoderStartTokenID: t.DecoderStartTokenID, PadTokenID: t.PadTokenID,
		BosTokenID: t.BosTokenID, EOSTokenID: t.EOSTokenID}
	c.Decoder = DecoderConfig{ModelType: "bart", VocabSize: t.VocabSize, NEmbd: t.DModel, NHead: t.DecoderHeads,
		NLayer: t.DecoderLayers, NPositions: t.MaxPositions}
	c.Encoder.NumChannels = 3
	return c, &f, nil
}

// loadFlorence fills m from a Florence-2 folder (config.json said florence2).
func (m *Model) loadFlorence(cfgB []byte, opts *Options) error {
	dir := m.dir
	cfg, fc, err := parseFlorenceConfig(cfgB)
	if err != nil {
		return fileError(dir, fileConfig, "%v", err)
	}
	m.cfg = cfg
	fl := &florence{task: TaskCaption}
	if opts.Task != "" {
		if err := checkTask(opts.Task); err != nil {
			return fmt.Errorf("model %s: %w", dir, err)
		}
		fl.task = opts.Task
	}
	if fl.onnxDir, err = florenceGraphDir(dir); err != nil {
		return err
	}
	if err := m.readCommon(opts); err != nil {
		return err
	}
	if m.tok.vocab > cfg.Decoder.VocabSize {
		return fileError(dir, fileTokenizer, "vocabulary has %d tokens but config.json text_config.vocab_size is %d; the tokenizer does not belong to this model", m.tok.vocab, cfg.Decoder.VocabSize)
	}
	if fl.prompts, err = florencePrompts(m.tok, cfg); err != nil {
		return fileError(dir, fileTokenizer, "%v", err)
	}
	if fc.ImageTokenID != nil {
		fl.imageID = *fc.ImageTokenID
	}
	m.fl = fl
	m.vocab, m.layers, m.heads = cfg.Decoder.VocabSize, cfg.Decoder.NLayer, cfg.Decoder.NHead
	m.hidden = cfg.Decoder.NEmbd
	m.headDim = m.hidden / m.heads
	if err := initEnvironment(opts.LibraryPath); err != nil {
		return err
	}
	if err := m.checkFlorenceGraphs(); err != nil {
		return err
	}
	files := []string{fileFlVision, fileFlEmbed, fileFlEncoder, fileFlDecoder}
	if m.digest, err = digestFiles(fl.onnxDir, files); err != nil {
		return err
	}
	return m.openSessions(opts)
}

// florenceGraphDir finds the folder holding the four graphs: the model folder or its onnx/.
func florenceGraphDir(dir string) (string, error) {
	for _, d := range []string{dir, filepath.Join(dir, "onnx")} {
		if _, err := os.Stat(filepath.Join(d, fileFlVision)); err == nil {
			for _, f := range []string{fileFlEmbed, fileFlEncoder, fileFlDecoder} {
				if _, err := os.Stat(filepath.Join(d, f)); err != nil {
					return "", fileError(d, f, "missing; a Florence-2 folder holds %s, %s, %s and %s (onnx-community's layout)", fileFlVision, fileFlEmbed, fileFlEncoder, fileFlDecoder)
				}
			}
			return d, nil
		}
	}
	return "", fileError(dir, "onnx/"+fileFlVision, "missing; a Florence-2 folder holds onnx/%s, %s, %s and %s (onnx-community's layout for Transformers.js)", fileFlVision, fileFlEmbed, fileFlEncoder, fileFlDecoder)
}

// florencePrompts tokenises each task's prompt as the processor does:
// <s> prompt </s>, no other special tokens.
func florencePrompts(tok *detokenizer, cfg *ModelConfig) (map[string][]int64, error) {
	bos, eos := int64(0), int64(2)
	if cfg.BosTokenID != nil {
		bos = *cfg.BosTokenID
	}
	if len(cfg.EOSTokenID) > 0 {
		eos = cfg.EOSTokenID[0]
	}
	out := map[string][]int64{}
	for task, text := range taskPrompts {
		ids, err := tok.encode(text)
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			return nil, errors.New("encodes a task prompt to no tokens")
		}
		out[task] = append(append([]int64{bos}, ids...), eos)
	}
	return out, nil
}

// florenceTask picks the task of a call: the call's, else the model's default.
func (m *Model) florenceTask(task string) (string, error) {
	if task == "" {
		return m.fl.task, nil
	}
	if err := checkTask(task); err != nil {
		return "", fmt.Errorf("model %s: %w", m.name, err)
	}
	return task, nil
}
