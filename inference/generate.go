package inference

import (
	"context"
	"math"
	"sort"
)

// stepper is one decoder with its KV cache, seen by the search algorithms.
// Rows are independent sequences of equal length.
type stepper interface {
	// step feeds one token per current row and returns logits [rows*vocab];
	// the slice is only valid until the next call and may be modified.
	step(tokens []int64) ([]float32, error)
	// gather makes row i of the next step be the current row idx[i] (cache and
	// encoder states); len(idx) may be smaller or larger than the current rows.
	gather(idx []int) error
}

// hypothesis is one generated sequence.
type hypothesis struct {
	tokens []int64 // generated tokens, without the decoder start token
	sum    float64 // sum of the processed log-probabilities of tokens
	score  float64 // sum / len**length_penalty for beam search, mean log-prob for greedy
}

// searchStats counts decoder work for tests and benchmarks.
type searchStats struct {
	steps   int
	rowRuns int // sum over steps of rows run through the decoder
}

const negBig = float32(-1e9)

var negInf = float32(math.Inf(-1))

// processScores applies transformers' logits processors in their order
// (repetition_penalty, no_repeat_ngram, min_length) to one row's scores.
func processScores(g *GenerationSettings, seq []int64, scores []float32, seen map[int64]struct{}) {
	if g.RepetitionPenalty != 1 {
		p := float32(g.RepetitionPenalty)
		clear(seen)
		for _, t := range seq {
			if _, ok := seen[t]; ok {
				continue
			}
			seen[t] = struct{}{}
			if s := scores[t]; s < 0 {
				scores[t] = s * p
			} else {
				scores[t] = s / p
			}
		}
	}
	if n := g.NoRepeatNgramSize; n > 0 && len(seq)+1 >= n {
		// Ban tokens completing an n-gram already in seq (start token included).
		prefix := seq[len(seq)-(n-1):]
		for i := 0; i+n <= len(seq); i++ {
			match := true
			for j := 0; j < n-1; j++ {
				if seq[i+j] != prefix[j] {
					match = false
					break
				}
			}
			if match {
				scores[seq[i+n-1]] = negInf
			}
		}
	}
	if len(seq) < g.MinLength {
		for _, e := range g.EOSTokenIDs {
			scores[e] = negInf
		}
	}
	if f := g.ForcedBOS; f != nil && len(seq) == 1 {
		forceToken(scores, *f)
	}
	if f := g.ForcedEOS; f != nil && len(seq) == g.MaxLength-1 {
		forceToken(scores, *f)
	}
}

// forceToken leaves only token t possible (score 0, the rest -inf), as
// transformers' ForcedBOS/ForcedEOS logits processors do.
func forceToken(scores []float32, t int64) {
	for i := range scores {
		scores[i] = negInf
	}
	scores[t] = 0
}

// logSoftmax writes log_softmax(x) into dst (float32, like torch).
func logSoftmax(dst, x []float32) {
	mx := negInf
	for _, v := range x {
		if v > mx {
			mx = v
		}
	}
	var sum float64
	for _, v := range x {
		sum += expNeg(float64(v - mx))
	}
	lse := float32(math.Log(sum))
	for i, v := range x {
		dst[i] = (v - mx) - lse
	}
}

func isEOS(g *GenerationSettings, t int64) bool {
	for _, e := range g.EOSTokenIDs {
		if t == e {
			return true
		}
	}
	return false
}

// greedySearch decodes n rows greedily; finished rows are dropped from the
// decoder batch (gather) so they stop costing work.
func greedySearch(ctx context.Context, st stepper, n, vocab int, g *GenerationSettings) ([]hypothesis, searchStats, error) {
	var stats searchStats
	seqs := make([][]int64, n)
	sums := make([]float64, n)
	alive := make([]int, n)
	feed := make([]int64, n)
	for i := range seqs {
		seqs[i] = append(make([]int64, 0, g.MaxLength), g.DecoderStartToken)
		alive[i] = i
		feed[i] = g.DecoderStartToken
	}
	seen := map[int64]struct{}{}
	for cur := 1; cur < g.MaxLength && len(alive) > 0; cur++ {
		if err := ctx.Err(); err != nil {
			return nil, stats, err
		}
		logits, err := st.step(feed[:len(alive)])
		if err != nil {
			return nil, stats, err
		}
		stats.steps++
		stats.rowRuns += len(alive)
		keep := make([]int, 0, len(alive))
		next := alive[:0:0]
		for r, orig := range alive {
			row := logits[r*vocab : (r+1)*vocab]
			processScores(g, seqs[orig], row, seen)
			best := 0
			for i := 1; i < vocab; i++ {
				if row[i] > row[best] {
					best = i
				}
			}
			// log_softmax at the argmax: the max is row[best] itself.
			mx := row[best]
			var sum float64
			for _, v := range row {
				sum += expNeg(float64(v - mx))
			}
			seqs[orig] = append(seqs[orig], int64(best))
			sums[orig] += float64(-float32(math.Log(sum)))
			if !isEOS(g, int64(best)) {
				keep = append(keep, r)
				next = append(next, orig)
			}
		}
		if len(next) > 0 && len(next) < len(alive) && cur+1 < g.MaxLength {
			if err := st.gather(keep); err != nil {
				return nil, stats, err
			}
		}
		for i, orig := range next {
			feed[i] = seqs[orig][len(seqs[orig])-1]
		}
		alive = next
	}
	out := make([]hypothesis, n)
	for i, s := range seqs {
		h := hypothesis{tokens: s[1:], sum: sums[i]}
		if len(h.tokens) > 0 {
			h.score = h.sum / float64(len(h.tokens))
		}
		out[i] = h
	}
	return out, stats, nil
}

func isIdentity(idx []int, n int) bool {
	if len(idx) != n {
		return false
	}
	for i, v := range idx {
		if v != i {
			return false
		}
	}
	return true
}

// candLess orders candidates best first; ties keep the lower index first
// (torch.topk's order on CPU for distinct positions).
func candLess(a, b beamCand) bool {
	if a.val != b.val {
		return a.val > b.val
	}
	return a.idx < b.idx
}

// pushTopK inserts x into out, a sorted buffer of at most k candidates.
func pushTopK(out []beamCand, x beamCand, k int) []beamCand {
	if len(out) == k && !candLess(x, out[k-1]) {
		return out
	}
	i := sort.Search(len(out), func(i int) bool { return candLess(x, out[i]) })
	if len(out) < k {
		out = append(out, beamCand{})
	}
	copy(out[i+1:], out[i:len(out)-1])
	out[i] = x
	return out
}

// topK returns the k largest candidates, best first.
func topK(c []beamCand, k int) []beamCand {
	k = min(k, len(c))
	out := make([]beamCand, 0, k)
	for _, x := range c {
		out = pushTopK(out, x, k)
	}
	return out
}

// expNeg is exp(x) for x <= 0, accurate to about 2e-7 relative (below float32
// resolution) and several times faster than math.Exp: the softmax over a
// 50k-token vocabulary runs once per row per step.
func expNeg(x float64) float64 {
	if x < -87 {
		return 0
	}
	t := x * math.Log2E
	k := int(t - 0.5) // round to nearest for t <= 0
	f := t - float64(k)
	const (
		c1 = 0.6931471805599453
		c2 = 0.2402265069591007
		c3 = 0.05550410866482158
		c4 = 0.009618129107628477
		c5 = 0.0013333558146428443
		c6 = 0.00015403530393381606
		c7 = 1.525273380405984e-05
	)
	p := 1 + f*(c1+f*(c2+f*(c3+f*(c4+f*(c5+f*(c6+f*c7))))))
	return p * math.Float64frombits(uint64(k+1023)<<52)
}
