package config

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	"lookout/inference"
	"lookout/sink"
)

var sourceID = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// Validate checks every field and names the first bad one, placed in its
// file when c came from Load: "site.yaml:9: sources[1].id: ...".
func (c Config) Validate() error {
	if ps := c.problems(); len(ps) > 0 {
		return c.placed(ps[0])
	}
	return nil
}

// problem is one invalid field value.
type problem struct {
	field, msg string
	// other is the field a conflict is with, e.g. the first source of a
	// duplicate id; the message adds its line, or its path when unplaced.
	other string
}

// problems collects the invalid values of one config, in field order.
type problems []problem

func (ps *problems) bad(field, format string, args ...any) {
	*ps = append(*ps, problem{field: field, msg: fmt.Sprintf(format, args...)})
}

// oneOf reports v unless it is one of allowed.
func (ps *problems) oneOf(field, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	ps.bad(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

// problems lists every invalid field value in field order, section by
// section.
func (c Config) problems() []problem {
	var ps problems
	c.Log.check(&ps)
	c.HTTP.check(&ps)
	c.Model.check(&ps)
	c.Pipeline.check(&ps)
	checkSources(c.Sources, &ps)
	ps = append(ps, c.clusterProblems()...)
	c.Sinks.check(&ps)
	return append(ps, c.ruleProblems()...)
}

func (l Log) check(ps *problems) {
	ps.oneOf("log.level", l.Level, "trace", "debug", "info", "warn", "error")
	ps.oneOf("log.format", l.Format, "json", "console", "auto")
}

func (h HTTP) check(ps *problems) {
	if h.Listen == "" {
		return
	}
	host, _, err := net.SplitHostPort(h.Listen)
	if err != nil {
		ps.bad("http.listen", "%q is not host:port", h.Listen)
	} else if !isLoopback(host) && h.Token == "" {
		ps.bad("http.token", "required when http.listen (%s) is not a loopback address; set it or LOOKOUT_HTTP_TOKEN", h.Listen)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (m Model) check(ps *problems) {
	if m.Dir == "" {
		ps.bad("model.dir", "must name a model folder")
	}
	ps.oneOf("model.provider", m.Provider, "cpu", "cuda", "tensorrt")
	ps.oneOf("model.decoder", m.Decoder, "auto", "merged", "split")
	checkTask("model.task", m.Task, ps)
	ps.oneOf("model.resize", m.Resize, "exact", "fast")
	ps.oneOf("model.graph_optimization", m.GraphOptimization, "all", "extended", "basic", "disable")
	if m.IntraOpThreads < 0 || m.InterOpThreads < 0 {
		ps.bad("model.intra_op_threads", "thread counts must be >= 0")
	}
	if m.Sessions < 0 {
		ps.bad("model.sessions", "must be >= 0 (0: one per pipeline worker)")
	}
	g := m.Generation
	if g.NumBeams != nil && *g.NumBeams < 1 {
		ps.bad("model.generation.num_beams", "must be >= 1, got %d", *g.NumBeams)
	}
	if g.MaxNewTokens != nil && *g.MaxNewTokens < 1 {
		ps.bad("model.generation.max_new_tokens", "must be >= 1, got %d", *g.MaxNewTokens)
	}
	if g.RepetitionPenalty != nil && *g.RepetitionPenalty <= 0 {
		ps.bad("model.generation.repetition_penalty", "must be > 0, got %g", *g.RepetitionPenalty)
	}
	if g.EarlyStopping != nil {
		ps.oneOf("model.generation.early_stopping", *g.EarlyStopping, "true", "false", "never")
	}
}

// checkTask reports a Florence-2 task token the engine does not know ("" is
// the model's default).
func checkTask(field, task string, ps *problems) {
	if task != "" && !inference.KnownTask(task) {
		ps.bad(field, "%q is not one of %s", task, strings.Join(inference.Tasks(), ", "))
	}
}

func (p Pipeline) check(ps *problems) {
	if p.MaxBatch < 1 || p.MaxBatch > 256 {
		ps.bad("pipeline.max_batch", "must be between 1 and 256, got %d", p.MaxBatch)
	}
	if p.MaxWait < 0 {
		ps.bad("pipeline.max_wait", "must be >= 0, got %s", p.MaxWait)
	}
	if p.Workers < 0 || p.Workers > 64 {
		ps.bad("pipeline.workers", "must be between 1 and 64 (0: one per core), got %d", p.Workers)
	}
	if p.QueueSize < 1 {
		ps.bad("pipeline.queue_size", "must be >= 1, got %d", p.QueueSize)
	}
}

// checkSources checks each source and that ids are unique.
func checkSources(srcs []Source, ps *problems) {
	seen := map[string]int{}
	for i, s := range srcs {
		f := fmt.Sprintf("sources[%d]", i)
		if !sourceID.MatchString(s.ID) {
			ps.bad(f+".id", "%q must be non-empty and use only letters, digits, '.', '_' and '-'", s.ID)
		} else if j, dup := seen[s.ID]; dup {
			*ps = append(*ps, problem{field: f + ".id", msg: fmt.Sprintf("%q is used by another source", s.ID), other: fmt.Sprintf("sources[%d].id", j)})
		} else {
			seen[s.ID] = i
		}
		s.check(f, ps)
	}
}

// check checks one source's fields but its id; f is its path, sources[i].
func (s Source) check(f string, ps *problems) {
	if strings.TrimSpace(s.URI) == "" {
		ps.bad(f+".uri", "must be set (file path, rtsp://, device://N or synth://)")
	}
	if s.Every < 0 {
		ps.bad(f+".every", "must be > 0, got %s", s.Every)
	}
	if s.FPS < 0 || s.FPS > 240 {
		ps.bad(f+".fps", "must be between 0 and 240, got %g", s.FPS)
	}
	if s.Every > 0 && s.FPS > 0 {
		ps.bad(f+".every", "set either every or fps, not both")
	}
	if s.Decode != "" {
		ps.oneOf(f+".decode", s.Decode, "all", "keyframes", "auto")
	}
	if s.Emit != "" {
		ps.oneOf(f+".emit", s.Emit, "every", "changes")
	}
	checkTask(f+".task", s.Task, ps)
	if s.Heartbeat != nil && *s.Heartbeat < 0 {
		ps.bad(f+".heartbeat", "must be >= 0 (0s: no heartbeats), got %s", *s.Heartbeat)
	}
	if s.Heartbeat != nil && s.Emit != "changes" {
		ps.bad(f+".heartbeat", "only applies with emit: changes")
	}
	if s.Gate.Threshold < 0 || s.Gate.Threshold > 255 {
		ps.bad(f+".gate.threshold", "must be between 0 and 255 grey levels, got %g", s.Gate.Threshold)
	}
	if s.Gate.MaxInterval < 0 {
		ps.bad(f+".gate.max_interval", "must be >= 0, got %s", s.Gate.MaxInterval)
	}
	if s.Weight < 0 || s.Weight > 100 {
		ps.bad(f+".weight", "must be between 1 and 100 (0: the default 1), got %d", s.Weight)
	}
}

func (s Sinks) check(ps *problems) {
	if s.Kafka.Enabled {
		s.Kafka.check(ps)
	}
	if !s.Kafka.Enabled && s.JSONL.Path == "" && s.Video.Path == "" {
		ps.bad("sinks", "enable at least one of kafka, jsonl, video")
	}
}

func (k Kafka) check(ps *problems) {
	if len(k.Brokers) == 0 {
		ps.bad("sinks.kafka.brokers", "must list at least one host:port")
	}
	for _, b := range k.Brokers {
		if err := sink.CheckBroker(b); err != nil {
			ps.bad("sinks.kafka.brokers", "%v", err)
		}
	}
	if k.Topic == "" {
		ps.bad("sinks.kafka.topic", "must be set")
	}
	if k.AlertsTopic == "" {
		ps.bad("sinks.kafka.alerts_topic", "must be set")
	} else if k.AlertsTopic == k.Topic {
		ps.bad("sinks.kafka.alerts_topic", "%q is also sinks.kafka.topic: alerts need a topic of their own", k.AlertsTopic)
	}
	if err := sink.CheckCompression(k.Compression); err != nil {
		ps.bad("sinks.kafka.compression", "%v", err)
	}
	if k.BatchSize < 1 {
		ps.bad("sinks.kafka.batch_size", "must be >= 1, got %d", k.BatchSize)
	}
	if k.SpoolMaxBytes < 1<<20 {
		ps.bad("sinks.kafka.spool_max_bytes", "must be at least 1 MiB, got %d", k.SpoolMaxBytes)
	}
	if err := sink.CheckSASLMechanism(k.SASL.Mechanism); err != nil {
		ps.bad("sinks.kafka.sasl.mechanism", "%v", err)
	} else if k.SASL.Mechanism != "" {
		if k.SASL.Username == "" {
			ps.bad("sinks.kafka.sasl.username", "required with mechanism %s", k.SASL.Mechanism)
		}
		if k.SASL.Password == "" && k.SASL.PasswordFile == "" {
			ps.bad("sinks.kafka.sasl.password", "required with mechanism %s; set password_file or LOOKOUT_KAFKA_PASSWORD", k.SASL.Mechanism)
		}
	}
}
