package sink

import "math"

// ConfidenceFromMeanLogProb turns the captioner's mean token
// log-probability (inference.Result.Confidence, <= 0) into Record.Confidence:
// the geometric mean of the token probabilities, in [0, 1]. NaN and
// positive inputs give 0 and 1.
func ConfidenceFromMeanLogProb(meanLogProb float64) float64 {
	switch {
	case math.IsNaN(meanLogProb):
		return 0
	case meanLogProb >= 0:
		return 1
	}
	return math.Exp(meanLogProb)
}
