package cluster

import (
	"sort"
)

// MemberInfo is what the assignor knows of one group member: its identity,
// the sources it runs now (for stickiness) and whether it may take any.
type MemberInfo struct {
	// ID is the group's member id; Instance the instance name.
	ID, Instance string
	// Owned are the sources it runs now.
	Owned []string
}

// Work is one catalogue source to place, with its weight (>= 1).
type Work struct {
	ID     string
	Weight int
}

// Assign places every source on one member, deterministically:
//
//   - sticky: a source stays with a member that runs it now (when two claim
//     it, the first in (instance, id) order keeps it);
//   - new and orphaned sources go, heaviest first, to the least loaded member;
//   - then, while the most and the least loaded members differ by more than
//     one source could fix, the source whose move evens them best moves.
//
// With equal weights the loads then differ by at most 1, and only the moves
// the balance needs are made: 3 members running 12 sources and a 4th joining
// moves exactly 3. The result maps every member id to its sorted sources.
func Assign(members []MemberInfo, sources []Work) map[string][]string {
	ms := append([]MemberInfo(nil), members...)
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].Instance != ms[j].Instance {
			return ms[i].Instance < ms[j].Instance
		}
		return ms[i].ID < ms[j].ID
	})
	out := make(map[string][]string, len(ms))
	if len(ms) == 0 {
		return out
	}
	weight := make(map[string]int, len(sources))
	for _, s := range sources {
		weight[s.ID] = max(s.Weight, 1)
	}
	owner := map[string]int{} // source -> index in ms
	load := make([]int, len(ms))
	held := make([]map[string]bool, len(ms))
	for i, m := range ms {
		held[i] = map[string]bool{}
		for _, id := range m.Owned {
			if _, want := weight[id]; !want {
				continue
			}
			if _, taken := owner[id]; taken {
				continue
			}
			owner[id] = i
			held[i][id] = true
			load[i] += weight[id]
		}
	}
	placeNew(sources, weight, owner, load, held)
	rebalance(weight, load, held)
	for i, m := range ms {
		ids := make([]string, 0, len(held[i]))
		for id := range held[i] {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		out[m.ID] = ids
	}
	return out
}

// placeNew gives each unowned source, heaviest first, to the least loaded
// member.
func placeNew(sources []Work, weight map[string]int, owner map[string]int, load []int, held []map[string]bool) {
	var todo []string
	for _, s := range sources {
		if _, ok := owner[s.ID]; !ok {
			todo = append(todo, s.ID)
		}
	}
	sort.Slice(todo, func(i, j int) bool {
		if weight[todo[i]] != weight[todo[j]] {
			return weight[todo[i]] > weight[todo[j]]
		}
		return todo[i] < todo[j]
	})
	for _, id := range todo {
		least := 0
		for i := range load {
			if load[i] < load[least] {
				least = i
			}
		}
		owner[id] = least
		held[least][id] = true
		load[least] += weight[id]
	}
}

// rebalance moves one source at a time from the most to the least loaded
// member while a move makes their difference strictly smaller. The sum of
// squared loads falls with every move, so it ends.
func rebalance(weight map[string]int, load []int, held []map[string]bool) {
	for range 10000 {
		hi, lo := 0, 0
		for i := range load {
			if load[i] > load[hi] {
				hi = i
			}
			if load[i] < load[lo] {
				lo = i
			}
		}
		diff := load[hi] - load[lo]
		best, bestScore := "", diff
		for id := range held[hi] {
			w := weight[id]
			if w >= diff {
				continue // would not narrow the gap
			}
			score := abs(diff - 2*w)
			if score < bestScore || (score == bestScore && best != "" && id > best) {
				best, bestScore = id, score
			}
		}
		if best == "" {
			return
		}
		delete(held[hi], best)
		held[lo][best] = true
		load[hi] -= weight[best]
		load[lo] += weight[best]
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
