package service

import (
	"os"

	"gocv.io/x/gocv"

	"lookout/internal/config"
	"lookout/internal/now"
	"lookout/internal/statuspage"
	"lookout/sink"
)

// instanceName names this process as the owner of its sources on the
// status page: the host name (the fleet will name its members).
func instanceName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "local"
	}
	return h
}

// captionedHooks joins what must see each caption record with its frame:
// the per-source view of now (thumbnails while the page is open), the
// annotated video and the command's own hook (the replay report).
func (s *Service) captionedHooks(extra func(sink.Record, gocv.Mat)) func(sink.Record, gocv.Mat) {
	return func(rec sink.Record, img gocv.Mat) {
		s.now.Captioned(rec, img)
		if s.domain != nil {
			s.domain.observe(rec)
		}
		if s.video != nil {
			if err := s.video.WriteFrame(rec, img); err != nil {
				s.log.Error().Err(err).Msg("annotated video: frame not written")
			}
		}
		if extra != nil {
			extra(rec, img)
		}
	}
}

// Now is the per-source view of now (latest record, state, rates).
func (s *Service) Now() *now.View { return s.now }

// StatusHeader is the service-wide part of the status page.
func (s *Service) StatusHeader() statuspage.Header {
	h := statuspage.Header{Instance: s.instance, MaxBatch: s.maxBatch, Workers: s.workers}
	if s.model != nil {
		h.Model, h.ModelDigest = s.model.Name(), s.model.Digest()
	}
	if s.spool != nil {
		st := s.spool.State()
		h.Kafka = &statuspage.Kafka{BrokerUp: st.BrokerUp, SpoolRecords: int64(st.SpoolRecords), SpoolBytes: st.SpoolBytes,
			OldestUnsentSec: st.OldestUnsentAge.Seconds(), LastError: st.LastError}
	}
	return h
}

// exposeZeros makes a source's event counters exist at 0 from the start
// (Prometheus' advice for known labels), so that rate() and the dashboard
// see drops, stale and gated frames as 0 rather than as no data.
func (s *Service) exposeZeros(src config.Source) {
	if s.pm != nil {
		s.pm.dropped.WithLabelValues(src.ID, "overflow")
	}
	s.srcM.stale.WithLabelValues(src.ID)
	if src.Gate.Threshold > 0 {
		s.srcM.gated.WithLabelValues(src.ID)
	}
}
