// Package inference turns images into captions on ONNX Runtime. Two families
// sit behind one Captioner: VisionEncoderDecoder models exported by Hugging
// Face optimum (task image-to-text-with-past), and Florence-2 in the ONNX
// layout Transformers.js loads (captions, <OD> boxes, <OCR> text). The
// folder's config.json picks the family. It knows nothing of sources or sinks.
package inference

import (
	"context"
	"time"

	"gocv.io/x/gocv"
)

// Result is the caption of one image.
type Result struct {
	Caption string `json:"caption"`
	// Tokens are the generated token ids, without the decoder start token.
	Tokens []int64 `json:"tokens"`
	// MeanLogProb is the mean log-probability of the generated tokens (<= 0).
	// What records and commands call confidence is exp(MeanLogProb), in
	// [0, 1] (sink.ConfidenceFromMeanLogProb).
	MeanLogProb float64 `json:"mean_logprob"`
	// Attributes holds the multi-task heads' answers when the model ships them.
	Attributes map[string]Attribute `json:"attributes,omitempty"`
	// Domain is set when the model ships a domain profile (domain_profile.json).
	Domain  *DomainScore `json:"domain,omitempty"`
	Timings Timings      `json:"timings"`
	// Task is the Florence-2 task token the result answers ("" for other models).
	Task string `json:"task,omitempty"`
	// Objects are the <OD> answer: labels and boxes in the image's pixels.
	Objects []Object `json:"objects,omitempty"`
	// OCR is the <OCR> answer's text.
	OCR string `json:"ocr,omitempty"`
	// Alternatives are the other returned beams, best first, when
	// num_return_sequences > 1 (beam search only).
	Alternatives []Alternative `json:"alternatives,omitempty"`
}

// Alternative is one more beam search hypothesis for the same image.
type Alternative struct {
	Caption string  `json:"caption"`
	Tokens  []int64 `json:"tokens"`
	// Score is the beam score: sum of log-probabilities / length**length_penalty.
	Score float64 `json:"score"`
}

// Attribute is the most probable class of one attribute head.
type Attribute struct {
	Value string  `json:"value"`
	Prob  float64 `json:"prob"`
}

// Timings is the share of a batch's stage times attributed to one image.
type Timings struct {
	Preprocess time.Duration `json:"preprocess"`
	Encode     time.Duration `json:"encode"`
	Decode     time.Duration `json:"decode"`
}

// TaskCaptioner is a Captioner that runs a named task per call: Florence-2's
// task tokens (<CAPTION>, <OD>, <OCR>, ...). SupportsTask is false for every
// task on models without tasks.
type TaskCaptioner interface {
	Captioner
	SupportsTask(task string) bool
	// CaptionTask is Caption for one task; "" runs the model's default.
	CaptionTask(ctx context.Context, images []gocv.Mat, task string, over *GenerationOptions) ([]Result, error)
}

// Captioner captions batches of BGR images. Implementations are safe for
// concurrent use.
type Captioner interface {
	// Caption returns one result per image, in order.
	Caption(ctx context.Context, images []gocv.Mat) ([]Result, error)
	// Name and Digest identify the model in records.
	Name() string
	Digest() string
	Close() error
}
