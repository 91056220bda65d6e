package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Owner is the instance a source is assigned to.
type Owner struct {
	Instance string
	// HTTP is the instance's ops address ("" when it serves none).
	HTTP string
}

// GroupView is the group as its coordinator describes it.
type GroupView struct {
	State   string
	Members []Owner
	// Owners maps each assigned source to its instance.
	Owners map[string]Owner
}

// Describe asks the coordinator for the group's members and their current
// assignments (what `lookout sources ls` shows).
func Describe(ctx context.Context, opts []kgo.Opt, group string) (GroupView, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return GroupView{}, err
	}
	defer cl.Close()
	gs, err := kadm.NewClient(cl).DescribeGroups(ctx, group)
	if err != nil {
		return GroupView{}, fmt.Errorf("describing group %s: %w", group, err)
	}
	g, ok := gs[group]
	if !ok {
		return GroupView{}, fmt.Errorf("describing group %s: no answer", group)
	}
	if g.Err != nil {
		return GroupView{}, fmt.Errorf("describing group %s: %w", group, g.Err)
	}
	v := GroupView{State: g.State, Owners: map[string]Owner{}}
	if g.ProtocolType != "" && g.ProtocolType != ProtocolType {
		return v, fmt.Errorf("group %s is a %q group, not lookout's: pick another cluster.group", group, g.ProtocolType)
	}
	for _, m := range g.Members {
		var md memberMeta
		if raw, ok := m.Join.Raw(); ok {
			_ = json.Unmarshal(raw, &md)
		}
		o := Owner{Instance: md.Instance, HTTP: md.HTTP}
		if o.Instance == "" {
			o.Instance = m.MemberID
		}
		v.Members = append(v.Members, o)
		var a memberAssignment
		if raw, ok := m.Assigned.Raw(); ok {
			_ = json.Unmarshal(raw, &a)
		}
		for _, id := range a.Sources {
			v.Owners[id] = o
		}
	}
	return v, nil
}
