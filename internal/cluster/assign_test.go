package cluster

import (
	"fmt"
	"math/rand"
	"reflect"
	"testing"
)

func works(n int) []Work {
	var ws []Work
	for i := range n {
		ws = append(ws, Work{ID: fmt.Sprintf("s%02d", i), Weight: 1})
	}
	return ws
}

func members(n int) []MemberInfo {
	var ms []MemberInfo
	for i := range n {
		ms = append(ms, MemberInfo{ID: fmt.Sprintf("m%d", i), Instance: fmt.Sprintf("i%d", i)})
	}
	return ms
}

// withOwned feeds an assignment back as what each member runs.
func withOwned(ms []MemberInfo, a map[string][]string) []MemberInfo {
	out := append([]MemberInfo(nil), ms...)
	for i := range out {
		out[i].Owned = a[out[i].ID]
	}
	return out
}

// moved counts sources taken from a member that is still there.
func moved(before, after map[string][]string) int {
	owner := map[string]string{}
	for m, ids := range before {
		for _, id := range ids {
			owner[id] = m
		}
	}
	n := 0
	for m, ids := range after {
		for _, id := range ids {
			if o, ok := owner[id]; ok && o != m && after[o] != nil {
				n++
			}
		}
	}
	return n
}

func loads(a map[string][]string, w map[string]int) (lo, hi, total int) {
	lo = 1 << 30
	for _, ids := range a {
		l := 0
		for _, id := range ids {
			l += max(w[id], 1)
		}
		lo, hi, total = min(lo, l), max(hi, l), total+len(ids)
	}
	return lo, hi, total
}

func TestAssignBalancedFromScratch(t *testing.T) {
	for n := 1; n <= 6; n++ {
		for s := 0; s <= 20; s++ {
			a := Assign(members(n), works(s))
			lo, hi, total := loads(a, nil)
			if total != s || hi-lo > 1 || len(a) != n {
				t.Fatalf("%d members, %d sources: loads %d..%d, %d placed of %d: %v", n, s, lo, hi, total, s, a)
			}
		}
	}
}

func TestAssignFourthJoinsMovesExactlyThree(t *testing.T) {
	ms := members(3)
	a := Assign(ms, works(12))
	ms = append(withOwned(ms, a), MemberInfo{ID: "m3", Instance: "i3"})
	b := Assign(ms, works(12))
	if got := moved(a, b); got != 3 {
		t.Fatalf("moved %d sources, want 3: %v -> %v", got, a, b)
	}
	for m, ids := range b {
		if len(ids) != 3 {
			t.Fatalf("%s owns %d, want 3: %v", m, len(ids), b)
		}
	}
	if len(b["m3"]) != 3 {
		t.Fatalf("newcomer got %v", b["m3"])
	}
}

func TestAssignMemberLeavesMovesOnlyItsSources(t *testing.T) {
	ms := members(4)
	a := Assign(ms, works(14))
	ms = withOwned(ms, a)
	gone := ms[1]
	b := Assign(append(ms[:1:1], ms[2:]...), works(14))
	if got := moved(a, b); got != 0 {
		t.Fatalf("survivors' sources moved: %d", got)
	}
	lo, hi, total := loads(b, nil)
	if total != 14 || hi-lo > 1 {
		t.Fatalf("after %s left: loads %d..%d total %d: %v", gone.ID, lo, hi, total, b)
	}
}

func TestAssignStableWhenNothingChanges(t *testing.T) {
	ms := members(3)
	a := Assign(ms, works(14))
	b := Assign(withOwned(ms, a), works(14))
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("a second round changed the assignment: %v -> %v", a, b)
	}
}

func TestAssignDeterministic(t *testing.T) {
	ms := members(4)
	ms[0].Owned = []string{"s01", "s02", "s03", "s04", "s05", "s06"}
	ms[2].Owned = []string{"s03", "s07"} // s03 claimed twice: i0 sorts first
	a := Assign(ms, works(10))
	rev := []MemberInfo{ms[3], ms[2], ms[1], ms[0]}
	ws := works(10)
	for i, j := 0, len(ws)-1; i < j; i, j = i+1, j-1 {
		ws[i], ws[j] = ws[j], ws[i]
	}
	if b := Assign(rev, ws); !reflect.DeepEqual(a, b) {
		t.Fatalf("order of input changed the result: %v vs %v", a, b)
	}
	seen := map[string]bool{}
	for _, ids := range a {
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("%s assigned twice: %v", id, a)
			}
			seen[id] = true
		}
	}
}

func TestAssignDropsRemovedSources(t *testing.T) {
	ms := members(2)
	ms[0].Owned = []string{"gone", "s00"}
	a := Assign(ms, works(2))
	if !reflect.DeepEqual(a["m0"], []string{"s00"}) || !reflect.DeepEqual(a["m1"], []string{"s01"}) {
		t.Fatalf("got %v", a)
	}
}

func TestAssignWeights(t *testing.T) {
	ws := works(8)
	ws = append(ws, Work{ID: "uhd", Weight: 4})
	w := map[string]int{"uhd": 4}
	a := Assign(members(3), ws)
	lo, hi, _ := loads(a, w)
	if hi-lo > 1 { // total 12 over 3
		t.Fatalf("weighted loads %d..%d: %v", lo, hi, a)
	}
	for m, ids := range a {
		for _, id := range ids {
			if id == "uhd" && len(ids) != 1 {
				t.Fatalf("the 4K camera's member %s also got %v", m, ids)
			}
		}
	}
}

// TestAssignRandomChurn joins, kills and edits at random and checks, after
// every round, balance, single ownership and that survivors keep what the
// balance does not need to take.
func TestAssignRandomChurn(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	ms := members(3)
	next := 3
	nsrc := 12
	a := Assign(ms, works(nsrc))
	for round := range 500 {
		ms = withOwned(ms, a)
		switch r.Intn(4) {
		case 0:
			ms = append(ms, MemberInfo{ID: fmt.Sprintf("m%d", next), Instance: fmt.Sprintf("i%d", next)})
			next++
		case 1:
			if len(ms) > 1 {
				k := r.Intn(len(ms))
				ms = append(ms[:k:k], ms[k+1:]...)
			}
		case 2:
			nsrc = max(0, nsrc+r.Intn(5)-2)
		}
		b := Assign(ms, works(nsrc))
		lo, hi, total := loads(b, nil)
		if total != nsrc || hi-lo > 1 {
			t.Fatalf("round %d: loads %d..%d, %d of %d placed", round, lo, hi, total, nsrc)
		}
		// Moves between survivors are bounded by what balance needs: each
		// member gives up at most (held - ceil(total/n)).
		ceil := (nsrc + len(ms) - 1) / max(len(ms), 1)
		for _, m := range ms {
			kept := 0
			for _, id := range a[m.ID] {
				for _, x := range b[m.ID] {
					if x == id {
						kept++
					}
				}
			}
			valid := 0
			for _, id := range a[m.ID] {
				var n int
				fmt.Sscanf(id, "s%d", &n)
				if n < nsrc {
					valid++
				}
			}
			if kept < min(valid, ceil-1) {
				t.Fatalf("round %d: %s kept %d of %d valid sources (fair share %d)", round, m.ID, kept, valid, ceil)
			}
		}
		a = b
	}
}
