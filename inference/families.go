package inference

import "encoding/json"

// Encoders and Decoders are the VisionEncoderDecoder families the engine
// runs (docs/MODELS.md). The decoder's graph contract (its KV cache) is read
// from the graph itself: GPT-2 style self-attention cache, TrOCR/BART style
// self + cross-attention cache, or none (optimum exports BERT and RoBERTa
// decoders without one).
var (
	Encoders = []string{"vit", "deit", "beit", "swin"}
	Decoders = []string{"gpt2", "trocr", "bart", "mbart", "bert", "roberta"}
)

// UnmarshalJSON reads the decoder's sizes under any family's names: GPT-2's
// n_embd/n_head/n_layer/n_positions, BERT's hidden_size/num_attention_heads/
// num_hidden_layers/max_position_embeddings, TrOCR and BART's
// d_model/decoder_attention_heads/decoder_layers.
func (d *DecoderConfig) UnmarshalJSON(b []byte) error {
	type plain DecoderConfig
	var aux struct {
		plain
		HiddenSize  int `json:"hidden_size"`
		NumHeads    int `json:"num_attention_heads"`
		NumLayers   int `json:"num_hidden_layers"`
		DModel      int `json:"d_model"`
		DecHeads    int `json:"decoder_attention_heads"`
		DecLayers   int `json:"decoder_layers"`
		MaxPosition int `json:"max_position_embeddings"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*d = DecoderConfig(aux.plain)
	if d.ModelType == "gpt2" {
		return nil
	}
	firstSet := func(v ...int) int {
		for _, x := range v {
			if x != 0 {
				return x
			}
		}
		return 0
	}
	d.NEmbd = firstSet(aux.DModel, aux.HiddenSize)
	d.NHead = firstSet(aux.DecHeads, aux.NumHeads)
	d.NLayer = firstSet(aux.DecLayers, aux.NumLayers)
	d.NPositions = aux.MaxPosition
	if d.ModelType == "roberta" && d.NPositions > 2 {
		d.NPositions -= 2 // RoBERTa's positions start after the padding index
	}
	return nil
}

// encoderSeq is the encoder's output length for an image size: one token per
// patch plus the class token (ViT, BEiT) or the class and distillation tokens
// (DeiT); Swin has no class token and halves each side per stage after the first.
func encoderSeq(e EncoderConfig, h, w int) int {
	ph, pw := h/e.PatchSize, w/e.PatchSize
	switch e.ModelType {
	case "deit":
		return ph*pw + 2
	case "swin":
		for i := 1; i < len(e.Depths); i++ {
			ph, pw = (ph+1)/2, (pw+1)/2
		}
		return ph * pw
	}
	return ph*pw + 1
}
