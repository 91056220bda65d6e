package inference

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ModelConfig is the part of a VisionEncoderDecoder config.json the engine reads.
type ModelConfig struct {
	ModelType           string        `json:"model_type"`
	Encoder             EncoderConfig `json:"encoder"`
	Decoder             DecoderConfig `json:"decoder"`
	DecoderStartTokenID *int64        `json:"decoder_start_token_id"`
	PadTokenID          *int64        `json:"pad_token_id"`
	BosTokenID          *int64        `json:"bos_token_id"`
	EOSTokenID          TokenIDs      `json:"eos_token_id"`

	// legacy holds generation fields written into config.json itself (older
	// exports); transformers uses them only when generation_config.json is absent.
	legacy GenerationOptions
}

// EncoderConfig is the ViT part of config.json.
type EncoderConfig struct {
	ModelType   string `json:"model_type"`
	HiddenSize  int    `json:"hidden_size"`
	ImageSize   int    `json:"image_size"`
	PatchSize   int    `json:"patch_size"`
	NumChannels int    `json:"num_channels"`
	NumLayers   int    `json:"num_hidden_layers"`
	NumHeads    int    `json:"num_attention_heads"`
	// Depths are Swin's layers per stage: each stage after the first merges
	// 2x2 patches, which fixes the encoder's sequence length.
	Depths []int `json:"depths,omitempty"`
}

// DecoderConfig is the GPT-2 part of config.json.
type DecoderConfig struct {
	ModelType           string   `json:"model_type"`
	VocabSize           int      `json:"vocab_size"`
	NEmbd               int      `json:"n_embd"`
	NHead               int      `json:"n_head"`
	NLayer              int      `json:"n_layer"`
	NPositions          int      `json:"n_positions"`
	DecoderStartTokenID *int64   `json:"decoder_start_token_id"`
	PadTokenID          *int64   `json:"pad_token_id"`
	BosTokenID          *int64   `json:"bos_token_id"`
	EOSTokenID          TokenIDs `json:"eos_token_id"`
}

// TokenIDs decodes a JSON token id that may be null, one integer or a list of integers.
type TokenIDs []int64

// UnmarshalJSON accepts null, an integer or a list of integers.
func (t *TokenIDs) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*t = nil
		return nil
	}
	var one int64
	if err := json.Unmarshal(b, &one); err == nil {
		*t = TokenIDs{one}
		return nil
	}
	var many []int64
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("token id must be an integer or a list of integers, got %.40s", b)
	}
	*t = many
	return nil
}

// EarlyStopping is generation_config's early_stopping: true, false or "never".
type EarlyStopping string

// The three early_stopping values of transformers.
const (
	EarlyStopFalse EarlyStopping = "false"
	EarlyStopTrue  EarlyStopping = "true"
	EarlyStopNever EarlyStopping = "never"
)

// UnmarshalJSON accepts true, false, null (false) or "never".
func (e *EarlyStopping) UnmarshalJSON(b []byte) error {
	switch strings.TrimSpace(string(b)) {
	case "true":
		*e = EarlyStopTrue
	case "false", "null":
		*e = EarlyStopFalse
	case `"never"`:
		*e = EarlyStopNever
	default:
		return fmt.Errorf("early_stopping must be true, false or \"never\", got %.40s", b)
	}
	return nil
}

// MarshalJSON writes the transformers spelling.
func (e EarlyStopping) MarshalJSON() ([]byte, error) {
	if e == EarlyStopNever {
		return []byte(`"never"`), nil
	}
	if e == EarlyStopTrue {
		return []byte("true"), nil
	}
	return []byte("false"), nil
}

// GenerationOptions overrides generation settings; nil fields keep the model's
// generation_config.json value (itself defaulting as in transformers 4.57).
type GenerationOptions struct {
	MaxLength          *int           `json:"max_length,omitempty" yaml:"max_length,omitempty"`
	MaxNewTokens       *int           `json:"max_new_tokens,omitempty" yaml:"max_new_tokens,omitempty"`
	MinLength          *int           `json:"min_length,omitempty" yaml:"min_length,omitempty"`
	MinNewTokens       *int           `json:"min_new_tokens,omitempty" yaml:"min_new_tokens,omitempty"`
	NumBeams           *int           `json:"num_beams,omitempty" yaml:"num_beams,omitempty"`
	NumReturnSequences *int           `json:"num_return_sequences,omitempty" yaml:"num_return_sequences,omitempty"`
	LengthPenalty      *float64       `json:"length_penalty,omitempty" yaml:"length_penalty,omitempty"`
	EarlyStopping      *EarlyStopping `json:"early_stopping,omitempty" yaml:"early_stopping,omitempty"`
	NoRepeatNgramSize  *int           `json:"no_repeat_ngram_size,omitempty" yaml:"no_repeat_ngram_size,omitempty"`
	RepetitionPenalty  *float64       `json:"repetition_penalty,omitempty" yaml:"repetition_penalty,omitempty"`
	DecoderStartToken  *int64         `json:"decoder_start_token_id,omitempty" yaml:"decoder_start_token_id,omitempty"`
	EOSTokenID         TokenIDs       `json:"eos_token_id,omitempty" yaml:"eos_token_id,omitempty"`
	PadTokenID         *int64         `json:"pad_token_id,omitempty" yaml:"pad_token_id,omitempty"`
	DoSample           *bool          `json:"do_sample,omitempty" yaml:"do_sample,omitempty"`
	// ForcedBOSTokenID and ForcedEOSTokenID force the first generated token and the
	// token at max_length-1 (BART and Florence-2 set forced_eos_token_id).
	ForcedBOSTokenID *int64 `json:"forced_bos_token_id,omitempty" yaml:"forced_bos_token_id,omitempty"`
	ForcedEOSTokenID *int64 `json:"forced_eos_token_id,omitempty" yaml:"forced_eos_token_id,omitempty"`
}

// GenerationSettings are the resolved settings one Caption call decodes with.
type GenerationSettings struct {
	// MaxLength counts the decoder start token (transformers semantics).
	MaxLength int `json:"max_length"`
	// MinLength counts the decoder start token: EOS is banned while the sequence is shorter.
	MinLength          int           `json:"min_length"`
	NumBeams           int           `json:"num_beams"`
	NumReturnSequences int           `json:"num_return_sequences"`
	LengthPenalty      float64       `json:"length_penalty"`
	EarlyStopping      EarlyStopping `json:"early_stopping"`
	NoRepeatNgramSize  int           `json:"no_repeat_ngram_size"`
	RepetitionPenalty  float64       `json:"repetition_penalty"`
	DecoderStartToken  int64         `json:"decoder_start_token_id"`
	EOSTokenIDs        []int64       `json:"eos_token_id"`
	PadTokenID         int64         `json:"pad_token_id"`
	// ForcedBOS and ForcedEOS are nil when unset (the zero value forces nothing).
	ForcedBOS *int64 `json:"forced_bos_token_id,omitempty"`
	ForcedEOS *int64 `json:"forced_eos_token_id,omitempty"`
	// SamplingAsked records do_sample=true somewhere: sampling is not supported,
	// decoding stays deterministic (greedy or beam search).
	SamplingAsked bool `json:"-"`
}

// generationConfigFile is generation_config.json.
type generationConfigFile struct {
	GenerationOptions
	BosTokenID *int64 `json:"bos_token_id"`
}

// parseModelConfig parses and checks config.json.
func parseModelConfig(data []byte) (*ModelConfig, error) {
	var c ModelConfig
	if err := strictJSON(data, &c); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &c.legacy); err != nil {
		return nil, jsonError(data, err)
	}
	c.legacy.EOSTokenID, c.legacy.PadTokenID, c.legacy.DecoderStartToken = nil, nil, nil
	if c.ModelType != "vision-encoder-decoder" {
		return nil, fmt.Errorf("model_type is %q, want \"vision-encoder-decoder\" (export with task image-to-text-with-past)", c.ModelType)
	}
	if !slices.Contains(Encoders, c.Encoder.ModelType) {
		return nil, fmt.Errorf("encoder.model_type %q is not supported (encoders: %s)", c.Encoder.ModelType, strings.Join(Encoders, ", "))
	}
	if !slices.Contains(Decoders, c.Decoder.ModelType) {
		return nil, fmt.Errorf("decoder.model_type %q is not supported (decoders: %s)", c.Decoder.ModelType, strings.Join(Decoders, ", "))
	}
	d := c.Decoder
	switch {
	case d.VocabSize <= 0 || d.VocabSize > 1<<24:
		return nil, fmt.Errorf("decoder.vocab_size %d is out of range", d.VocabSize)
	case d.NLayer <= 0 || d.NLayer > 1024:
		return nil, fmt.Errorf("decoder.n_layer %d is out of range", d.NLayer)
	case d.NHead <= 0 || d.NEmbd <= 0 || d.NEmbd%d.NHead != 0:
		return nil, fmt.Errorf("decoder.n_embd %d is not a positive multiple of n_head %d", d.NEmbd, d.NHead)
	}
	if c.Encoder.NumChannels == 0 {
		c.Encoder.NumChannels = 3
	}
	return &c, nil
}

// parseGenerationConfig parses generation_config.json (may be nil for an absent file)
// and resolves it against config.json the way transformers does.
func resolveGeneration(cfg *ModelConfig, genJSON []byte, over *GenerationOptions) (GenerationSettings, error) {
	g := GenerationSettings{
		MaxLength:          20,
		NumBeams:           1,
		NumReturnSequences: 1,
		LengthPenalty:      1,
		EarlyStopping:      EarlyStopFalse,
		RepetitionPenalty:  1,
	}
	// config.json first (top level, then decoder), then generation_config.json, then overrides.
	first := func(ps ...*int64) *int64 {
		for _, p := range ps {
			if p != nil {
				return p
			}
		}
		return nil
	}
	start := first(cfg.DecoderStartTokenID, cfg.Decoder.DecoderStartTokenID, cfg.BosTokenID, cfg.Decoder.BosTokenID)
	pad := first(cfg.PadTokenID, cfg.Decoder.PadTokenID)
	eos := cfg.EOSTokenID
	if eos == nil {
		eos = cfg.Decoder.EOSTokenID
	}
	var opts []*GenerationOptions
	if len(genJSON) == 0 {
		opts = append(opts, &cfg.legacy)
	} else {
		var f generationConfigFile
		if err := json.Unmarshal(genJSON, &f); err != nil {
			return g, jsonError(genJSON, err)
		}
		if start == nil && f.BosTokenID != nil {
			start = f.BosTokenID
		}
		opts = append(opts, &f.GenerationOptions)
	}
	if over != nil {
		opts = append(opts, over)
	}
	var maxNew, minNew *int
	for _, o := range opts {
		g.apply(o, &start, &pad, &eos, &maxNew, &minNew)
	}
	// max_new_tokens wins over max_length; both count from the one-token decoder prompt.
	if maxNew != nil {
		g.MaxLength = *maxNew + 1
	}
	if minNew != nil {
		g.MinLength = *minNew + 1
	}
	if start == nil {
		return g, errors.New("no decoder_start_token_id (nor bos_token_id) in config.json or generation_config.json")
	}
	g.DecoderStartToken = *start
	g.EOSTokenIDs = append([]int64(nil), eos...)
	switch {
	case pad != nil:
		g.PadTokenID = *pad
	case len(eos) > 0:
		g.PadTokenID = eos[0]
	default:
		g.PadTokenID = g.DecoderStartToken
	}
	if err := g.validate(cfg.Decoder.VocabSize); err != nil {
		return g, err
	}
	if np := cfg.Decoder.NPositions; np > 0 && g.MaxLength > np {
		return g, fmt.Errorf("generation setting max_length = %d: exceeds the decoder's %d positions (config.json decoder.n_positions)", g.MaxLength, np)
	}
	return g, nil
}

// validate checks the settings against the vocabulary size; errors name the field.
func (g GenerationSettings) validate(vocab int) error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("generation setting %s = %v: %s", field, v, want)
	}
	switch {
	case g.MaxLength < 2 || g.MaxLength > 1<<16:
		return bad("max_length", g.MaxLength, "must be in [2, 65536] (it counts the decoder start token)")
	case g.MinLength < 0 || g.MinLength > g.MaxLength:
		return bad("min_length", g.MinLength, "must be in [0, max_length]")
	case g.NumBeams < 1 || g.NumBeams > 64:
		return bad("num_beams", g.NumBeams, "must be in [1, 64]")
	case g.NumReturnSequences < 1 || g.NumReturnSequences > g.NumBeams:
		return bad("num_return_sequences", g.NumReturnSequences, "must be in [1, num_beams]")
	case math.IsNaN(g.LengthPenalty) || math.IsInf(g.LengthPenalty, 0):
		return bad("length_penalty", g.LengthPenalty, "must be finite")
	case g.NoRepeatNgramSize < 0:
		return bad("no_repeat_ngram_size", g.NoRepeatNgramSize, "must be >= 0")
	case !(g.RepetitionPenalty > 0) || math.IsInf(g.RepetitionPenalty, 0):
		return bad("repetition_penalty", g.RepetitionPenalty, "must be a positive number")
	case g.EarlyStopping != EarlyStopFalse && g.EarlyStopping != EarlyStopTrue && g.EarlyStopping != EarlyStopNever:
		return bad("early_stopping", g.EarlyStopping, `must be true, false or "never"`)
	}
	inVocab := func(id int64) bool { return id >= 0 && id < int64(vocab) }
	if !inVocab(g.DecoderStartToken) {
		return bad("decoder_start_token_id", g.DecoderStartToken, fmt.Sprintf("outside the vocabulary [0, %d)", vocab))
	}
	for _, e := range g.EOSTokenIDs {
		if !inVocab(e) {
			return bad("eos_token_id", e, fmt.Sprintf("outside the vocabulary [0, %d)", vocab))
		}
	}
	if f := g.ForcedBOS; f != nil && !inVocab(*f) {
		return bad("forced_bos_token_id", *f, fmt.Sprintf("outside the vocabulary [0, %d)", vocab))
	}
	if f := g.ForcedEOS; f != nil && !inVocab(*f) {
		return bad("forced_eos_token_id", *f, fmt.Sprintf("outside the vocabulary [0, %d)", vocab))
	}
	if !inVocab(g.PadTokenID) {
		return bad("pad_token_id", g.PadTokenID, fmt.Sprintf("outside the vocabulary [0, %d)", vocab))
	}
	return nil
}

// AttributeSpec is one head of attributes_model.onnx.
type AttributeSpec struct {
	Name    string   `json:"name"`
	Classes []string `json:"classes"`
	// Output is the ONNX output name holding the class probabilities [B, len(Classes)].
	Output string `json:"output"`
}

// attributesFile is attributes.json as written by the training export.
type attributesFile struct {
	Attributes []AttributeSpec `json:"attributes"`
	Input      string          `json:"input"`
}

// parseAttributes parses attributes.json; output defaults to "probs_<name>", input to last_hidden_state.
func parseAttributes(data []byte) (*attributesFile, error) {
	var a attributesFile
	if err := strictJSON(data, &a); err != nil {
		return nil, err
	}
	if len(a.Attributes) == 0 {
		return nil, errors.New("no attributes listed (want {\"attributes\": [{\"name\", \"classes\", \"output\"}]})")
	}
	if a.Input == "" {
		a.Input = "last_hidden_state"
	}
	seen := map[string]bool{}
	for i := range a.Attributes {
		s := &a.Attributes[i]
		if s.Name == "" {
			return nil, fmt.Errorf("attribute %d has no name", i)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("attribute %q listed twice", s.Name)
		}
		seen[s.Name] = true
		if len(s.Classes) == 0 {
			return nil, fmt.Errorf("attribute %q has no classes", s.Name)
		}
		if s.Output == "" {
			s.Output = "probs_" + s.Name
		}
	}
	return &a, nil
}

// strictJSON decodes one JSON object and rejects trailing data.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return jsonError(data, err)
	}
	if dec.More() {
		return errors.New("invalid JSON: trailing data after the object")
	}
	return nil
}

// jsonError makes a one-line message with the byte offset of a syntax error.
func jsonError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %w", se.Offset, err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return fmt.Errorf("top level is a JSON %s, want an object", te.Value)
		}
		return fmt.Errorf("field %q has the wrong type (%s, want %s)", strings.TrimPrefix(te.Field, "GenerationOptions."), te.Value, te.Type)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("empty or truncated JSON")
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// apply lays one set of options over g (later sets win); the token ids and
// the *_new_tokens fields are resolved by the caller.
func (g *GenerationSettings) apply(o *GenerationOptions, start, pad **int64, eos *TokenIDs, maxNew, minNew **int) {
	if o.MaxLength != nil {
		g.MaxLength, *maxNew = *o.MaxLength, nil
	}
	if o.MaxNewTokens != nil {
		*maxNew = o.MaxNewTokens
	}
	if o.MinLength != nil {
		g.MinLength = *o.MinLength
	}
	if o.MinNewTokens != nil {
		*minNew = o.MinNewTokens
	}
	if o.NumBeams != nil {
		g.NumBeams = *o.NumBeams
	}
	if o.NumReturnSequences != nil {
		g.NumReturnSequences = *o.NumReturnSequences
	}
	if o.LengthPenalty != nil {
		g.LengthPenalty = *o.LengthPenalty
	}
	if o.EarlyStopping != nil {
		g.EarlyStopping = *o.EarlyStopping
	}
	if o.NoRepeatNgramSize != nil {
		g.NoRepeatNgramSize = *o.NoRepeatNgramSize
	}
	if o.RepetitionPenalty != nil {
		g.RepetitionPenalty = *o.RepetitionPenalty
	}
	if o.DecoderStartToken != nil {
		*start = o.DecoderStartToken
	}
	if o.EOSTokenID != nil {
		*eos = o.EOSTokenID
	}
	if o.PadTokenID != nil {
		*pad = o.PadTokenID
	}
	if o.DoSample != nil {
		g.SamplingAsked = *o.DoSample
	}
	if o.ForcedBOSTokenID != nil {
		g.ForcedBOS = o.ForcedBOSTokenID
	}
	if o.ForcedEOSTokenID != nil {
		g.ForcedEOS = o.ForcedEOSTokenID
	}
}

// ReadAttributeSpecs reads a model folder's attributes.json without loading
// the model (for checking rules offline); nil and no error when the folder
// has none.
func ReadAttributeSpecs(dir string) ([]AttributeSpec, error) {
	b, err := os.ReadFile(filepath.Join(dir, fileAttrJSON))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a, err := parseAttributes(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, fileAttrJSON), err)
	}
	return a.Attributes, nil
}
