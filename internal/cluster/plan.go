package cluster

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// plan is the leader's work: decode every member's metadata, refuse
// members whose model digest differs from the group's, and assign the
// catalogue over the rest. It returns each member's assignment and the
// source ids placed.
func (m *Member) plan(joined []kmsg.JoinGroupResponseMember) (map[string]memberAssignment, []string) {
	metas := make(map[string]memberMeta, len(joined))
	for _, j := range joined {
		var md memberMeta
		if err := json.Unmarshal(j.ProtocolMetadata, &md); err != nil {
			md = memberMeta{Instance: j.MemberID, Digest: "unreadable metadata"}
		}
		metas[j.MemberID] = md
	}
	digest := groupDigest(metas, m.cfg.Digest)
	out := make(map[string]memberAssignment, len(metas))
	var infos []MemberInfo
	for id, md := range metas {
		if md.Digest != digest {
			out[id] = memberAssignment{Refused: fmt.Sprintf(
				"instance %s runs model digest %s but the group %s runs %s; start it with the same model or in another cluster.group",
				md.Instance, md.Digest, m.cfg.Group, digest)}
			m.log.Warn().Str("instance", md.Instance).Str("digest", md.Digest).Str("group_digest", digest).
				Msg("refusing a member with another model")
			continue
		}
		infos = append(infos, MemberInfo{ID: id, Instance: md.Instance, Owned: md.Owned})
	}
	work := m.cfg.Work()
	plan := Assign(infos, work)
	for id, srcs := range plan {
		out[id] = memberAssignment{Sources: srcs, Members: len(infos)}
	}
	ids := make([]string, len(work))
	for i, w := range work {
		ids[i] = w.ID
	}
	return out, ids
}

// groupDigest is the model digest the group runs: the one of the members
// that own the most sources (they were there first), else the most common
// one, else the leader's own. Ties go to the smaller digest.
func groupDigest(metas map[string]memberMeta, leaderDigest string) string {
	owned, count := map[string]int{}, map[string]int{}
	for _, md := range metas {
		owned[md.Digest] += len(md.Owned)
		count[md.Digest]++
	}
	pick := func(score map[string]int) (string, bool) {
		var ds []string
		for d := range score {
			ds = append(ds, d)
		}
		sort.Strings(ds)
		best, bestN, tie := "", 0, false
		for _, d := range ds {
			switch {
			case score[d] > bestN:
				best, bestN, tie = d, score[d], false
			case score[d] == bestN && bestN > 0:
				tie = true
			}
		}
		return best, best != "" && !tie
	}
	if d, ok := pick(owned); ok {
		return d
	}
	if d, ok := pick(count); ok {
		return d
	}
	if _, ok := count[leaderDigest]; ok {
		return leaderDigest
	}
	d, _ := pick(count)
	return d
}
