package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"lookout/ingest"
)

// Desired is one source that a configuration wants running, for Reconcile.
type Desired struct {
	Spec SourceSpec
	// Version identifies the source's settings (a hash of its config
	// section, say); a running source whose Version differs is restarted.
	// Never put secrets here in clear: Sources reports it.
	Version string
	Open    func(ctx context.Context) (ingest.Source, error)
}

// Reconcile makes the running sources match want, for a config reload:
// sources not in want are removed, new ones added, and ones whose Version
// or Spec.Live changed are removed and added again. Unchanged sources are
// not touched. Calls are serialised. It returns the ids it added, removed and restarted, sorted,
// and the joined errors of the steps that failed (the others still happen).
func (p *Pipeline) Reconcile(want []Desired) (added, removed, restarted []string, err error) {
	p.reconcileMu.Lock()
	defer p.reconcileMu.Unlock()
	wanted := make(map[string]Desired, len(want))
	var errs []error
	for _, d := range want {
		if err := d.Spec.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := wanted[d.Spec.ID]; dup {
			errs = append(errs, fmt.Errorf("pipeline: source %q is listed twice: give every source a unique id", d.Spec.ID))
			continue
		}
		wanted[d.Spec.ID] = d
	}
	type have struct {
		version string
		live    bool
	}
	p.mu.Lock()
	current := make(map[string]have, len(p.sources))
	for id, e := range p.sources {
		current[id] = have{version: e.version, live: e.info.spec.Live}
	}
	p.mu.Unlock()

	for id, h := range current {
		d, ok := wanted[id]
		if ok && d.Version == h.version && d.Spec.Live == h.live {
			continue
		}
		if err := p.RemoveSource(id); err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			restarted = append(restarted, id)
		} else {
			removed = append(removed, id)
		}
	}
	for id, d := range wanted {
		h, ok := current[id]
		if ok && d.Version == h.version && d.Spec.Live == h.live {
			continue
		}
		if err := p.addSource(d.Spec, d.Open, d.Version); err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			added = append(added, id)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	sort.Strings(restarted)
	return added, removed, restarted, errors.Join(errs...)
}
