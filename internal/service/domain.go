package service

import (
	"sync"

	"github.com/rs/zerolog"

	"lookout/inference"
	"lookout/sink"
)

// Out-of-domain warning: a source trips it when at least domainTrip of its
// last domainWindow caption records are out of the model's domain. One
// warning per source for the life of the process: the point is to tell an
// operator once that the model is being shown footage it was not trained on,
// not to log every frame (each record carries in_domain for that).
const (
	domainWindow = 30
	domainTrip   = 20
)

// domainWatch tracks, per source, the recent in_domain flags of caption
// records. It is called from the pipeline's workers, hence the mutex.
type domainWatch struct {
	prof  inference.DomainProfile
	model string
	log   zerolog.Logger

	mu   sync.Mutex
	srcs map[string]*domainRing
}

// domainRing is one source's last domainWindow flags.
type domainRing struct {
	out    [domainWindow]bool
	n, pos int
	outs   int
	warned bool
}

// newDomainWatch returns nil for models without a domain profile.
func newDomainWatch(m *inference.Model, log zerolog.Logger) *domainWatch {
	prof, ok := m.Domain()
	if !ok {
		return nil
	}
	return &domainWatch{prof: prof, model: m.Name(), srcs: map[string]*domainRing{},
		log: log.With().Str("component", "domain").Logger()}
}

// observe records one caption record's flag and warns once when the source
// trips.
func (w *domainWatch) observe(rec sink.Record) {
	if rec.Kind != sink.KindCaption || rec.InDomain == nil {
		return
	}
	w.mu.Lock()
	r := w.srcs[rec.SourceID]
	if r == nil {
		r = &domainRing{}
		w.srcs[rec.SourceID] = r
	}
	if r.n == domainWindow && r.out[r.pos] {
		r.outs--
	}
	r.out[r.pos] = !*rec.InDomain
	if r.out[r.pos] {
		r.outs++
	}
	r.pos = (r.pos + 1) % domainWindow
	r.n = min(r.n+1, domainWindow)
	trip := !r.warned && r.outs >= domainTrip
	if trip {
		r.warned = true
	}
	outs, n := r.outs, r.n
	w.mu.Unlock()
	if trip {
		w.log.Warn().Str("source", rec.SourceID).Str("model", w.model).Str("trained_on", w.prof.TrainedOn).
			Int("out_of_domain", outs).Int("of_last", n).
			Msgf("source %s: most frames are unlike what model %s was trained on (%s); its captions of this source are unreliable", rec.SourceID, w.model, w.prof.TrainedOn)
	}
}
