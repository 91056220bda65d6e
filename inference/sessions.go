package inference

import (
	"fmt"
	"path/filepath"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

func (m *Model) openSessions(opts *Options) error {
	provider := opts.Provider
	if provider == "" {
		provider = "cpu"
	}
	err := m.openWith(opts, provider)
	if err != nil && provider != "cpu" && opts.AllowCPUFallback {
		m.log.Warn().Str("model", m.name).Str("provider", provider).Err(err).Msg("provider failed to load; falling back to cpu")
		m.closeSessions()
		provider = "cpu"
		err = m.openWith(opts, provider)
	}
	if err != nil {
		return err
	}
	m.provider = provider
	return nil
}

func (m *Model) openWith(opts *Options, provider string) error {
	so, err := sessionOptions(opts, provider)
	if err != nil {
		return fmt.Errorf("model %s: %w", m.dir, err)
	}
	defer so.Destroy()
	open := func(file string, in, out []string) (*ort.DynamicAdvancedSession, error) {
		s, err := ort.NewDynamicAdvancedSession(filepath.Join(m.dir, file), in, out, so)
		if err != nil {
			return nil, fileError(m.dir, file, "onnxruntime cannot create a %s session: %s", provider, oneLine(firstLine(err.Error())))
		}
		return s, nil
	}
	if m.fl != nil {
		return m.openFlorence(open)
	}
	if m.encoder, err = open(fileEncoder, []string{"pixel_values"}, []string{"last_hidden_state"}); err != nil {
		return err
	}
	if m.merged {
		in, out := m.decoderNames(true, true, m.decIn)
		if m.decoder, err = open(fileMerged, in, out); err != nil {
			return err
		}
	} else {
		in, out := m.decoderNames(false, false, m.dec0In)
		if m.decoder0, err = open(fileDecoder, in, out); err != nil {
			return err
		}
		in, out = m.decoderNames(true, false, m.decIn)
		if m.decoder, err = open(fileDecoderPast, in, out); err != nil {
			return err
		}
	}
	if m.attrs != nil {
		var outs []string
		for _, a := range m.attrs.Attributes {
			outs = append(outs, a.Output)
		}
		if m.attrSess, err = open(fileAttrModel, []string{m.attrs.Input}, outs); err != nil {
			return err
		}
	}
	return nil
}

// runSession runs one ONNX Runtime session and accounts its time.
func (m *Model) runSession(s *ort.DynamicAdvancedSession, in, out []ort.Value) error {
	n := m.running.Add(1)
	for p := m.peakRuns.Load(); n > p && !m.peakRuns.CompareAndSwap(p, n); p = m.peakRuns.Load() {
	}
	t := time.Now()
	err := s.Run(in, out)
	m.sessNanos.Add(int64(time.Since(t)))
	m.running.Add(-1)
	return err
}

// PeakConcurrentRuns is the most ONNX Runtime runs this model has had in
// flight at once: above 1 once Caption calls overlapped.
func (m *Model) PeakConcurrentRuns() int { return int(m.peakRuns.Load()) }

// SessionTime is the cumulative time spent inside ONNX Runtime session runs
// (the raw compute the engine's own work is measured against).
func (m *Model) SessionTime() time.Duration { return time.Duration(m.sessNanos.Load()) }
