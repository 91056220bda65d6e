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

// beamItem is the beam search state of one image (transformers 4.57 semantics).
type beamItem struct {
	running      [][]int64 // num_beams sequences of length cur_len
	runScore     []float32
	fin          [][]int64 // num_beams finished slots (sorted by score)
	finScore     []float32
	finSum       []float32
	finDone      []bool
	unsatisfied  bool
	done         bool
	rowsInDecode int // rows this item holds in the decoder batch: 1 at step 0, then num_beams
}

type beamCand struct {
	val  float32
	idx  int // beam*vocab + token, for tie order
	beam int
	tok  int64
}

// beamSearch runs transformers' vectorised beam search (generation/utils.py _beam_search,
// 4.57) per image. Images whose result can no longer change are dropped from the
// decoder batch. Returns num_return_sequences hypotheses per image, best first.
func beamSearch(ctx context.Context, st stepper, n, vocab int, g *GenerationSettings) ([][]hypothesis, searchStats, error) {
	var stats searchStats
	nb := g.NumBeams
	nEOS := len(g.EOSTokenIDs)
	k := max(2, 1+nEOS) * nb
	lp := g.LengthPenalty
	items := make([]*beamItem, n)
	for i := range items {
		it := &beamItem{unsatisfied: true, rowsInDecode: 1}
		for j := 0; j < nb; j++ {
			it.running = append(it.running, []int64{g.DecoderStartToken})
			s := float32(0)
			if j > 0 {
				s = negBig
			}
			it.runScore = append(it.runScore, s)
			it.fin = append(it.fin, nil)
			it.finScore = append(it.finScore, negBig)
			it.finSum = append(it.finSum, 0)
			it.finDone = append(it.finDone, false)
		}
		items[i] = it
	}
	alive := make([]int, n)
	feed := make([]int64, n)
	for i := range alive {
		alive[i] = i
		feed[i] = g.DecoderStartToken
	}
	lsm := make([]float32, vocab)
	cands := make([]beamCand, 0, 2*nb+2)
	seen := map[int64]struct{}{}
	type mergeEnt struct {
		seq    []int64
		score  float32
		sum    float32
		isDone bool
	}
	for cur := 1; cur < g.MaxLength && len(alive) > 0; cur++ {
		if err := ctx.Err(); err != nil {
			return nil, stats, err
		}
		logits, err := st.step(feed)
		if err != nil {
			return nil, stats, err
		}
		stats.steps++
		stats.rowRuns += len(feed)
		var gatherIdx []int
		var nextFeed []int64
		var nextAlive []int
		rowBase := 0
		hitsMax := cur+1 >= g.MaxLength
		for _, ii := range alive {
			it := items[ii]
			cands = cands[:0]
			for j := 0; j < nb; j++ {
				r := rowBase
				if it.rowsInDecode > 1 {
					r = rowBase + j
				}
				row := logits[r*vocab : (r+1)*vocab]
				if it.rowsInDecode == 1 && j > 0 {
					// Step 0: every beam holds the same sequence; lsm already holds its log-probs.
				} else {
					logSoftmax(lsm, row)
					processScores(g, it.running[j], lsm, seen)
				}
				base := it.runScore[j]
				for t := 0; t < vocab; t++ {
					cands = pushTopK(cands, beamCand{val: lsm[t] + base, idx: j*vocab + t, beam: j, tok: int64(t)}, k)
				}
			}
			top := append([]beamCand(nil), cands...)
			// Which candidates finish (EOS or max length).
			hits := make([]bool, k)
			for i, c := range top {
				hits[i] = hitsMax || isEOS(g, c.tok)
			}
			// e. running beams for the next step: best num_beams after banning finished ones.
			runVals := make([]beamCand, k)
			for i, c := range top {
				v := c.val
				if hits[i] {
					v += negBig
				}
				runVals[i] = beamCand{val: v, idx: i}
			}
			nextRun := topK(runVals, nb)
			// f. finished hypotheses.
			allFin := true
			for _, d := range it.finDone {
				allFin = allFin && d
			}
			denom := float32(math.Pow(float64(cur), lp))
			merged := make([]mergeEnt, 0, nb+k)
			for j := 0; j < nb; j++ {
				merged = append(merged, mergeEnt{it.fin[j], it.finScore[j], it.finSum[j], it.finDone[j]})
			}
			for i, c := range top {
				s := c.val / denom
				if allFin && g.EarlyStopping == EarlyStopTrue {
					s += negBig
				}
				if !it.unsatisfied {
					s += negBig
				}
				just := hits[i] && i < nb
				if !just {
					s += negBig
				}
				seq := append(append(make([]int64, 0, cur+1), it.running[c.beam]...), c.tok)
				merged = append(merged, mergeEnt{seq, s, c.val, just})
			}
			mv := make([]beamCand, len(merged))
			for i, m := range merged {
				mv[i] = beamCand{val: m.score, idx: i}
			}
			for j, c := range topK(mv, nb) {
				m := merged[c.idx]
				it.fin[j], it.finScore[j], it.finSum[j], it.finDone[j] = m.seq, m.score, m.sum, m.isDone
			}
			// Reorder running beams (and, below, their cache rows).
			newRun := make([][]int64, nb)
			newScore := make([]float32, nb)
			srcRows := make([]int, nb)
			for j, c := range nextRun {
				tc := top[c.idx]
				newRun[j] = append(append(make([]int64, 0, cur+1), it.running[tc.beam]...), tc.tok)
				newScore[j] = c.val
				if it.rowsInDecode > 1 {
					srcRows[j] = rowBase + tc.beam
				} else {
					srcRows[j] = rowBase
				}
			}
			rowBase += it.rowsInDecode
			it.running, it.runScore = newRun, newScore
			// Early-stop heuristic (after cur_len += 1).
			hypLen := cur
			if g.EarlyStopping == EarlyStopNever && lp > 0 {
				hypLen = g.MaxLength - 1
			}
			best := it.runScore[0] / float32(math.Pow(float64(hypLen), lp))
			minFin := it.finScore[0]
			for _, s := range it.finScore {
				minFin = min(minFin, s)
			}
			improvable := false
			for _, d := range it.finDone {
				worst := negBig
				if d {
					worst = minFin
				}
				if best > worst {
					improvable = true
				}
			}
			it.unsatisfied = it.unsatisfied && improvable
			allFin = true
			for _, d := range it.finDone {
				allFin = allFin && d
			}
			it.done = !it.unsatisfied || (g.EarlyStopping == EarlyStopTrue && allFin) || hitsMax
			if it.done {
				continue
			}
			it.rowsInDecode = nb
			nextAlive = append(nextAlive, ii)
			gatherIdx = append(gatherIdx, srcRows...)
			for _, s := range it.running {
				nextFeed = append(nextFeed, s[len(s)-1])
			}
		}
		alive = nextAlive
		if len(alive) == 0 {
			break
		}
		if !isIdentity(gatherIdx, len(feed)) {
			if err := st.gather(gatherIdx); err != nil {
				return nil, stats, err
			}
		}
		feed = nextFeed
	}
	out := make([][]hypothesis, n)
	for i, it := range items {
		for j := 0; j < g.NumReturnSequences; j++ {
			h := hypothesis{score: float64(it.finScore[j]), sum: float64(it.finSum[j])}
			if len(it.fin[j]) > 0 {
				h.tokens = it.fin[j][1:]
			}
			out[i] = append(out[i], h)
		}
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
