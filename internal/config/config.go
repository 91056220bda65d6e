// Package config loads and validates lookout's YAML configuration.
//
// Every field documents its default. Strings may reference environment
// variables as ${NAME}, so secrets (RTSP and SASL passwords) stay out of the
// file; SASL passwords may also come from a file. Relative paths written in
// a file are relative to its folder (Load). Errors name the file, line and
// field of each distinct mistake; DecodeStrict does the same for any other
// YAML document lookout reads.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Config is the whole of lookout.yaml.
type Config struct {
	// DataDir holds service state: the Kafka spool and replay checkpoints.
	// Relative to the config file's folder when set there (as every path
	// below). Default "lookout-data", relative to the working directory.
	DataDir string `yaml:"data_dir"`
	Log     Log    `yaml:"log"`
	HTTP    HTTP   `yaml:"http"`
	Model   Model  `yaml:"model"`
	// Pipeline tunes batching and queues.
	Pipeline Pipeline `yaml:"pipeline"`
	// Sources to caption; at least one for `lookout run`.
	Sources []Source `yaml:"sources"`
	Sinks   Sinks    `yaml:"sinks"`
	// Rules turn caption records into alert records (see Rule).
	Rules []Rule `yaml:"rules"`
	// Cluster makes this instance one of a fleet sharing the catalogue's
	// sources (cluster.go).
	Cluster Cluster `yaml:"cluster"`

	origin origin
}

// Log configures zerolog output.
type Log struct {
	// Level is trace|debug|info|warn|error. Default "info".
	Level string `yaml:"level"`
	// Format is json|console|auto; auto means console on a terminal, JSON
	// otherwise. Default "auto".
	Format string `yaml:"format"`
}

// HTTP configures the metrics, health and source-management server.
type HTTP struct {
	// Listen is host:port; empty disables the server. Default "127.0.0.1:9464".
	Listen string `yaml:"listen"`
	// Token, when set, is the bearer token the source-management endpoint
	// requires. Required when Listen is not a loopback address.
	// Default ${LOOKOUT_HTTP_TOKEN}.
	Token string `yaml:"token"`
}

// Model selects and tunes the captioning model.
type Model struct {
	// Dir is a model folder in optimum's image-to-text-with-past layout,
	// relative to the config file's folder. Default "models/demo", relative
	// to the working directory.
	Dir string `yaml:"dir"`
	// Provider is cpu|cuda|tensorrt. Default "cpu".
	Provider string `yaml:"provider"`
	// AllowCPUFallback logs and falls back to CPU when the provider cannot
	// load. Default false.
	AllowCPUFallback bool `yaml:"allow_cpu_fallback"`
	// IntraOpThreads: threads per ONNX Runtime run. Default 0: cores divided
	// by pipeline.workers, at least 1 (measured best: docs/CAPACITY.md).
	// InterOpThreads: 0 lets ONNX Runtime decide.
	IntraOpThreads int `yaml:"intra_op_threads"`
	InterOpThreads int `yaml:"inter_op_threads"`
	// Decoder is auto (merged decoder when the folder has one, else the split
	// pair), merged or split (faster, twice the decoder weights in memory).
	// Default "auto".
	Decoder string `yaml:"decoder"`
	// Resize is exact (Pillow's resampling bit for bit, as the model was
	// trained) or fast (OpenCV's, about 2.2 ms less per 720p frame per core, not
	// bit-exact). Default "exact".
	Resize string `yaml:"resize"`
	// GraphOptimization is all, extended, basic or disable. Default "all".
	GraphOptimization string `yaml:"graph_optimization"`
	// Library is the ONNX Runtime shared library, relative to the config
	// file's folder. Default: $LOOKOUT_ORT_LIB, else
	// .state/ort/libonnxruntime.so under the repository.
	Library string `yaml:"library"`
	// Task is the Florence-2 task every frame runs: <CAPTION> (default),
	// <DETAILED_CAPTION>, <MORE_DETAILED_CAPTION>, <OD> (records get objects)
	// or <OCR> (records get ocr). Only a Florence-2 model takes one.
	Task string `yaml:"task"`
	// Generation overrides generation_config.json; unset fields keep the
	// model's values.
	Generation Generation `yaml:"generation"`
}

// Generation overrides the model's generation settings.
type Generation struct {
	NumBeams          *int     `yaml:"num_beams"`
	MaxNewTokens      *int     `yaml:"max_new_tokens"`
	MinLength         *int     `yaml:"min_length"`
	LengthPenalty     *float64 `yaml:"length_penalty"`
	RepetitionPenalty *float64 `yaml:"repetition_penalty"`
	NoRepeatNgramSize *int     `yaml:"no_repeat_ngram_size"`
	EarlyStopping     *string  `yaml:"early_stopping"`
}

// Pipeline tunes batching and queues.
type Pipeline struct {
	// MaxBatch is the largest cross-source batch. Default 8.
	MaxBatch int `yaml:"max_batch"`
	// MaxWait is how long the first frame of a batch waits for company.
	// Default 50ms.
	MaxWait time.Duration `yaml:"max_wait"`
	// Workers is the number of inference workers, captioning batches at
	// once. Default 0: one per core (GOMAXPROCS), at most 8; with
	// model.intra_op_threads 0 each run then gets cores/workers threads.
	Workers int `yaml:"workers"`
	// QueueSize is the per-source queue length. Default 4.
	QueueSize int `yaml:"queue_size"`
}

// Source is one camera, device, file or synthetic scene.
type Source struct {
	// ID names the source in records and metrics, and is the Kafka key.
	// Required, unique, [A-Za-z0-9._-]+.
	ID string `yaml:"id"`
	// URI is file:///path or a path, rtsp://host/path, device://N or
	// /dev/videoN, or synth://driving?seed=1&fps=30&size=1280x720. A
	// relative path is relative to the config file's folder (to the working
	// directory for POST /sources).
	URI string `yaml:"uri"`
	// Every samples one frame per interval of stream time. Default 1s when
	// FPS is 0.
	Every time.Duration `yaml:"every"`
	// FPS samples N frames per second instead of Every.
	FPS float64 `yaml:"fps"`
	// Decode is all, keyframes or auto (files and RTSP): all decodes every
	// frame (converting only the sampled ones), keyframes only keyframes
	// (a sample is then the first keyframe at or past its time, at the
	// keyframe's real PTS; the stream must have no B-frames), auto measures
	// the keyframe interval when the source opens and decodes keyframes only
	// when the GOP is steady and at most the sampling interval. Default
	// "auto".
	Decode string `yaml:"decode,omitempty"`
	// Gate skips captioning a sampled frame that barely differs from the
	// last captioned one (see Gate). Default: off.
	Gate Gate `yaml:"gate"`
	// Emit is every (publish every caption record) or changes (only records
	// whose caption changed, plus heartbeats). Default
	// "every".
	Emit string `yaml:"emit"`
	// Heartbeat, with emit: changes, repeats the current caption after this
	// much stream time without a published record. Default 60s; 0s: never.
	Heartbeat *time.Duration `yaml:"heartbeat"`
	// Realtime paces file replays at native speed. Default false.
	Realtime bool `yaml:"realtime"`
	// Labels are copied into every record of this source.
	Labels map[string]string `yaml:"labels"`
	// Topic overrides the Kafka topic for this source.
	Topic string `yaml:"topic"`
	// Task is the Florence-2 task this source's frames run (<CAPTION>,
	// <DETAILED_CAPTION>, <MORE_DETAILED_CAPTION>, <OD>, <OCR>); default
	// model.task. Only a Florence-2 model takes one.
	Task string `yaml:"task"`
	// Weight is the source's share of an instance in cluster mode (a 4K
	// camera may count 4). Default 1.
	Weight int `yaml:"weight,omitempty"`
}

// Gate configures change gating before inference.
type Gate struct {
	// Threshold is the mean absolute difference, in grey levels (0-255) of
	// a 32x18 thumbnail, below which a frame is not captioned. 0 (the
	// default) turns gating off; docs/EVENTS.md measures 3.
	Threshold float64 `yaml:"threshold"`
	// MaxInterval forces a caption after this much stream time without one.
	// Default 60s.
	MaxInterval time.Duration `yaml:"max_interval"`
}

// Sinks lists where records go. At least one must be enabled.
type Sinks struct {
	Kafka Kafka `yaml:"kafka"`
	JSONL JSONL `yaml:"jsonl"`
	Video Video `yaml:"video"`
}

// Kafka configures the Kafka sink.
type Kafka struct {
	// Enabled turns the sink on. Default false.
	Enabled bool `yaml:"enabled"`
	// Brokers are host:port bootstrap addresses. Default ["127.0.0.1:9092"].
	Brokers []string `yaml:"brokers"`
	// Topic receives records unless a source overrides it.
	// Default "lookout.captions".
	Topic string `yaml:"topic"`
	// AlertsTopic receives the rules' alert records, through a spool of
	// their own under DataDir/spool-alerts. Default "lookout.alerts".
	AlertsTopic string `yaml:"alerts_topic"`
	// Compression is none|gzip|snappy|lz4|zstd. Default "lz4".
	Compression string `yaml:"compression"`
	// BatchSize is the most records per produce request. Default 100.
	BatchSize int `yaml:"batch_size"`
	// BatchTimeout bounds how long a partial batch waits. Default 10ms.
	BatchTimeout time.Duration `yaml:"batch_timeout"`
	TLS          TLS           `yaml:"tls"`
	SASL         SASL          `yaml:"sasl"`
	// SpoolMaxBytes bounds the disk spool under DataDir/spool.
	// Default 1 GiB.
	SpoolMaxBytes int64 `yaml:"spool_max_bytes"`
}

// TLS configures encryption to the brokers. Relative file names are
// relative to the config file's folder.
type TLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASL configures broker authentication.
type SASL struct {
	// Mechanism is ""|plain|scram-sha-256|scram-sha-512. Default "" (none).
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password; prefer ${ENV} or PasswordFile. Default ${LOOKOUT_KAFKA_PASSWORD}.
	Password string `yaml:"password"`
	// PasswordFile holds the password, relative to the config file's folder.
	PasswordFile string `yaml:"password_file"`
}

// String never shows the password.
func (s SASL) String() string {
	return fmt.Sprintf("SASL{mechanism=%s user=%s password=%s}", s.Mechanism, s.Username, redacted(s.Password))
}

func redacted(s string) string {
	if s == "" {
		return ""
	}
	return "xxxxx"
}

// JSONL configures the JSON-lines sink.
type JSONL struct {
	// Path is a file, relative to the config file's folder, or "-" for
	// stdout. Empty disables the sink.
	Path string `yaml:"path"`
}

// Video configures the annotated-video sink.
type Video struct {
	// Path of the annotated MP4, relative to the config file's folder; empty
	// disables the sink.
	Path string `yaml:"path"`
}

// Default returns the configuration used when a field is not set.
func Default() Config {
	return Config{
		DataDir:  "lookout-data",
		Log:      Log{Level: "info", Format: "auto"},
		HTTP:     HTTP{Listen: "127.0.0.1:9464"},
		Model:    Model{Dir: "models/demo", Provider: "cpu", Decoder: "auto", Resize: "exact", GraphOptimization: "all"},
		Pipeline: Pipeline{MaxBatch: 8, MaxWait: 50 * time.Millisecond, Workers: 0, QueueSize: 4},
		Sinks: Sinks{Kafka: Kafka{
			Brokers: []string{"127.0.0.1:9092"}, Topic: "lookout.captions", AlertsTopic: "lookout.alerts", Compression: "lz4",
			BatchSize: 100, BatchTimeout: 10 * time.Millisecond, SpoolMaxBytes: 1 << 30,
		}},
		Cluster: defaultCluster(),
	}
}

// Load reads, expands, defaults and validates a YAML file. Errors name the
// file and the line: "site.yaml:6: sources[0]: unknown field ...", one
// distinct mistake per line.
//
// Relative paths the file sets (data_dir, model.dir, model.library,
// sinks.jsonl.path, sinks.video.path, the TLS files, sasl.password_file and
// source URIs that are plain file paths) are resolved against the file's
// folder, so a config works from any working directory. Defaults the file
// does not override (data_dir "lookout-data", model.dir "models/demo") stay
// relative to the working directory.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Config{}, fmt.Errorf("config %s: file not found; pass an existing file to --config (examples in configs/)", path)
		}
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	c, err := parse(path, b, os.Getenv)
	if err != nil {
		return Config{}, err
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	c.resolvePaths(dir)
	return c, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Parse decodes YAML strictly (unknown fields are errors), expands ${ENV}
// references with getenv, applies defaults and validates. Errors place each
// mistake as "line N: field: ..."; paths are left as written.
func Parse(b []byte, getenv func(string) string) (Config, error) {
	return parse("", b, getenv)
}

// parse is Parse for a document called name in messages.
func parse(name string, b []byte, getenv func(string) string) (Config, error) {
	expanded, err := expandEnv(name, b, getenv)
	if err != nil {
		return Config{}, err
	}
	c := Default()
	lines, err := decodeStrict(name, expanded, &c)
	if err != nil {
		return Config{}, err
	}
	c.origin = origin{file: name, lines: lines}
	if c.HTTP.Token == "" {
		c.HTTP.Token = getenv("LOOKOUT_HTTP_TOKEN")
	}
	if c.Sinks.Kafka.SASL.Password == "" {
		c.Sinks.Kafka.SASL.Password = getenv("LOOKOUT_KAFKA_PASSWORD")
	}
	if c.Cluster.Instance == "" {
		c.Cluster.Instance = getenv("LOOKOUT_INSTANCE")
	}
	if c.Cluster.Instance == "" {
		c.Cluster.Instance, _ = os.Hostname()
	}
	for i := range c.Sources {
		if c.Sources[i].Every == 0 && c.Sources[i].FPS == 0 {
			c.Sources[i].Every = time.Second
		}
	}
	var errs []*FieldError
	for _, p := range c.problems() {
		errs = append(errs, c.placed(p))
	}
	if err := joinFieldErrors(errs); err != nil {
		return Config{}, err
	}
	return c, nil
}

// expandEnv replaces every ${NAME} in b with getenv(NAME); a reference to
// an unset variable is an error naming it and its line.
func expandEnv(name string, b []byte, getenv func(string) string) ([]byte, error) {
	var out bytes.Buffer
	last := 0
	for _, m := range envRef.FindAllSubmatchIndex(b, -1) {
		v := getenv(string(b[m[2]:m[3]]))
		if v == "" {
			line := 1 + bytes.Count(b[:m[0]], []byte("\n"))
			return nil, &FieldError{File: name, Line: line, Err: fmt.Errorf("environment variable %s is referenced but not set; export it or remove the reference", b[m[2]:m[3]])}
		}
		out.Write(b[last:m[0]])
		out.WriteString(v)
		last = m[1]
	}
	out.Write(b[last:])
	return out.Bytes(), nil
}

// origin remembers where a Config came from, for messages that place a
// field in its file.
type origin struct {
	file string
	// lines holds the line of every field the file sets, by path.
	lines map[string]int
}

// line returns the line of path, or of its nearest enclosing field the
// file sets (sources[1].uri falls back to sources[1]); 0 when none is.
func (o origin) line(path string) int {
	for path != "" {
		if l, ok := o.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// FieldErr places err at field of the file c was loaded from, as the
// config's own errors are: "site.yaml:7: sources[0].uri: <err>". It is for
// checks made outside this package, such as parsing a source URI.
func (c Config) FieldErr(field string, err error) *FieldError {
	return &FieldError{File: c.origin.file, Line: c.origin.line(field), Path: field, Err: err}
}

// SourceErr is FieldErr for a field of sources[i]: SourceErr(0, "uri", err)
// reads "site.yaml:7: sources[0].uri: <err>".
func (c Config) SourceErr(i int, field string, err error) *FieldError {
	return c.FieldErr(fmt.Sprintf("sources[%d].%s", i, field), err)
}

// placed turns a validation problem into a FieldError at its line.
func (c Config) placed(p problem) *FieldError {
	msg := p.msg
	if p.other != "" {
		if l := c.origin.line(p.other); l > 0 {
			msg += fmt.Sprintf(" (line %d)", l)
		} else {
			msg += " (" + p.other + ")"
		}
	}
	return c.FieldErr(p.field, errors.New(msg))
}

// resolvePaths makes the relative paths the file set relative to dir.
func (c *Config) resolvePaths(dir string) {
	resolve := func(field string, p *string) {
		if _, set := c.origin.lines[field]; set && *p != "" && *p != "-" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	resolve("data_dir", &c.DataDir)
	resolve("model.dir", &c.Model.Dir)
	resolve("model.library", &c.Model.Library)
	resolve("sinks.jsonl.path", &c.Sinks.JSONL.Path)
	resolve("sinks.video.path", &c.Sinks.Video.Path)
	resolve("sinks.kafka.tls.ca_file", &c.Sinks.Kafka.TLS.CAFile)
	resolve("sinks.kafka.tls.cert_file", &c.Sinks.Kafka.TLS.CertFile)
	resolve("sinks.kafka.tls.key_file", &c.Sinks.Kafka.TLS.KeyFile)
	resolve("sinks.kafka.sasl.password_file", &c.Sinks.Kafka.SASL.PasswordFile)
	for i := range c.Sources {
		if u := strings.TrimSpace(c.Sources[i].URI); !uriScheme.MatchString(u) {
			c.Sources[i].URI = u
			resolve(fmt.Sprintf("sources[%d].uri", i), &c.Sources[i].URI)
		}
	}
}

// uriScheme matches URIs with a scheme (rtsp://, synth://, file:///...),
// which are not relative paths.
var uriScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

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

// problems lists every invalid field value in field order.
func (c Config) problems() []problem {
	var errs []problem
	bad := func(field, format string, args ...any) {
		errs = append(errs, problem{field: field, msg: fmt.Sprintf(format, args...)})
	}
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of trace, debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console", "auto":
	default:
		bad("log.format", "%q is not one of json, console, auto", c.Log.Format)
	}
	if c.HTTP.Listen != "" {
		host, _, err := net.SplitHostPort(c.HTTP.Listen)
		if err != nil {
			bad("http.listen", "%q is not host:port", c.HTTP.Listen)
		} else if !isLoopback(host) && c.HTTP.Token == "" {
			bad("http.token", "required when http.listen (%s) is not a loopback address; set it or LOOKOUT_HTTP_TOKEN", c.HTTP.Listen)
		}
	}
	if c.Model.Dir == "" {
		bad("model.dir", "must name a model folder")
	}
	switch c.Model.Provider {
	case "cpu", "cuda", "tensorrt":
	default:
		bad("model.provider", "%q is not one of cpu, cuda, tensorrt", c.Model.Provider)
	}
	switch c.Model.Decoder {
	case "auto", "merged", "split":
	default:
		bad("model.decoder", "%q is not one of auto, merged, split", c.Model.Decoder)
	}
	if !knownTask(c.Model.Task) {
		bad("model.task", "%q is not one of %s", c.Model.Task, florenceTasks)
	}
	switch c.Model.Resize {
	case "exact", "fast":
	default:
		bad("model.resize", "%q is not one of exact, fast", c.Model.Resize)
	}
	switch c.Model.GraphOptimization {
	case "all", "extended", "basic", "disable":
	default:
		bad("model.graph_optimization", "%q is not one of all, extended, basic, disable", c.Model.GraphOptimization)
	}
	if c.Model.IntraOpThreads < 0 || c.Model.InterOpThreads < 0 {
		bad("model.intra_op_threads", "thread counts must be >= 0")
	}
	g := c.Model.Generation
	if g.NumBeams != nil && *g.NumBeams < 1 {
		bad("model.generation.num_beams", "must be >= 1, got %d", *g.NumBeams)
	}
	if g.MaxNewTokens != nil && *g.MaxNewTokens < 1 {
		bad("model.generation.max_new_tokens", "must be >= 1, got %d", *g.MaxNewTokens)
	}
	if g.RepetitionPenalty != nil && *g.RepetitionPenalty <= 0 {
		bad("model.generation.repetition_penalty", "must be > 0, got %g", *g.RepetitionPenalty)
	}
	if g.EarlyStopping != nil {
		switch *g.EarlyStopping {
		case "true", "false", "never":
		default:
			bad("model.generation.early_stopping", "%q is not one of true, false, never", *g.EarlyStopping)
		}
	}
	p := c.Pipeline
	if p.MaxBatch < 1 || p.MaxBatch > 256 {
		bad("pipeline.max_batch", "must be between 1 and 256, got %d", p.MaxBatch)
	}
	if p.MaxWait < 0 {
		bad("pipeline.max_wait", "must be >= 0, got %s", p.MaxWait)
	}
	if p.Workers < 0 || p.Workers > 64 {
		bad("pipeline.workers", "must be between 1 and 64 (0: one per core), got %d", p.Workers)
	}
	if p.QueueSize < 1 {
		bad("pipeline.queue_size", "must be >= 1, got %d", p.QueueSize)
	}
	seen := map[string]int{}
	for i, s := range c.Sources {
		f := fmt.Sprintf("sources[%d]", i)
		if !sourceID.MatchString(s.ID) {
			bad(f+".id", "%q must be non-empty and use only letters, digits, '.', '_' and '-'", s.ID)
		} else if j, dup := seen[s.ID]; dup {
			errs = append(errs, problem{field: f + ".id", msg: fmt.Sprintf("%q is used by another source", s.ID), other: fmt.Sprintf("sources[%d].id", j)})
		} else {
			seen[s.ID] = i
		}
		if strings.TrimSpace(s.URI) == "" {
			bad(f+".uri", "must be set (file path, rtsp://, device://N or synth://)")
		}
		if s.Every < 0 {
			bad(f+".every", "must be > 0, got %s", s.Every)
		}
		if s.FPS < 0 || s.FPS > 240 {
			bad(f+".fps", "must be between 0 and 240, got %g", s.FPS)
		}
		if s.Every > 0 && s.FPS > 0 {
			bad(f+".every", "set either every or fps, not both")
		}
		switch s.Decode {
		case "", "all", "keyframes", "auto":
		default:
			bad(f+".decode", "%q is not one of all, keyframes, auto", s.Decode)
		}
		switch s.Emit {
		case "", "every", "changes":
		default:
			bad(f+".emit", "%q is not one of every, changes", s.Emit)
		}
		if !knownTask(s.Task) {
			bad(f+".task", "%q is not one of %s", s.Task, florenceTasks)
		}
		if s.Heartbeat != nil && *s.Heartbeat < 0 {
			bad(f+".heartbeat", "must be >= 0 (0s: no heartbeats), got %s", *s.Heartbeat)
		}
		if s.Heartbeat != nil && s.Emit != "changes" {
			bad(f+".heartbeat", "only applies with emit: changes")
		}
		if s.Gate.Threshold < 0 || s.Gate.Threshold > 255 {
			bad(f+".gate.threshold", "must be between 0 and 255 grey levels, got %g", s.Gate.Threshold)
		}
		if s.Gate.MaxInterval < 0 {
			bad(f+".gate.max_interval", "must be >= 0, got %s", s.Gate.MaxInterval)
		}
		if s.Weight < 0 || s.Weight > 100 {
			bad(f+".weight", "must be between 1 and 100 (0: the default 1), got %d", s.Weight)
		}
	}
	errs = append(errs, c.clusterProblems()...)
	k := c.Sinks.Kafka
	if k.Enabled {
		if len(k.Brokers) == 0 {
			bad("sinks.kafka.brokers", "must list at least one host:port")
		}
		for _, b := range k.Brokers {
			if _, _, err := net.SplitHostPort(b); err != nil {
				bad("sinks.kafka.brokers", "%q is not host:port", b)
			}
		}
		if k.Topic == "" {
			bad("sinks.kafka.topic", "must be set")
		}
		if k.AlertsTopic == "" {
			bad("sinks.kafka.alerts_topic", "must be set")
		} else if k.AlertsTopic == k.Topic {
			bad("sinks.kafka.alerts_topic", "%q is also sinks.kafka.topic: alerts need a topic of their own", k.AlertsTopic)
		}
		switch k.Compression {
		case "none", "gzip", "snappy", "lz4", "zstd":
		default:
			bad("sinks.kafka.compression", "%q is not one of none, gzip, snappy, lz4, zstd", k.Compression)
		}
		if k.BatchSize < 1 {
			bad("sinks.kafka.batch_size", "must be >= 1, got %d", k.BatchSize)
		}
		if k.SpoolMaxBytes < 1<<20 {
			bad("sinks.kafka.spool_max_bytes", "must be at least 1 MiB, got %d", k.SpoolMaxBytes)
		}
		switch k.SASL.Mechanism {
		case "":
		case "plain", "scram-sha-256", "scram-sha-512":
			if k.SASL.Username == "" {
				bad("sinks.kafka.sasl.username", "required with mechanism %s", k.SASL.Mechanism)
			}
			if k.SASL.Password == "" && k.SASL.PasswordFile == "" {
				bad("sinks.kafka.sasl.password", "required with mechanism %s; set password_file or LOOKOUT_KAFKA_PASSWORD", k.SASL.Mechanism)
			}
		default:
			bad("sinks.kafka.sasl.mechanism", "%q is not one of plain, scram-sha-256, scram-sha-512", k.SASL.Mechanism)
		}
	}
	if !k.Enabled && c.Sinks.JSONL.Path == "" && c.Sinks.Video.Path == "" {
		bad("sinks", "enable at least one of kafka, jsonl, video")
	}
	return append(errs, c.ruleProblems()...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ParseSource decodes one source given as YAML or JSON (the body of POST
// /sources), e.g. {"id":"cam2","uri":"rtsp://host/x","every":"1s"}, applies
// the sampling default and validates it. Errors read like the config file's,
// prefixed "source: " and with fields named as in the body:
// `source: line 1: unknown field "evry"; did you mean "every"? (known: ...)`.
func ParseSource(b []byte) (Source, error) {
	var s Source
	lines, err := decodeStrict("", b, &s)
	if err != nil {
		return Source{}, prefixed{"source: ", err}
	}
	if s.Every == 0 && s.FPS == 0 {
		s.Every = time.Second
	}
	c := Default()
	c.Sources = []Source{s}
	c.Sinks.JSONL.Path = "-"
	var errs []*FieldError
	for _, p := range c.problems() {
		p.field = strings.TrimPrefix(strings.TrimPrefix(p.field, "sources[0]"), ".")
		errs = append(errs, &FieldError{Line: origin{lines: lines}.line(p.field), Path: p.field, Err: errors.New(p.msg)})
	}
	if err := joinFieldErrors(errs); err != nil {
		return Source{}, prefixed{"source: ", err}
	}
	return s, nil
}

// prefixed starts every line of an error with prefix.
type prefixed struct {
	prefix string
	err    error
}

func (p prefixed) Error() string {
	return p.prefix + strings.ReplaceAll(p.err.Error(), "\n", "\n"+p.prefix)
}

func (p prefixed) Unwrap() error { return p.err }

// florenceTasks are the Florence-2 task tokens model.task and sources[].task
// take (inference.Tasks; config imports no lookout package).
const florenceTasks = "<CAPTION>, <DETAILED_CAPTION>, <MORE_DETAILED_CAPTION>, <OD>, <OCR>"

func knownTask(t string) bool {
	switch t {
	case "", "<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>", "<OD>", "<OCR>":
		return true
	}
	return false
}
