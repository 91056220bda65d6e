package inference

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretrained"
)

// detokenizer turns token ids back into text with the model's tokenizer.json.
// It wraps github.com/sugarme/tokenizer, which decodes GPT-2 style byte-level
// BPE exactly but panics on some pre-tokenizers it cannot build: every call
// recovers and returns an error instead.
type detokenizer struct {
	tk    *tokenizer.Tokenizer
	vocab int
}

// loadTokenizer parses tokenizer.json contents.
func loadTokenizer(data []byte) (d *detokenizer, err error) {
	defer func() {
		if r := recover(); r != nil {
			d, err = nil, fmt.Errorf("tokenizer library failed on it: %v", oneLine(fmt.Sprint(r)))
		}
	}()
	if err := strictJSON(data, &map[string]any{}); err != nil {
		return nil, err
	}
	tk, err := pretrained.FromReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("cannot build the tokenizer: %s", oneLine(err.Error()))
	}
	if tk == nil {
		return nil, fmt.Errorf("cannot build the tokenizer: no model section")
	}
	d = &detokenizer{tk: tk, vocab: tk.GetVocabSize(true)}
	// Decoding a probe catches decoders that only fail at use.
	if _, err := d.decode([]int64{0}); err != nil {
		return nil, err
	}
	return d, nil
}

// decode returns the text of ids without special tokens, stripped of surrounding space.
// Ids outside the vocabulary are dropped (the library's behaviour).
func (d *detokenizer) decode(ids []int64) (s string, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = "", fmt.Errorf("tokenizer decode failed: %v", oneLine(fmt.Sprint(r)))
		}
	}()
	in := make([]int, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && id < int64(d.vocab) {
			in = append(in, int(id))
		}
	}
	return strings.TrimSpace(d.tk.Decode(in, true)), nil
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// encode tokenises text without special tokens (Florence-2 prompts).
func (d *detokenizer) encode(text string) (ids []int64, err error) {
	defer func() {
		if r := recover(); r != nil {
			ids, err = nil, fmt.Errorf("tokenizer encode failed: %v", oneLine(fmt.Sprint(r)))
		}
	}()
	enc, err := d.tk.EncodeSingle(text, false)
	if err != nil {
		return nil, fmt.Errorf("tokenizer encode failed: %s", oneLine(err.Error()))
	}
	for _, id := range enc.Ids {
		ids = append(ids, int64(id))
	}
	return ids, nil
}

// decodeRaw returns the text of ids with special tokens kept, untrimmed, as
// transformers' batch_decode(skip_special_tokens=False) (Florence-2's answers
// carry their structure in <loc_*> and other added tokens).
func (d *detokenizer) decodeRaw(ids []int64) (s string, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = "", fmt.Errorf("tokenizer decode failed: %v", oneLine(fmt.Sprint(r)))
		}
	}()
	in := make([]int, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && id < int64(d.vocab) {
			in = append(in, int(id))
		}
	}
	return d.tk.Decode(in, false), nil
}
