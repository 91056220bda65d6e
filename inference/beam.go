package inference

import (
	"context"
	"math"
)

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

// beamMerge is one entry when finished slots and new candidates are ranked together.
type beamMerge struct {
	seq    []int64
	score  float32
	sum    float32
	isDone bool
}

// beamState is a whole batch's beam search: one beamItem per image plus the
// scratch the steps share. Its steps follow transformers' _beam_search (4.57):
// candidates (top K over beams x vocabulary), finished hypotheses, running
// beams, the stopping test.
type beamState struct {
	g     *GenerationSettings
	nb, k int
	vocab int
	items []*beamItem
	lsm   []float32
	cands []beamCand
	seen  map[int64]struct{}
}

func newBeamState(n, vocab int, g *GenerationSettings) *beamState {
	nb := g.NumBeams
	s := &beamState{g: g, nb: nb, k: max(2, 1+len(g.EOSTokenIDs)) * nb, vocab: vocab,
		items: make([]*beamItem, n), lsm: make([]float32, vocab),
		cands: make([]beamCand, 0, 2*nb+2), seen: map[int64]struct{}{}}
	for i := range s.items {
		it := &beamItem{unsatisfied: true, rowsInDecode: 1}
		for j := 0; j < nb; j++ {
			it.running = append(it.running, []int64{g.DecoderStartToken})
			sc := float32(0)
			if j > 0 {
				sc = negBig
			}
			it.runScore = append(it.runScore, sc)
			it.fin = append(it.fin, nil)
			it.finScore = append(it.finScore, negBig)
			it.finSum = append(it.finSum, 0)
			it.finDone = append(it.finDone, false)
		}
		s.items[i] = it
	}
	return s
}

// beamSearch runs transformers' vectorised beam search (generation/utils.py _beam_search,
// 4.57) per image. Images whose result can no longer change are dropped from the
// decoder batch. Returns num_return_sequences hypotheses per image, best first.
func beamSearch(ctx context.Context, st stepper, n, vocab int, g *GenerationSettings) ([][]hypothesis, searchStats, error) {
	var stats searchStats
	s := newBeamState(n, vocab, g)
	alive := make([]int, n)
	feed := make([]int64, n)
	for i := range alive {
		alive[i] = i
		feed[i] = g.DecoderStartToken
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
		rows := len(feed)
		var gatherIdx []int
		alive, gatherIdx, feed = s.advance(logits, alive, cur)
		if len(alive) == 0 {
			break
		}
		if !isIdentity(gatherIdx, rows) {
			if err := st.gather(gatherIdx); err != nil {
				return nil, stats, err
			}
		}
	}
	return s.results(), stats, nil
}

// advance takes one step's logits for the alive images and returns the images
// still running, the decoder rows to gather for them and the tokens to feed.
func (s *beamState) advance(logits []float32, alive []int, cur int) (next, gatherIdx []int, feed []int64) {
	rowBase := 0
	hitsMax := cur+1 >= s.g.MaxLength
	for _, ii := range alive {
		it := s.items[ii]
		top := s.candidates(it, logits, rowBase)
		hits := make([]bool, s.k)
		for i, c := range top {
			hits[i] = hitsMax || isEOS(s.g, c.tok)
		}
		s.finish(it, top, hits, cur)
		srcRows := s.reorder(it, top, hits, cur, rowBase)
		rowBase += it.rowsInDecode
		s.settle(it, cur, hitsMax)
		if it.done {
			continue
		}
		it.rowsInDecode = s.nb
		next = append(next, ii)
		gatherIdx = append(gatherIdx, srcRows...)
		for _, sq := range it.running {
			feed = append(feed, sq[len(sq)-1])
		}
	}
	return next, gatherIdx, feed
}

// candidates is step a-d: log-softmax, the logits processors, running scores
// added, and the top K over beams x vocabulary.
func (s *beamState) candidates(it *beamItem, logits []float32, rowBase int) []beamCand {
	v := s.vocab
	s.cands = s.cands[:0]
	for j := 0; j < s.nb; j++ {
		r := rowBase
		if it.rowsInDecode > 1 {
			r = rowBase + j
		}
		// Step 0: every beam holds the same sequence; lsm already holds its log-probs.
		if it.rowsInDecode > 1 || j == 0 {
			logSoftmax(s.lsm, logits[r*v:(r+1)*v])
			processScores(s.g, it.running[j], s.lsm, s.seen)
		}
		base := it.runScore[j]
		for t := 0; t < v; t++ {
			s.cands = pushTopK(s.cands, beamCand{val: s.lsm[t] + base, idx: j*v + t, beam: j, tok: int64(t)}, s.k)
		}
	}
	return append([]beamCand(nil), s.cands...)
}

// finish is step f: candidates that end (EOS or max length) within the first
// num_beams compete with the finished slots.
func (s *beamState) finish(it *beamItem, top []beamCand, hits []bool, cur int) {
	allFin := allTrue(it.finDone)
	denom := float32(math.Pow(float64(cur), s.g.LengthPenalty))
	merged := make([]beamMerge, 0, s.nb+s.k)
	for j := 0; j < s.nb; j++ {
		merged = append(merged, beamMerge{it.fin[j], it.finScore[j], it.finSum[j], it.finDone[j]})
	}
	for i, c := range top {
		sc := c.val / denom
		if allFin && s.g.EarlyStopping == EarlyStopTrue {
			sc += negBig
		}
		if !it.unsatisfied {
			sc += negBig
		}
		just := hits[i] && i < s.nb
		if !just {
			sc += negBig
		}
		seq := append(append(make([]int64, 0, cur+1), it.running[c.beam]...), c.tok)
		merged = append(merged, beamMerge{seq, sc, c.val, just})
	}
	mv := make([]beamCand, len(merged))
	for i, m := range merged {
		mv[i] = beamCand{val: m.score, idx: i}
	}
	for j, c := range topK(mv, s.nb) {
		m := merged[c.idx]
		it.fin[j], it.finScore[j], it.finSum[j], it.finDone[j] = m.seq, m.score, m.sum, m.isDone
	}
}

// reorder is step e: the best num_beams candidates that did not end become the
// running beams; it returns the decoder rows they continue from.
func (s *beamState) reorder(it *beamItem, top []beamCand, hits []bool, cur, rowBase int) []int {
	runVals := make([]beamCand, s.k)
	for i, c := range top {
		v := c.val
		if hits[i] {
			v += negBig
		}
		runVals[i] = beamCand{val: v, idx: i}
	}
	newRun := make([][]int64, s.nb)
	newScore := make([]float32, s.nb)
	srcRows := make([]int, s.nb)
	for j, c := range topK(runVals, s.nb) {
		tc := top[c.idx]
		newRun[j] = append(append(make([]int64, 0, cur+1), it.running[tc.beam]...), tc.tok)
		newScore[j] = c.val
		srcRows[j] = rowBase
		if it.rowsInDecode > 1 {
			srcRows[j] = rowBase + tc.beam
		}
	}
	it.running, it.runScore = newRun, newScore
	return srcRows
}

// settle is the stopping test (after cur_len += 1): can a running beam still
// beat the worst finished one?
func (s *beamState) settle(it *beamItem, cur int, hitsMax bool) {
	g := s.g
	hypLen := cur
	if g.EarlyStopping == EarlyStopNever && g.LengthPenalty > 0 {
		hypLen = g.MaxLength - 1
	}
	best := it.runScore[0] / float32(math.Pow(float64(hypLen), g.LengthPenalty))
	minFin := it.finScore[0]
	for _, sc := range it.finScore {
		minFin = min(minFin, sc)
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
	it.done = !it.unsatisfied || (g.EarlyStopping == EarlyStopTrue && allTrue(it.finDone)) || hitsMax
}

// results returns num_return_sequences hypotheses per image, best first.
func (s *beamState) results() [][]hypothesis {
	out := make([][]hypothesis, len(s.items))
	for i, it := range s.items {
		for j := 0; j < s.g.NumReturnSequences; j++ {
			h := hypothesis{score: float64(it.finScore[j]), sum: float64(it.finSum[j])}
			if len(it.fin[j]) > 0 {
				h.tokens = it.fin[j][1:]
			}
			out[i] = append(out[i], h)
		}
	}
	return out
}

func allTrue(b []bool) bool {
	for _, v := range b {
		if !v {
			return false
		}
	}
	return true
}
