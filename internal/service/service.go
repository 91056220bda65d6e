// Package service wires lookout together: config -> model, sinks, pipeline
// and sources, the HTTP ops server, replay checkpoints, and for `lookout run`
// the signals (graceful stop, kill, SIGHUP reload). `lookout run` and
// `lookout caption` share it; cmd/lookout keeps only commands and flags.
package service

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"gocv.io/x/gocv"

	"lookout/inference"
	"lookout/ingest"
	"lookout/internal/config"
	"lookout/internal/cores"
	"lookout/internal/now"
	"lookout/internal/rules"
	"lookout/pipeline"
	"lookout/sink"
	"lookout/spool"
)

// Service wires config -> components: the model, the sinks, the pipeline and
// its sources. It is shared by `lookout run` and `lookout caption`.
type Service struct {
	cfg   config.Config
	log   zerolog.Logger
	reg   *prometheus.Registry
	model *inference.Model
	// domain warns once per source whose frames are mostly out of the
	// model's domain; nil for models without a domain profile.
	domain *domainWatch
	sinks  []sink.Sink
	spool  *spool.Sink
	// alertSpool is the alerts' Kafka sink (sinks.kafka.alerts_topic).
	alertSpool *spool.Sink
	// rules turns caption records into alerts (the rules section).
	rules *rules.Engine
	video *sink.AnnotateWriter
	pipe  *pipeline.Pipeline
	srcM  *sourceMetrics
	pm    *pipelineMetrics
	ckpt  checkpointStore
	// fleet is set in cluster mode (fleet.go).
	fleet *fleet
	// fromStart ignores replay checkpoints.
	fromStart bool
	// onDelivered, when set, also sees every delivered record (progress).
	onDelivered func(sourceID string, ptsMillis int64)
	// failFirstOpen makes a live source that cannot open at all an error
	// (one-shot commands) rather than a reconnect loop.
	failFirstOpen bool
	// now is the per-source view of now, for the status page and /sources.
	now               *now.View
	instance          string
	maxBatch, workers int

	mu      sync.Mutex
	sources map[string]config.Source
	// killed is set by a second signal: Close does not wait for the broker.
	killed atomic.Bool
	// live maps source id -> bool for the spool's full policy; a sync.Map
	// because sinks consult it while s.mu may be held by a reload.
	live sync.Map
}

// Options adjust a Service to its command.
type Options struct {
	// ExitWhenDone ends Run once every source has ended (one-shot captioning).
	ExitWhenDone bool
	// FromStart ignores replay checkpoints.
	FromStart bool
	// FailFirstOpen makes a live source that cannot open at all an error
	// (one-shot commands) rather than a reconnect loop.
	FailFirstOpen bool
	// ExtraSinks are added next to the configured ones (e.g. stdout).
	ExtraSinks []sink.Sink
	// OnDelivered, when set, also sees every delivered record (progress).
	OnDelivered func(sourceID string, ptsMillis int64)
	// OnCaptioned, when set, also sees each caption record with its frame,
	// valid only during the call (the replay report's thumbnails).
	OnCaptioned func(rec sink.Record, img gocv.Mat)
}

// ConfigError marks an error caused by the configuration or the command line
// (a wrong model path, a bad source): commands exit with status 2 on it.
type ConfigError struct{ Err error }

func (e ConfigError) Error() string { return e.Err.Error() }
func (e ConfigError) Unwrap() error { return e.Err }

// New loads the model and opens the sinks. Close releases them.
func New(ctx context.Context, cfg config.Config, log zerolog.Logger, opt Options) (s *Service, err error) {
	s = &Service{cfg: cfg, log: log, reg: newRegistry(), sources: map[string]config.Source{},
		fromStart: opt.FromStart, failFirstOpen: opt.FailFirstOpen, onDelivered: opt.OnDelivered,
		instance: cmp.Or(recordInstance(cfg), instanceName())}
	s.now = now.New(s.instance, nil)
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.srcM, err = newSourceMetrics(s.reg); err != nil {
		return s, err
	}
	s.srcM.onGated = s.now.Gated

	s.workers, s.maxBatch = autoWorkers(cfg.Pipeline.Workers), cfg.Pipeline.MaxBatch
	if err = s.loadModel(cfg.Model, log); err != nil {
		return s, err
	}

	if cfg.Sinks.JSONL.Path != "" {
		j, err := sink.NewJSONLSink(cfg.Sinks.JSONL.Path)
		if err != nil {
			return s, err
		}
		s.sinks = append(s.sinks, j)
	}
	s.sinks = append(s.sinks, opt.ExtraSinks...)
	if cfg.Sinks.Kafka.Enabled {
		if err := s.openKafka(ctx); err != nil {
			return s, err
		}
		if err := s.openAlertsKafka(ctx); err != nil {
			return s, err
		}
	}
	if s.rules, err = s.newRules(cfg); err != nil {
		return s, err
	}
	if cfg.Sinks.Video.Path != "" {
		if s.video, err = sink.NewAnnotateWriter(cfg.Sinks.Video.Path, videoFPS(cfg.Sources)); err != nil {
			return s, err
		}
	}

	s.domain = newDomainWatch(s.model, log)

	if s.pm, err = newPipelineMetrics(s.reg); err != nil {
		return s, err
	}
	if cfg.DataDir != "" {
		if s.ckpt, err = openCheckpoints(filepath.Join(cfg.DataDir, "checkpoints")); err != nil {
			return s, err
		}
		// In cluster mode joinFleet replaces these with the Kafka topic.
	}
	pcfg := pipeline.Config{
		MaxBatch:            cfg.Pipeline.MaxBatch,
		MaxWait:             cfg.Pipeline.MaxWait,
		Workers:             s.workers,
		QueueSize:           cfg.Pipeline.QueueSize,
		ExitWhenSourcesDone: opt.ExitWhenDone,
		OnDelivered:         s.delivered,
		OnCaptioned:         s.captionedHooks(opt.OnCaptioned),
		Derive:              s.derive,
	}
	s.pipe = pipeline.New(pcfg, s.model, withInstance(s.sinks, recordInstance(cfg)), log, s.pm)
	s.pm.watch(s.pipe.Sources)
	s.now.SetStates(s.pipe.Sources)
	return s, nil
}

// loadModel loads the model for s.workers workers, giving the scheduler a
// spare P per worker (internal/cores).
func (s *Service) loadModel(m config.Model, log zerolog.Logger) error {
	mopts := modelOptions(m, s.workers, log)
	procs := cores.Reserve(s.workers)
	var err error
	if s.model, err = inference.Load(m.Dir, mopts); err != nil {
		if _, serr := os.Stat(m.Dir); errors.Is(serr, fs.ErrNotExist) {
			err = ConfigError{err} // a wrong path in the config or on the command line, as in `model info`
		}
		return err
	}
	log.Info().Str("model", s.model.Name()).Str("digest", s.model.Digest()).Str("dir", m.Dir).
		Int("workers", s.workers).Int("intra_op_threads", mopts.IntraOpThreads).Int("sessions", mopts.Sessions).
		Int("cores", cores.N()).Int("gomaxprocs", procs).Msg("model loaded")
	return nil
}

// autoWorkers resolves pipeline.workers: 0 means one per core, at most 8.
func autoWorkers(n int) int {
	if n > 0 {
		return n
	}
	return min(cores.N(), 8)
}

// modelOptions turns the model config into engine options. With
// intra_op_threads 0, each of the workers' runs gets an equal share of the
// cores: concurrent single-thread runs beat one multi-thread run on small
// batches (docs/CAPACITY.md).
func modelOptions(m config.Model, workers int, log zerolog.Logger) inference.Options {
	if m.IntraOpThreads == 0 {
		m.IntraOpThreads = max(1, cores.N()/max(workers, 1))
	}
	if m.Sessions == 0 {
		m.Sessions = autoSessions(inference.GraphBytes(m.Dir), workers)
	}
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
		LibraryPath:       m.Library,
		Provider:          m.Provider,
		AllowCPUFallback:  m.AllowCPUFallback,
		IntraOpThreads:    m.IntraOpThreads,
		Sessions:          m.Sessions,
		InterOpThreads:    m.InterOpThreads,
		Decoder:           m.Decoder,
		Resize:            m.Resize,
		GraphOptimization: m.GraphOptimization,
		Generation:        g,
		Task:              m.Task,
		Logger:            log.With().Str("component", "inference").Logger(),
	}
}

// sharedSessionsAbove is the model size from which workers share one copy
// of the sessions by default: each copy holds the weights again.
const sharedSessionsAbove = 256 << 20

// autoSessions resolves model.sessions 0: a copy of the sessions per worker
// (concurrent runs on one session contend on its locks), unless the model's
// graphs weigh more than sharedSessionsAbove.
func autoSessions(graphBytes int64, workers int) int {
	if graphBytes > sharedSessionsAbove {
		return 1
	}
	return max(workers, 1)
}

// videoFPS plays the annotated video at the sampling rate of the first
// source, so one second of it is one second of the input.
func videoFPS(sources []config.Source) float64 {
	for _, src := range sources {
		if src.FPS > 0 {
			return src.FPS
		}
		if src.Every > 0 {
			return float64(time.Second) / float64(src.Every)
		}
	}
	return 1
}

func (s *Service) topicOverrides() map[string]string {
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
func (s *Service) delivered(sourceID string, ptsMillis int64) {
	s.now.Delivered(sourceID, ptsMillis)
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
func (s *Service) SourceIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.sources))
	for id := range s.sources {
		ids = append(ids, id)
	}
	return ids
}

// desired turns a configured source into what the pipeline runs: its spec,
// a version (a digest of its settings, so a reload restarts only changed
// sources) and the function that opens it.
func (s *Service) desired(src config.Source) (pipeline.Desired, error) {
	loc, err := ingest.ParseURI(src.URI)
	if err != nil {
		return pipeline.Desired{}, fmt.Errorf("source %s: %w", src.ID, err)
	}
	if err := CheckFileInput(loc); err != nil {
		return pipeline.Desired{}, fmt.Errorf("source %s: %w", src.ID, err)
	}
	if src.Task != "" && s.model != nil && !s.model.SupportsTask(src.Task) {
		return pipeline.Desired{}, fmt.Errorf("source %s: task %s needs a Florence-2 model; model %s is %s", src.ID, src.Task, s.model.Name(), s.model.Info().Architecture)
	}
	var startAt int64 = -1
	if !loc.Kind.Live() && !s.fromStart && s.ckpt != nil {
		if pts, ok := s.ckpt.Load(src.ID, src.URI); ok {
			startAt = pts
			s.log.Info().Str("source", src.ID).Int64("after_pts_ms", pts).Msg("resuming replay from checkpoint (--from-start overrides)")
		}
	}
	s.live.Store(src.ID, loc.Kind.Live())
	s.exposeZeros(src)
	// ingest adds the "source" field itself.
	log := s.log.With().Str("component", "ingest").Logger()
	open := func(ctx context.Context) (ingest.Source, error) {
		sc := ingest.SampleConfig{Every: src.Every, FPS: src.FPS}
		every, _ := sc.Interval() // checked by config.Validate
		spec := ingest.SourceSpec{ID: src.ID, URI: src.URI, Realtime: src.Realtime, Logger: log,
			Decode: ingest.Decode(src.Decode), SampleEvery: every, Metrics: s.srcM}
		rc := ingest.ReconnectConfig{Metrics: s.srcM, Logger: log, FailFirstOpen: s.failFirstOpen}
		smp, err := openSampled(ctx, spec, sc, rc, startAt, s.srcM)
		if err != nil || src.Gate.Threshold <= 0 {
			return smp, err
		}
		g, err := ingest.NewGate(smp, src.ID, ingest.GateConfig{Threshold: src.Gate.Threshold, MaxInterval: src.Gate.MaxInterval}, s.srcM)
		if err != nil {
			_ = smp.Close()
			return nil, err
		}
		return g, nil
	}
	emit := pipeline.Emit{Changes: src.Emit == "changes"}
	if emit.Changes {
		emit.Heartbeat = pipeline.DefaultHeartbeat
		if src.Heartbeat != nil {
			emit.Heartbeat = *src.Heartbeat
		}
	}
	b, _ := json.Marshal(src)
	sum := sha256.Sum256(b)
	return pipeline.Desired{
		Spec:    pipeline.SourceSpec{ID: src.ID, Labels: src.Labels, Live: loc.Kind.Live(), Emit: emit, Task: src.Task},
		Version: hex.EncodeToString(sum[:8]),
		Open:    open,
	}, nil
}

// AddSource starts a source; before Run it starts when Run starts.
func (s *Service) AddSource(src config.Source) error {
	if f := s.cluster(); f != nil {
		return f.put(src)
	}
	d, err := s.desired(src)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.sources[src.ID]; dup {
		return fmt.Errorf("source %s: already running; remove it first", src.ID)
	}
	if err := s.pipe.AddSource(d.Spec, d.Open); err != nil {
		return err
	}
	s.sources[src.ID] = src
	return nil
}

// Reconcile makes the running sources match want (a config reload):
// unchanged sources are not touched.
func (s *Service) Reconcile(want []config.Source) (added, removed, restarted []string, err error) {
	var ds []pipeline.Desired
	var errs []error
	next := map[string]config.Source{}
	for _, src := range want {
		d, err := s.desired(src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ds = append(ds, d)
		next[src.ID] = src
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	added, removed, restarted, err = s.pipe.Reconcile(ds)
	s.sources = next
	return added, removed, restarted, errors.Join(append(errs, err)...)
}

// RemoveSource stops one source, leaving the others running.
func (s *Service) RemoveSource(id string) error {
	if f := s.cluster(); f != nil {
		return f.remove(id)
	}
	s.mu.Lock()
	_, ok := s.sources[id]
	delete(s.sources, id)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("source %q is not running", id)
	}
	return s.pipe.RemoveSource(id)
}

// Ready is nil when the pipeline can caption and deliver; the text gives
// the Kafka spool's state. A broker that does not acknowledge makes the
// Kafka sink down (README: /readyz fails while a sink is down); records
// wait in the spool meanwhile.
func (s *Service) Ready() (string, error) {
	var detail string
	if s.spool != nil {
		st := s.spool.State()
		detail = fmt.Sprintf("kafka broker_up=%t spool_records=%d spool_bytes=%d oldest_unsent=%s dropped=%d\n",
			st.BrokerUp, st.SpoolRecords, st.SpoolBytes, st.OldestUnsentAge.Round(time.Millisecond), st.Dropped)
	}
	if s.pipe == nil {
		return detail, errors.New("starting")
	}
	if f := s.cluster(); f != nil {
		fd, err := f.readiness()
		detail = fd + detail
		if err != nil {
			return detail + s.pipe.SourcesSummary(), err
		}
	}
	detail, alertsErr := s.alertsReady(detail)
	detail += s.pipe.SourcesSummary()
	if err := s.pipe.Ready(); err != nil {
		return detail, err
	}
	if s.spool != nil {
		if st := s.spool.State(); !st.BrokerUp {
			return detail, fmt.Errorf("kafka broker not acknowledging, %d records spooled: %s", st.SpoolRecords, st.LastError)
		}
	}
	return detail, alertsErr
}

// Close releases sinks and the model; call after Run returned. After a
// kill (second signal) the spool is closed at once: its records are on disk.
func (s *Service) Close() {
	if f := s.cluster(); f != nil {
		f.close()
	}
	for _, sp := range []*spool.Sink{s.spool, s.alertSpool} {
		if s.killed.Load() && sp != nil {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := sp.CloseContext(ctx); err != nil {
				s.log.Error().Err(err).Msg("closing spool")
			}
		}
	}
	for _, k := range s.sinks {
		if err := k.Close(); err != nil {
			s.log.Error().Err(err).Msg("closing sink")
		}
	}
	if s.video != nil {
		if err := s.video.Close(); err != nil {
			s.log.Error().Err(err).Msg("closing annotated video")
		}
	}
	if s.model != nil {
		_ = s.model.Close()
	}
}
