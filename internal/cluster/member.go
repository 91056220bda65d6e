package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"lookout/internal/retry"
)

// ProtocolType is the group protocol type: a Kafka group holds members of
// one type, so a consumer that joins the group by mistake is refused.
const ProtocolType = "lookout"

// protocolName names the assignment strategy and its metadata version.
const protocolName = "sticky-weighted-v1"

// ErrRefused is returned by Member.Run when the group refused this
// instance (a different model digest); the text names both digests.
var ErrRefused = errors.New("refused by the group")

// memberMeta is what each member tells the leader when it joins.
type memberMeta struct {
	Instance string   `json:"instance"`
	Digest   string   `json:"digest"`
	Owned    []string `json:"owned"`
	// HTTP is the ops address, for `lookout sources ls` to ask for states.
	HTTP string `json:"http,omitempty"`
}

// memberAssignment is what the leader hands each member.
type memberAssignment struct {
	Sources []string `json:"sources"`
	// Members is the size of the group (only the leader sees the list).
	Members int `json:"members"`
	// Refused, when set, tells the member it may not join and why.
	Refused string `json:"refused,omitempty"`
}

// MemberConfig configures a Member.
type MemberConfig struct {
	Group, Instance, Digest, HTTP string
	// SessionTimeout: a member silent this long is dropped and its sources
	// move. Heartbeat: how often the member checks in (and so how fast it
	// learns of a rebalance).
	SessionTimeout, Heartbeat time.Duration
	// Owned returns the sources this instance runs now (stickiness).
	Owned func() []string
	// Work returns the catalogue as the leader sees it.
	Work func() []Work
	// OnAssign applies a new assignment; called serially from Run.
	OnAssign func(generation int32, sources []string)
	// OnRebalance is told of every completed rebalance and its duration,
	// from the first sign of it to the new assignment (metrics).
	OnRebalance func(took time.Duration, members int, leader bool)
	Logger      zerolog.Logger
}

// Member is this instance's membership in the fleet's Kafka group. It uses
// the classic group protocol with lookout's own protocol type, as Kafka
// Connect does: sources are not partitions, so no consumer balancer fits.
type Member struct {
	cfg    MemberConfig
	cl     *kgo.Client
	log    zerolog.Logger
	rejoin chan struct{}

	inGroup  atomic.Bool
	mu       sync.Mutex
	memberID string
	gen      int32
	members  int
	leader   bool
	lastWork []string // what the leader last assigned, to spot catalogue changes
}

// NewMember makes a member; Run joins.
func NewMember(opts []kgo.Opt, cfg MemberConfig) (*Member, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &Member{cfg: cfg, cl: cl, log: cfg.Logger.With().Str("component", "cluster").Logger(),
		rejoin: make(chan struct{}, 1)}, nil
}

// InGroup reports whether the member holds a current assignment.
func (m *Member) InGroup() bool { return m.inGroup.Load() }

// State returns the generation, the group's size and whether this member leads.
func (m *Member) State() (gen int32, members int, leader bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen, m.members, m.leader
}

// Rejoin asks for a rebalance (the leader does when the catalogue changed).
func (m *Member) Rejoin() {
	select {
	case m.rejoin <- struct{}{}:
	default:
	}
}

// CatalogueChanged is called when the catalogue changed: the leader starts
// a rebalance when the set of sources differs from what it last assigned.
func (m *Member) CatalogueChanged() {
	m.mu.Lock()
	lead, last := m.leader, m.lastWork
	m.mu.Unlock()
	if !lead {
		return
	}
	now := m.cfg.Work()
	if len(now) != len(last) {
		m.Rejoin()
		return
	}
	for i := range now {
		if now[i].ID != last[i] {
			m.Rejoin()
			return
		}
	}
}

// Run joins the group and keeps this member in it until ctx ends, then
// leaves it (so the sources move at once). While the coordinator cannot be
// reached the current sources keep running: nobody else can take them
// without the coordinator either, and the sink spools meanwhile.
func (m *Member) Run(ctx context.Context) error {
	defer m.cl.Close()
	defer m.leave()
	bo := retry.New(retry.Policy{Min: 200 * time.Millisecond, Max: 5 * time.Second})
	var since time.Time // start of the current rebalance
	for ctx.Err() == nil {
		if since.IsZero() {
			since = time.Now()
		}
		err := m.joinAndSync(ctx)
		switch {
		case errors.Is(err, ErrRefused):
			return err
		case err == nil:
			bo.Reset()
			gen, n, lead := m.State()
			m.log.Info().Int32("generation", gen).Int("members", n).Bool("leader", lead).
				Dur("took", time.Since(since)).Msg("group assignment received")
			if m.cfg.OnRebalance != nil {
				m.cfg.OnRebalance(time.Since(since), n, lead)
			}
			since = time.Time{}
			err = m.heartbeat(ctx)
			if err != nil && ctx.Err() == nil {
				since = time.Now()
				m.log.Info().Err(err).Msg("rejoining the group")
			}
			continue
		}
		if ctx.Err() != nil {
			break
		}
		delay := bo.Next()
		m.log.Warn().Err(err).Dur("retry_in", delay).Msg("group join failed; the sources running here keep running")
		_ = retry.Sleep(ctx, delay) // a cancelled ctx ends the loop
	}
	return nil
}

// joinAndSync runs one JoinGroup + SyncGroup round and applies the result.
func (m *Member) joinAndSync(ctx context.Context) error {
	meta, _ := json.Marshal(memberMeta{Instance: m.cfg.Instance, Digest: m.cfg.Digest, Owned: m.cfg.Owned(), HTTP: m.cfg.HTTP})
	for ctx.Err() == nil {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group = m.cfg.Group
		req.SessionTimeoutMillis = int32(m.cfg.SessionTimeout.Milliseconds())
		req.RebalanceTimeoutMillis = req.SessionTimeoutMillis
		m.mu.Lock()
		req.MemberID = m.memberID
		m.mu.Unlock()
		req.ProtocolType = ProtocolType
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: protocolName, Metadata: meta}}
		resp, err := req.RequestWith(ctx, m.cl)
		if err != nil {
			m.inGroup.Store(false)
			return fmt.Errorf("join: %w", err)
		}
		switch err := kerr.ErrorForCode(resp.ErrorCode); {
		case errors.Is(err, kerr.MemberIDRequired):
			m.setMemberID(resp.MemberID)
			continue
		case errors.Is(err, kerr.UnknownMemberID):
			m.setMemberID("")
			continue
		case err != nil:
			m.inGroup.Store(false)
			return fmt.Errorf("join: %w", err)
		}
		m.setMemberID(resp.MemberID)
		return m.sync(ctx, resp)
	}
	return ctx.Err()
}

func (m *Member) setMemberID(id string) {
	m.mu.Lock()
	m.memberID = id
	m.mu.Unlock()
}

// sync sends the leader's plan (or nothing) and applies what comes back.
func (m *Member) sync(ctx context.Context, join *kmsg.JoinGroupResponse) error {
	lead := join.LeaderID == join.MemberID
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.Generation, req.MemberID = m.cfg.Group, join.Generation, join.MemberID
	req.ProtocolType, req.Protocol = kmsg.StringPtr(ProtocolType), kmsg.StringPtr(protocolName)
	var work []string
	if lead {
		plan, ids := m.plan(join.Members)
		work = ids
		for id, a := range plan {
			b, _ := json.Marshal(a)
			req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: b})
		}
	}
	resp, err := req.RequestWith(ctx, m.cl)
	if err != nil {
		m.inGroup.Store(false)
		return fmt.Errorf("sync: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		if errors.Is(err, kerr.UnknownMemberID) {
			m.setMemberID("")
		}
		return fmt.Errorf("sync: %w", err)
	}
	var a memberAssignment
	if err := json.Unmarshal(resp.MemberAssignment, &a); err != nil {
		return fmt.Errorf("sync: assignment from the leader is not lookout's: %w", err)
	}
	if a.Refused != "" {
		m.inGroup.Store(false)
		return fmt.Errorf("%w: %s", ErrRefused, a.Refused)
	}
	m.mu.Lock()
	m.gen, m.members, m.leader, m.lastWork = join.Generation, a.Members, lead, work
	m.mu.Unlock()
	m.cfg.OnAssign(join.Generation, a.Sources)
	m.inGroup.Store(true)
	// A catalogue change that arrived while this round ran (before this
	// member knew it leads, or after it planned) starts the next one.
	m.CatalogueChanged()
	return nil
}

// heartbeat keeps the membership alive until a rebalance is needed (then
// it returns the reason) or ctx ends.
func (m *Member) heartbeat(ctx context.Context) error {
	t := time.NewTicker(m.cfg.Heartbeat)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.rejoin:
			return errors.New("catalogue changed")
		case <-t.C:
		}
		m.mu.Lock()
		req := kmsg.NewPtrHeartbeatRequest()
		req.Group, req.Generation, req.MemberID = m.cfg.Group, m.gen, m.memberID
		m.mu.Unlock()
		hctx, cancel := context.WithTimeout(ctx, m.cfg.SessionTimeout)
		resp, err := req.RequestWith(hctx, m.cl)
		cancel()
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		switch {
		case err == nil:
			lastOK = time.Now()
		case errors.Is(err, kerr.RebalanceInProgress):
			return err
		case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.FencedInstanceID):
			m.setMemberID("")
			return err
		case errors.Is(err, kerr.IllegalGeneration):
			return err
		default: // the coordinator is away: keep the sources, keep trying
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Since(lastOK) > m.cfg.SessionTimeout {
				m.inGroup.Store(false)
				return fmt.Errorf("no heartbeat answered for %s: %w", time.Since(lastOK).Round(time.Second), err)
			}
		}
	}
}

// leave tells the coordinator this member is gone, so its sources move at
// once instead of after the session timeout.
func (m *Member) leave() {
	m.inGroup.Store(false)
	m.mu.Lock()
	id := m.memberID
	m.mu.Unlock()
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = m.cfg.Group
	req.MemberID = id
	req.Members = []kmsg.LeaveGroupRequestMember{{MemberID: id}}
	if _, err := req.RequestWith(ctx, m.cl); err != nil {
		m.log.Warn().Err(err).Msg("leaving the group failed; the group drops this instance after the session timeout")
		return
	}
	m.log.Info().Msg("left the group")
}
