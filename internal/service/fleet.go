package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"lookout/ingest"
	"lookout/internal/cluster"
	"lookout/internal/config"
)

// fleet is cluster mode's part of the service: the catalogue it follows,
// the group membership that says which catalogue sources run here, and the
// replay checkpoints in Kafka. An assignment is a desired set of sources,
// applied through Reconcile like a SIGHUP reload: sources kept by a
// rebalance keep running untouched.
type fleet struct {
	cfg    config.Cluster
	log    zerolog.Logger
	cat    *cluster.Catalogue
	ckpt   *cluster.Checkpoints
	member *cluster.Member
	m      *fleetMetrics

	cancel context.CancelFunc
	done   chan struct{}
	err    atomic.Value // error: set when the group refused this instance

	applyMu  sync.Mutex // one apply at a time
	mu       sync.Mutex
	assigned []string
	rejected map[string]string // source id -> "uri|reason" already logged
}

// joinFleet opens the catalogue and the checkpoints, then joins the group;
// sources start as the group assigns them. httpAddr is this instance's ops
// address, published to `lookout sources ls`.
func (s *Service) joinFleet(ctx context.Context, httpAddr string) error {
	cc := s.cfg.Cluster
	opts, err := cluster.ClientOptions(s.cfg.Sinks.Kafka)
	if err != nil {
		return ConfigError{err}
	}
	f := &fleet{cfg: cc, log: s.log.With().Str("component", "cluster").Logger(), rejected: map[string]string{}, done: make(chan struct{})}
	if f.m, err = newFleetMetrics(s.reg); err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if f.cat, err = cluster.OpenCatalogue(octx, opts, cluster.CatalogueConfig{Topic: cc.Catalogue, OnBad: f.m.bad.Inc, Logger: s.log}); err != nil {
		return fmt.Errorf("cluster: %w (is sinks.kafka.brokers %v reachable?)", err, s.cfg.Sinks.Kafka.Brokers)
	}
	if err := f.cat.WaitSynced(octx); err != nil {
		f.cat.Close()
		return fmt.Errorf("cluster: %w", err)
	}
	if f.ckpt, err = cluster.OpenCheckpoints(octx, opts, cc.Checkpoints, s.log); err != nil {
		f.cat.Close()
		return fmt.Errorf("cluster: %w", err)
	}
	s.ckpt = f.ckpt
	f.member, err = cluster.NewMember(opts, cluster.MemberConfig{
		Group: cc.Group, Instance: cc.Instance, Digest: s.model.Digest(), HTTP: httpAddr,
		SessionTimeout: cc.SessionTimeout, Heartbeat: cc.Heartbeat,
		Owned:    f.owned,
		Work:     func() []cluster.Work { return cluster.WorkOf(f.cat.Sources()) },
		OnAssign: func(_ int32, ids []string) { f.setAssigned(ids); s.applyFleet() },
		OnRebalance: func(took time.Duration, members int, _ bool) {
			f.m.rebalances.Inc()
			f.m.handover.Observe(took.Seconds())
			f.m.members.Set(float64(members))
		},
		Logger: s.log,
	})
	if err != nil {
		f.ckpt.Close()
		f.cat.Close()
		return err
	}
	if f.m.inGroup, err = registerInGroup(s.reg, f.member.InGroup); err != nil {
		return err
	}
	s.mu.Lock()
	s.fleet = f // the ops server may already ask (cluster())
	s.mu.Unlock()
	mctx, mcancel := context.WithCancel(context.Background())
	f.cancel = mcancel
	go s.followCatalogue(mctx)
	go func() {
		defer close(f.done)
		if err := f.member.Run(mctx); err != nil {
			f.err.Store(err)
			s.pipe.Stop() // refused: Serve returns f.err
		}
	}()
	f.log.Info().Str("group", cc.Group).Str("instance", cc.Instance).Int("catalogue", len(f.cat.Sources())).Msg("joining the fleet")
	return nil
}

// followCatalogue applies catalogue changes: this instance updates or stops
// the sources it owns at once, and the leader rebalances when sources were
// added or removed.
func (s *Service) followCatalogue(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.fleet.cat.Changed():
			s.applyFleet()
			s.fleet.member.CatalogueChanged()
		}
	}
}

func (f *fleet) owned() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.assigned)
}

func (f *fleet) setAssigned(ids []string) {
	f.mu.Lock()
	f.assigned = slices.Clone(ids)
	f.mu.Unlock()
	f.m.owned.Set(float64(len(ids)))
}

// applyFleet runs exactly the assigned sources that the catalogue holds
// and this instance's cluster.allow accepts.
func (s *Service) applyFleet() {
	f := s.fleet
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	cat := map[string]config.Source{}
	for _, src := range f.cat.Sources() {
		cat[src.ID] = src
	}
	var want []config.Source
	for _, id := range f.owned() {
		src, ok := cat[id]
		if !ok {
			continue
		}
		if reason := f.refusal(src); reason != "" {
			f.reject(src, reason)
			continue
		}
		want = append(want, src)
	}
	added, removed, restarted, err := s.Reconcile(want)
	if len(added)+len(removed)+len(restarted) > 0 || err != nil {
		ev := f.log.Info()
		if err != nil {
			ev = f.log.Error().Err(err)
		}
		ev.Strs("started", added).Strs("stopped", removed).Strs("restarted", restarted).Int("running", len(want)).Msg("fleet sources applied")
	}
}

// refusal says why this instance will not open src, or "" when it will:
// whoever can write the catalogue could otherwise make it open any URI.
func (f *fleet) refusal(src config.Source) string {
	loc, err := ingest.ParseURI(src.URI)
	if err != nil {
		return err.Error()
	}
	kind := loc.Kind.String()
	if !slices.Contains(f.cfg.Allow.Schemes, kind) {
		return fmt.Sprintf("scheme %s is not in cluster.allow.schemes %v", kind, f.cfg.Allow.Schemes)
	}
	if src.Topic != "" {
		return "a per-source topic is not supported in cluster mode (records go to sinks.kafka.topic)"
	}
	if loc.Kind != ingest.KindFile {
		return ""
	}
	p := filepath.Clean(loc.Path)
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	}
	for _, root := range f.cfg.Allow.FileRoots {
		if r, err := filepath.Rel(filepath.Clean(root), p); err == nil && filepath.IsAbs(p) && r != ".." && !strings.HasPrefix(r, "../") {
			return ""
		}
	}
	return fmt.Sprintf("file %s is not under cluster.allow.file_roots %v", loc.Path, f.cfg.Allow.FileRoots)
}

// reject logs a refused source once per (uri, reason) and counts it.
func (f *fleet) reject(src config.Source, reason string) {
	loc, _ := ingest.ParseURI(src.URI)
	key := loc.Redacted + "|" + reason
	f.mu.Lock()
	seen := f.rejected[src.ID] == key
	f.rejected[src.ID] = key
	f.mu.Unlock()
	if seen {
		return
	}
	f.m.rejected.Inc()
	f.log.Error().Str("source", src.ID).Str("uri", loc.Redacted).Str("reason", reason).
		Msg("catalogue source refused by this instance's cluster.allow; it stays assigned here but does not run")
}

// leave hands this instance's sources to the others at once (graceful stop).
func (f *fleet) leave() {
	f.cancel()
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
	}
}

func (f *fleet) close() {
	f.leave()
	f.ckpt.Close()
	f.cat.Close()
}

// readiness describes the membership for /readyz; an error while this
// instance holds no current assignment.
func (f *fleet) readiness() (string, error) {
	gen, members, leader := f.member.State()
	owned := f.owned()
	detail := fmt.Sprintf("cluster group=%s instance=%s in_group=%t generation=%d members=%d leader=%t owned=%d catalogue=%d\n",
		f.cfg.Group, f.cfg.Instance, f.member.InGroup(), gen, members, leader, len(owned), len(f.cat.Sources()))
	if !f.member.InGroup() {
		return detail, errors.New("not in the cluster group")
	}
	return detail, nil
}

// recordInstance is the name records carry: cluster.instance in cluster
// mode, none otherwise.
func recordInstance(cfg config.Config) string {
	if cfg.Cluster.Enabled {
		return cfg.Cluster.Instance
	}
	return ""
}

// put writes a source to the catalogue (POST /sources in cluster mode); the
// group decides where it runs.
func (f *fleet) put(src config.Source) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.cat.Put(ctx, src); err != nil {
		return fmt.Errorf("catalogue %s: %w", f.cfg.Catalogue, err)
	}
	return nil
}

// remove writes the tombstone of id (DELETE /sources in cluster mode).
func (f *fleet) remove(id string) error {
	known := false
	for _, s := range f.cat.Sources() {
		known = known || s.ID == id
	}
	if !known {
		return fmt.Errorf("source %q is not in the catalogue %s", id, f.cfg.Catalogue)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return f.cat.Remove(ctx, id)
}

// refused is the group's refusal of this instance, or nil.
func (f *fleet) refused() error {
	err, _ := f.err.Load().(error)
	return err
}

// SourceStates maps each source the pipeline runs to its state (GET
// /sources, `lookout sources ls`).
func (s *Service) SourceStates() map[string]string {
	out := map[string]string{}
	for _, st := range s.pipe.Sources() {
		out[st.ID] = st.State
	}
	return out
}

// cluster is the fleet in cluster mode, nil otherwise; the ops server may
// ask while joinFleet sets it.
func (s *Service) cluster() *fleet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fleet
}

// advertised is the ops address other hosts can reach (for `sources ls`): a
// wildcard listen address is replaced by the host name.
func advertised(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			return net.JoinHostPort(h, port)
		}
	}
	return addr
}
