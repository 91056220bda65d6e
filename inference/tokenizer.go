package inference

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

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
func (d *detokenizer) decode(ids []int64) (string, error) {
	s, err := d.decodeIDs(ids, true)
	return strings.TrimSpace(s), err
}

// decodeIDs decodes the ids inside the vocabulary, with or without the
// special tokens, turning a panic of the library into an error.
func (d *detokenizer) decodeIDs(ids []int64, skipSpecial bool) (s string, err error) {
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
	return replaceInvalidUTF8(d.tk.Decode(in, skipSpecial)), nil
}

// replaceInvalidUTF8 does what Python's bytes.decode("utf-8", errors="replace")
// does to the bytes a byte-level BPE decodes to: each maximal invalid
// subpart (a stray byte, or a truncated sequence's valid prefix) becomes one
// U+FFFD. strings.ToValidUTF8 would fold a run of them into one.
func replaceInvalidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r != utf8.RuneError || n > 1 {
			b.WriteString(s[i : i+n])
			i += n
			continue
		}
		b.WriteRune(utf8.RuneError)
		i += invalidSubpart(s[i:])
	}
	return b.String()
}

// invalidSubpart is the length of the maximal subpart of an ill-formed
// sequence starting at s[0] (Unicode 15, table 3-7): 1 for a byte that cannot
// start a sequence, else the lead byte plus the continuation bytes that were
// still valid before the sequence broke off.
func invalidSubpart(s string) int {
	c := s[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	default:
		return 1
	}
	n := 1
	for ; n <= need && n < len(s); n++ {
		if s[n] < lo || s[n] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return n
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
func (d *detokenizer) decodeRaw(ids []int64) (string, error) { return d.decodeIDs(ids, false) }
