package inference

import (
	"context"
	"errors"
	"hash/fnv"
	"math"
	"testing"
)

// fakeStepper produces deterministic logits from (image, token history), and
// follows gather like the real KV cache does, so search results must not depend
// on batch composition or on rows being dropped.
type fakeStepper struct {
	vocab int
	img   []int     // image of each row
	hist  [][]int64 // tokens fed to each row so far
	calls int
	// eosAfter makes image i strongly prefer EOS once it has generated eosAfter[i] tokens.
	eosAfter []int
}

func newFake(vocab int, images []int, eosAfter []int) *fakeStepper {
	f := &fakeStepper{vocab: vocab, eosAfter: eosAfter}
	for _, im := range images {
		f.img = append(f.img, im)
		f.hist = append(f.hist, nil)
	}
	return f
}

func (f *fakeStepper) step(tokens []int64) ([]float32, error) {
	if len(tokens) != len(f.img) {
		return nil, errors.New("fake: token count differs from rows")
	}
	f.calls++
	out := make([]float32, len(tokens)*f.vocab)
	for r, t := range tokens {
		f.hist[r] = append(f.hist[r], t)
		for v := 0; v < f.vocab; v++ {
			h := fnv.New32a()
			h.Write([]byte{byte(f.img[r]), byte(v), byte(len(f.hist[r]))})
			for _, x := range f.hist[r] {
				h.Write([]byte{byte(x)})
			}
			out[r*f.vocab+v] = float32(h.Sum32()%1000) / 200
		}
		if len(f.hist[r])-1 >= f.eosAfter[f.img[r]] {
			out[r*f.vocab] = 10
		}
	}
	return out, nil
}

func (f *fakeStepper) gather(idx []int) error {
	img := make([]int, len(idx))
	hist := make([][]int64, len(idx))
	for i, s := range idx {
		img[i] = f.img[s]
		hist[i] = append([]int64(nil), f.hist[s]...)
	}
	f.img, f.hist = img, hist
	return nil
}

func TestGreedyDropsFinishedRows(t *testing.T) {
	g := GenerationSettings{MaxLength: 12, NumBeams: 1, NumReturnSequences: 1, LengthPenalty: 1, RepetitionPenalty: 1, EOSTokenIDs: []int64{0}}
	eosAfter := []int{2, 5, 20}
	f := newFake(16, []int{0, 1, 2}, eosAfter)
	hs, stats, err := greedySearch(context.Background(), f, 3, 16, &g)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{3, 6, 11} {
		if len(hs[i].tokens) != want {
			t.Errorf("row %d: %d tokens %v, want %d", i, len(hs[i].tokens), hs[i].tokens, want)
		}
	}
	if stats.rowRuns != 3+6+11 {
		t.Errorf("decoder ran %d rows, want %d (finished rows must stop costing work)", stats.rowRuns, 3+6+11)
	}
	// Each row alone gives the same tokens.
	for i := range eosAfter {
		alone, _, _ := greedySearch(context.Background(), newFake(16, []int{i}, eosAfter), 1, 16, &g)
		if !equalIDs(alone[0].tokens, hs[i].tokens) {
			t.Errorf("row %d alone %v, in batch %v", i, alone[0].tokens, hs[i].tokens)
		}
	}
}

func TestBeamBatchIndependent(t *testing.T) {
	eosAfter := []int{3, 7, 30, 1}
	for _, es := range []EarlyStopping{EarlyStopFalse, EarlyStopTrue, EarlyStopNever} {
		g := GenerationSettings{MaxLength: 14, NumBeams: 3, NumReturnSequences: 2, LengthPenalty: 0.8,
			EarlyStopping: es, RepetitionPenalty: 1.2, NoRepeatNgramSize: 2, EOSTokenIDs: []int64{0}}
		f := newFake(12, []int{0, 1, 2, 3}, eosAfter)
		batch, stats, err := beamSearch(context.Background(), f, 4, 12, &g)
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for i := range eosAfter {
			one, s1, err := beamSearch(context.Background(), newFake(12, []int{i}, eosAfter), 1, 12, &g)
			if err != nil {
				t.Fatal(err)
			}
			total += s1.rowRuns
			for j := range one[0] {
				if !equalIDs(one[0][j].tokens, batch[i][j].tokens) || one[0][j].score != batch[i][j].score {
					t.Errorf("%s image %d beam %d: alone %v (%v), batch %v (%v)", es, i, j, one[0][j].tokens, one[0][j].score, batch[i][j].tokens, batch[i][j].score)
				}
			}
			if len(batch[i][0].tokens) == 0 || batch[i][0].score >= 0 {
				t.Errorf("%s image %d: empty or non-negative best %+v", es, i, batch[i][0])
			}
		}
		if stats.rowRuns != total {
			t.Errorf("%s: batch ran %d rows, images alone %d: finished images must leave the batch", es, stats.rowRuns, total)
		}
	}
}

func TestProcessScores(t *testing.T) {
	g := GenerationSettings{RepetitionPenalty: 2, NoRepeatNgramSize: 2, MinLength: 5, EOSTokenIDs: []int64{0}}
	scores := []float32{1, 2, -2, 4, 5}
	processScores(&g, []int64{1, 2, 1}, scores, map[int64]struct{}{})
	// 1 and 2 seen: 2/2=1, -2*2=-4; bigram (1,2) seen and last token 1 -> ban 2; length 3 < 5 -> ban eos 0.
	want := []float32{negInf, 1, negInf, 4, 5}
	for i := range want {
		if scores[i] != want[i] {
			t.Fatalf("scores %v, want %v", scores, want)
		}
	}
}

func TestTopKOrder(t *testing.T) {
	c := []beamCand{{val: 1, idx: 0}, {val: 3, idx: 1}, {val: 3, idx: 2}, {val: 2, idx: 3}, {val: -1, idx: 4}}
	got := topK(c, 3)
	if got[0].idx != 1 || got[1].idx != 2 || got[2].idx != 3 {
		t.Fatalf("topK = %+v", got)
	}
}

func TestExpNeg(t *testing.T) {
	worst := 0.0
	for x := -87.0; x <= 0; x += 0.00137 {
		want := math.Exp(x)
		if rel := math.Abs(expNeg(x)-want) / want; rel > worst {
			worst = rel
		}
	}
	if worst > 3e-7 {
		t.Fatalf("expNeg worst relative error %.3g", worst)
	}
	t.Logf("expNeg worst relative error %.3g", worst)
	if expNeg(-100) != 0 || expNeg(0) != 1 {
		t.Fatalf("expNeg(-100)=%v expNeg(0)=%v", expNeg(-100), expNeg(0))
	}
}
