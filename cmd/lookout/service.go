package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"lookout/inference"
	"lookout/ingest"
	"lookout/internal/config"
	"lookout/pipeline"
	"lookout/sink"
)

// service wires config -> components: the model, the sinks, the pipeline and
// its sources. It is shared by `lookout run` and `lookout caption`.
type service struct {
	cfg   config.Config
	log   zerolog.Logger
	reg   *prometheus.Registry
	model *inference.Model
	sinks []sink.Sink
	spool *sink.SpoolingSink
	pipe  *pipeline.Pipeline
	srcM  *sourceMetrics
	ckpt  *checkpoints
	// fromStart ignores replay checkpoints.
	fromStart bool
	// onDelivered, when set, also sees every delivered record (progress).
	onDelivered func(sourceID string, ptsMillis int64)
	// failFirstOpen makes a live source that cannot open at all an error
	// (one-shot commands) rather than a reconnect loop.
	failFirstOpen bool

	mu      sync.Mutex
	sources map[string]config.Source
}

type serviceOptions struct {
	exitWhenDone  bool
	fromStart     bool
	failFirstOpen bool
	// extraSinks are added next to the configured ones (e.g. stdout).
	extraSinks []sink.Sink
}

// newService loads the model and opens the sinks. Close releases them.
func newService(ctx context.Context, cfg config.Config, log zerolog.Logger, opt serviceOptions) (s *service, err error) {
	s = &service{cfg: cfg, log: log, reg: prometheus.NewRegistry(), sources: map[string]config.Source{},
		fromStart: opt.fromStart, failFirstOpen: opt.failFirstOpen}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.srcM, err = newSourceMetrics(s.reg); err != nil {
		return s, err
	}

	s.model, err = inference.Load(cfg.Model.Dir, modelOptions(cfg.Model, log))
	if err != nil {
		return s, err
	}
	log.Info().Str("model", s.model.Name()).Str("digest", s.model.Digest()).Str("dir", cfg.Model.Dir).Msg("model loaded")

	if cfg.Sinks.JSONL.Path != "" {
		j, err := sink.NewJSONLSink(cfg.Sinks.JSONL.Path)
		if err != nil {
			return s, err
		}
		s.sinks = append(s.sinks, j)
	}
	s.sinks = append(s.sinks, opt.extraSinks...)
	if cfg.Sinks.Kafka.Enabled {
		if err := s.openKafka(ctx); err != nil {
			return s, err
		}
	}
	if cfg.Sinks.Video.Path != "" {
		log.Warn().Str("path", cfg.Sinks.Video.Path).Msg("sinks.video is not wired into `lookout run` yet; use `lookout caption --video`")
	}

	pm, err := pipeline.NewMetrics(s.reg)
	if err != nil {
		return s, err
	}
	if cfg.DataDir != "" {
		if s.ckpt, err = openCheckpoints(filepath.Join(cfg.DataDir, "checkpoints")); err != nil {
			return s, err
		}
	}
	pcfg := pipeline.Config{
		MaxBatch:            cfg.Pipeline.MaxBatch,
		MaxWait:             cfg.Pipeline.MaxWait,
		Workers:             cfg.Pipeline.Workers,
		QueueSize:           cfg.Pipeline.QueueSize,
		ExitWhenSourcesDone: opt.exitWhenDone,
		OnDelivered:         s.delivered,
	}
	s.pipe = pipeline.New(pcfg, s.model, s.sinks, log, pm)
	return s, nil
}

func modelOptions(m config.Model, log zerolog.Logger) inference.Options {
	g := inference.GenerationOptions{
		NumBeams:          m.Generation.NumBeams,
		MaxNewTokens:      m.Generation.MaxNewTokens,
		MinLength:         m.Generation.MinLength,
		LengthPenalty:     m.Generation.LengthPenalty,
		RepetitionPenalty: m.Generation.RepetitionPenalty,
		NoRepeatNgramSize: m.Generation.NoRepeatNgramSize,
	}
	if m.Generation.EarlyStopping != nil {
		e := inference.EarlyStopping(*m.Generation.EarlyStopping)
		g.EarlyStopping = &e
	}
	return inference.Options{
		LibraryPath:      m.Library,
		Provider:         m.Provider,
		AllowCPUFallback: m.AllowCPUFallback,
		IntraOpThreads:   m.IntraOpThreads,
		InterOpThreads:   m.InterOpThreads,
		Generation:       g,
		Logger:           log.With().Str("component", "inference").Logger(),
	}
}

func (s *service) openKafka(ctx context.Context) error {
	k := s.cfg.Sinks.Kafka
	password := k.SASL.Password
	if k.SASL.PasswordFile != "" {
		b, err := os.ReadFile(k.SASL.PasswordFile)
		if err != nil {
			return fmt.Errorf("sinks.kafka.sasl.password_file: %w", err)
		}
		password = strings.TrimSpace(string(b))
	}
	compression := k.Compression
	kmetrics, err := sink.NewPromMetrics(s.reg, "kafka")
	if err != nil {
		return err
	}
	log := s.log.With().Str("component", "kafka").Logger()
	ks, err := sink.NewKafkaSink(sink.KafkaConfig{
		Brokers:       k.Brokers,
		Topic:         k.Topic,
		TopicBySource: s.topicOverrides(),
		Compression:   compression,
		BatchSize:     k.BatchSize,
		BatchTimeout:  k.BatchTimeout,
		TLS: sink.TLSConfig{Enabled: k.TLS.Enabled, CAFile: k.TLS.CAFile, CertFile: k.TLS.CertFile,
			KeyFile: k.TLS.KeyFile, InsecureSkipVerify: k.TLS.InsecureSkipVerify},
		SASL:    sink.SASLConfig{Mechanism: k.SASL.Mechanism, Username: k.SASL.Username, Password: password},
		Metrics: kmetrics,
		Logger:  log,
	})
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, src := range s.cfg.Sources {
		if loc, err := ingest.ParseURI(src.URI); err == nil {
			live[src.ID] = loc.Kind.Live()
		}
	}
	sp, err := sink.NewSpoolingSink(ks, sink.SpoolingConfig{
		Spool: sink.SpoolConfig{Dir: filepath.Join(s.cfg.DataDir, "spool"), MaxBytes: k.SpoolMaxBytes, Logger: log},
		Policy: func(id string) sink.FullPolicy {
			if live[id] {
				return sink.DropOldest
			}
			return sink.Block
		},
		Metrics: kmetrics,
		Logger:  log,
	})
	if err != nil {
		_ = ks.Close()
		return err
	}
	s.spool = sp
	s.sinks = append(s.sinks, sp)
	return nil
}

func (s *service) topicOverrides() map[string]string {
	m := map[string]string{}
	for _, src := range s.cfg.Sources {
		if src.Topic != "" {
			m[src.ID] = src.Topic
		}
	}
	return m
}

// delivered advances a replay's checkpoint once every sink accepted the
// record of the frame at pts.
func (s *service) delivered(sourceID string, ptsMillis int64) {
	if s.onDelivered != nil {
		s.onDelivered(sourceID, ptsMillis)
	}
	s.mu.Lock()
	src, ok := s.sources[sourceID]
	s.mu.Unlock()
	if !ok {
		return
	}
	if loc, err := ingest.ParseURI(src.URI); err == nil && !loc.Kind.Live() && s.ckpt != nil {
		if err := s.ckpt.Save(sourceID, src.URI, ptsMillis); err != nil {
			s.log.Error().Err(err).Str("source", sourceID).Msg("checkpoint not saved")
		}
	}
}

// SourceIDs lists running sources (for the HTTP API).
func (s *service) SourceIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.sources))
	for id := range s.sources {
		ids = append(ids, id)
	}
	return ids
}

// AddSource starts a source; before Run it starts when Run starts.
func (s *service) AddSource(src config.Source) error {
	loc, err := ingest.ParseURI(src.URI)
	if err != nil {
		return fmt.Errorf("source %s: %w", src.ID, err)
	}
	if topic := src.Topic; topic != "" && s.spool != nil {
		s.log.Warn().Str("source", src.ID).Msg("per-source topic of a source added at run time needs a restart; using the default topic")
	}
	s.mu.Lock()
	if _, dup := s.sources[src.ID]; dup {
		s.mu.Unlock()
		return fmt.Errorf("source %s: already running; remove it first", src.ID)
	}
	s.sources[src.ID] = src
	s.mu.Unlock()

	var startAt int64 = -1
	if !loc.Kind.Live() && !s.fromStart && s.ckpt != nil {
		if pts, ok := s.ckpt.Load(src.ID, src.URI); ok {
			startAt = pts
			s.log.Info().Str("source", src.ID).Int64("after_pts_ms", pts).Msg("resuming replay from checkpoint (--from-start overrides)")
		}
	}
	log := s.log.With().Str("component", "ingest").Str("source", src.ID).Logger()
	open := func(ctx context.Context) (ingest.Source, error) {
		spec := ingest.SourceSpec{ID: src.ID, URI: src.URI, Realtime: src.Realtime, Logger: log}
		sc := ingest.SampleConfig{Every: src.Every, FPS: src.FPS}
		rc := ingest.ReconnectConfig{Metrics: s.srcM, Logger: log, FailFirstOpen: s.failFirstOpen}
		return openSampled(ctx, spec, sc, rc, startAt, s.srcM)
	}
	err = s.pipe.AddSource(pipeline.SourceSpec{ID: src.ID, Labels: src.Labels, Live: loc.Kind.Live()}, open)
	if err != nil {
		s.mu.Lock()
		delete(s.sources, src.ID)
		s.mu.Unlock()
	}
	return err
}

// RemoveSource stops one source, leaving the others running.
func (s *service) RemoveSource(id string) error {
	s.mu.Lock()
	_, ok := s.sources[id]
	delete(s.sources, id)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("source %q is not running", id)
	}
	return s.pipe.RemoveSource(id)
}

// Ready is nil when the pipeline can caption and deliver.
func (s *service) Ready() error {
	if s.pipe == nil {
		return errors.New("starting")
	}
	return s.pipe.Ready()
}

// Close releases sinks and the model; call after Run returned.
func (s *service) Close() {
	for _, k := range s.sinks {
		if err := k.Close(); err != nil {
			s.log.Error().Err(err).Msg("closing sink")
		}
	}
	if s.model != nil {
		_ = s.model.Close()
	}
}
