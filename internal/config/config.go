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
	// Sessions is how many copies of the ONNX Runtime sessions to open.
	// Default 0: one per pipeline worker, so that concurrent runs do not
	// contend on one session's locks, or 1 when the model's .onnx files
	// exceed 256 MiB (each copy holds the weights again).
	Sessions int `yaml:"sessions"`
	// Decoder is auto (merged decoder when the folder has one, else the split
	// pair), merged or split (faster, twice the decoder weights in memory).
	// Default "auto".
	Decoder string `yaml:"decoder"`
	// Resize is exact (Pillow's resampling bit for bit, as the model was
	// trained) or fast (OpenCV's, about 2.4 ms less per 720p frame per core, not
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
			c.Sources[i].Every = DefaultEvery
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
		s.Every = DefaultEvery
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
