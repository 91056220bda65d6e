package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"lookout/internal/logthrottle"
)

// KafkaConfig configures a KafkaSink. The zero value of every optional
// field selects the default stated on it.
type KafkaConfig struct {
	// Brokers are bootstrap host:port addresses. Required.
	Brokers []string
	// Topic receives records whose source has no override. Required.
	Topic string
	// TopicBySource maps a source id to the topic its records go to.
	TopicBySource map[string]string
	// Compression is none, gzip, snappy, lz4 or zstd. Default none.
	Compression string
	// BatchSize is the most records per produce request. Default 100.
	BatchSize int
	// BatchTimeout bounds how long a partial batch waits before it is
	// sent. Default 10ms.
	BatchTimeout time.Duration
	// WriteTimeout bounds one produce request. Default 10s.
	WriteTimeout time.Duration
	// MaxAttempts is how many times a failed produce request is tried.
	// Default 3. (A refused connection fails at once, whatever this is.)
	MaxAttempts int
	// AllowAutoTopicCreation lets the first write create a missing topic
	// (when the broker allows it): before the first produce to a topic the
	// sink asks for it with auto-creation and waits, up to WriteTimeout,
	// until every partition has a leader, so that a new topic's first write
	// neither fails nor counts as a failure. Default false.
	AllowAutoTopicCreation bool
	TLS                    TLSConfig
	SASL                   SASLConfig
	// Metrics receives delivery counts. Default: none.
	Metrics Metrics
	// Logger receives delivery errors, at most one line per ErrorInterval.
	Logger zerolog.Logger
	// ErrorInterval is the least time between two delivery-error log
	// lines. Default 10s.
	ErrorInterval time.Duration
}

// TLSConfig turns on TLS to the brokers.
type TLSConfig struct {
	// Enabled turns TLS on; the other fields need it. Default false.
	Enabled bool
	// CAFile is a PEM bundle of CAs to trust. Default: the system roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key (mutual TLS).
	CertFile, KeyFile string
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool
}

// SASLConfig configures broker authentication.
type SASLConfig struct {
	// Mechanism is "" (none), plain, scram-sha-256 or scram-sha-512
	// (case-insensitive).
	Mechanism string
	Username  string
	// Password is never printed: String and the zerolog marshaller redact it.
	Password string
}

// String describes the config without the password.
func (c SASLConfig) String() string {
	pw := ""
	if c.Password != "" {
		pw = "[redacted]"
	}
	return fmt.Sprintf("{mechanism=%s user=%s password=%s}", c.Mechanism, c.Username, pw)
}

// GoString is String, so %#v redacts too.
func (c SASLConfig) GoString() string { return c.String() }

// String describes the config without secrets.
func (c KafkaConfig) String() string {
	return fmt.Sprintf("KafkaConfig{brokers=%s topic=%s topic_by_source=%v compression=%s batch_size=%d batch_timeout=%s tls=%t sasl=%s}",
		strings.Join(c.Brokers, ","), c.Topic, c.TopicBySource, c.Compression, c.BatchSize, c.BatchTimeout, c.TLS.Enabled, c.SASL)
}

// GoString is String, so %#v redacts too.
func (c KafkaConfig) GoString() string { return c.String() }

// MarshalZerologObject logs the config without secrets.
func (c KafkaConfig) MarshalZerologObject(e *zerolog.Event) {
	e.Strs("brokers", c.Brokers).Str("topic", c.Topic).Str("compression", c.Compression).
		Int("batch_size", c.BatchSize).Int64("batch_timeout_ms", c.BatchTimeout.Milliseconds()).Bool("tls", c.TLS.Enabled).
		Str("sasl_mechanism", c.SASL.Mechanism).Str("sasl_user", c.SASL.Username)
}

func (c *KafkaConfig) applyDefaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	if c.BatchTimeout <= 0 {
		c.BatchTimeout = 10 * time.Millisecond
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.ErrorInterval <= 0 {
		c.ErrorInterval = 10 * time.Second
	}
}

// Validate reports the first invalid field by name.
func (c KafkaConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka sink: brokers: list at least one host:port")
	}
	for _, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" {
			return fmt.Errorf("kafka sink: brokers: %q is not host:port", b)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("kafka sink: brokers: %q has no valid port", b)
		}
	}
	if c.Topic == "" {
		return errors.New("kafka sink: topic: must be set")
	}
	if _, err := compressionCodec(c.Compression); err != nil {
		return err
	}
	if _, err := c.SASL.mechanism(); err != nil {
		return err
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("kafka sink: tls: cert_file and key_file must be set together")
	}
	return nil
}

func compressionCodec(name string) (kafka.Compression, error) {
	switch strings.ToLower(name) {
	case "", "none":
		return 0, nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "lz4":
		return kafka.Lz4, nil
	case "zstd":
		return kafka.Zstd, nil
	}
	return 0, fmt.Errorf("kafka sink: compression: %q is not one of none, gzip, snappy, lz4, zstd", name)
}

func (c SASLConfig) mechanism() (sasl.Mechanism, error) {
	switch strings.ToLower(c.Mechanism) {
	case "":
		return nil, nil
	case "plain":
		return plain.Mechanism{Username: c.Username, Password: c.Password}, nil
	case "scram-sha-256", "scram-sha-512":
		algo := scram.SHA256
		if strings.HasSuffix(strings.ToLower(c.Mechanism), "512") {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, c.Username, c.Password)
		if err != nil {
			// The error may quote the credentials' normalisation; do not wrap it.
			return nil, fmt.Errorf("kafka sink: sasl: cannot prepare %s credentials for user %q (check the username and password characters)", c.Mechanism, c.Username)
		}
		return m, nil
	}
	return nil, fmt.Errorf("kafka sink: sasl.mechanism: %q is not one of plain, scram-sha-256, scram-sha-512", c.Mechanism)
}

func (c TLSConfig) build() (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // opt-in, documented as tests only
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka sink: tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka sink: tls.ca_file: %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka sink: tls.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// KafkaSink writes records to Kafka synchronously: Write returns nil only
// once the broker acknowledged every record with acks=all. The key is the
// source id, so one source's records share a partition and keep their
// order; the value is the record's JSON; headers carry the record id and
// schema version. Safe for concurrent use.
type KafkaSink struct {
	cfg    KafkaConfig
	w      *kafka.Writer
	tr     *kafka.Transport
	errLog *logthrottle.Throttle

	mu     sync.Mutex
	closed bool
	// topics holds the topics already waited for (only with
	// AllowAutoTopicCreation; see ensureTopics).
	topics map[string]bool
}

var _ Sink = (*KafkaSink)(nil)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("sink is closed")

// NewKafkaSink validates cfg and builds the writer. It does not contact the
// brokers: the first Write does.
func NewKafkaSink(cfg KafkaConfig) (*KafkaSink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	codec, _ := compressionCodec(cfg.Compression)
	mech, err := cfg.SASL.mechanism()
	if err != nil {
		return nil, err
	}
	tc, err := cfg.TLS.build()
	if err != nil {
		return nil, err
	}
	tr := &kafka.Transport{TLS: tc, SASL: mech, DialTimeout: 5 * time.Second, ClientID: "lookout"}
	w := &kafka.Writer{
		Addr:                   kafka.TCP(cfg.Brokers...),
		Balancer:               &kafka.Murmur2Balancer{},
		RequiredAcks:           kafka.RequireAll, // the zero value means no acks
		Compression:            codec,
		BatchSize:              cfg.BatchSize,
		BatchTimeout:           cfg.BatchTimeout,
		WriteTimeout:           cfg.WriteTimeout,
		ReadTimeout:            cfg.WriteTimeout,
		MaxAttempts:            cfg.MaxAttempts,
		WriteBackoffMin:        50 * time.Millisecond,
		WriteBackoffMax:        500 * time.Millisecond,
		AllowAutoTopicCreation: cfg.AllowAutoTopicCreation,
		Transport:              tr,
	}
	return &KafkaSink{cfg: cfg, w: w, tr: tr, errLog: logthrottle.New(cfg.ErrorInterval),
		topics: map[string]bool{}}, nil
}

// Name is the sink's label in metrics and logs.
func (k *KafkaSink) Name() string { return "kafka" }

// attemptTimeout bounds how long kafka-go itself may spend on one
// WriteMessages call (every attempt and backoff). A caller's deadline
// shorter than this can return while kafka-go still holds the batch and
// writes it later, out of order; SpoolingSink never uses a shorter one.
func (k *KafkaSink) attemptTimeout() time.Duration {
	return time.Duration(k.cfg.MaxAttempts)*(k.cfg.WriteTimeout+k.w.WriteBackoffMax) + k.cfg.BatchTimeout + 5*time.Second
}

// TopicFor returns the topic a source's records go to.
func (k *KafkaSink) TopicFor(sourceID string) string {
	if t, ok := k.cfg.TopicBySource[sourceID]; ok && t != "" {
		return t
	}
	return k.cfg.Topic
}

// Message builds the Kafka message of a record.
func (k *KafkaSink) Message(r Record) (kafka.Message, error) {
	v, err := json.Marshal(r)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("kafka sink: encode record %s of source %q: %w", r.ID, r.SourceID, err)
	}
	return k.rawMessage(r.SourceID, r.ID, v), nil
}

func (k *KafkaSink) rawMessage(sourceID, id string, value []byte) kafka.Message {
	return kafka.Message{
		Topic: k.TopicFor(sourceID),
		Key:   []byte(sourceID),
		Value: value,
		Headers: []kafka.Header{
			{Key: "lookout-id", Value: []byte(id)},
			{Key: "lookout-schema", Value: []byte(strconv.Itoa(SchemaVersion))},
		},
	}
}

// Write sends recs and waits for the broker's acknowledgement. On failure
// the error joins one error per failed record (see FailedIndexes).
func (k *KafkaSink) Write(ctx context.Context, recs []Record) error {
	msgs := make([]kafka.Message, 0, len(recs))
	for _, r := range recs {
		m, err := k.Message(r)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	return k.writeMessages(ctx, msgs)
}

// DeliveryError lists which messages of a write were not acknowledged.
type DeliveryError struct {
	// Failed holds the indexes, in the written slice, of unacknowledged
	// messages.
	Failed []int
	// Permanent holds the indexes, among Failed, that the broker refused
	// for good (too large, invalid): retrying the same batch cannot help.
	Permanent []int
	Err       error
}

// permanentError reports broker errors that retrying the same record
// cannot fix.
func permanentError(err error) bool {
	for _, e := range []kafka.Error{kafka.MessageSizeTooLarge, kafka.RecordListTooLarge, kafka.InvalidRecord,
		kafka.InvalidMessage, kafka.InvalidTimestamp, kafka.InvalidRequiredAcks} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Error names the first failure and how many more there were, so that a
// large batch makes one readable line.
func (e *DeliveryError) Error() string {
	first := e.Err
	more := 0
	if j, ok := e.Err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
		first, more = j.Unwrap()[0], len(j.Unwrap())-1
	}
	msg := fmt.Sprintf("kafka sink: %d records not acknowledged: %v", len(e.Failed), first)
	if more > 0 {
		msg += fmt.Sprintf(" (and %d more errors)", more)
	}
	return msg
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// FailedIndexes returns the indexes of the records err says were not
// acknowledged, or all n when err does not say.
func FailedIndexes(err error, n int) []int {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.Failed
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	return all
}

func (k *KafkaSink) writeMessages(ctx context.Context, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	k.mu.Lock()
	closed := k.closed
	k.mu.Unlock()
	if closed {
		return ErrClosed
	}
	k.ensureTopics(ctx, msgs)
	err := k.w.WriteMessages(ctx, msgs...)
	if err == nil {
		for src, n := range countBySource(msgs, nil) {
			k.cfg.Metrics.delivered(src, n)
		}
		return nil
	}
	var failed, permanent []int
	var errs []error
	var we kafka.WriteErrors
	if errors.As(err, &we) && len(we) == len(msgs) {
		for i, e := range we {
			if e != nil {
				failed = append(failed, i)
				if permanentError(e) {
					permanent = append(permanent, i)
				}
				errs = append(errs, fmt.Errorf("record %s of source %q: %w", headerID(msgs[i]), string(msgs[i].Key), e))
			}
		}
	} else {
		for i := range msgs {
			failed = append(failed, i)
		}
		errs = append(errs, fmt.Errorf("brokers %s: %w", strings.Join(k.cfg.Brokers, ","), err))
	}
	isFailed := make([]bool, len(msgs))
	for _, i := range failed {
		isFailed[i] = true
	}
	isOK := make([]bool, len(msgs))
	for i := range isOK {
		isOK[i] = !isFailed[i]
	}
	for src, n := range countBySource(msgs, isFailed) {
		k.cfg.Metrics.delivered(src, n)
	}
	for src, n := range countBySource(msgs, isOK) {
		k.cfg.Metrics.failed(src, n)
	}
	de := &DeliveryError{Failed: failed, Permanent: permanent, Err: errors.Join(errs...)}
	if ok, held := k.errLog.Allow("delivery"); ok {
		k.cfg.Logger.Error().Err(de).Int("suppressed", held).Msg("kafka delivery failed")
	}
	return de
}

// topicPoll is the pause between two metadata requests while a new topic
// is being created.
const topicPoll = 50 * time.Millisecond

// ensureTopics waits, before the first produce to each topic of msgs, until
// the topic exists with a leader for every partition, creating it through a
// metadata request with auto-creation. Later writes to the topic do not ask. Without this, kafka-go's Writer
// passes on the broker's answer to the creating request ("Unknown Topic Or
// Partition": creation in progress) as the write's error, which was logged
// and counted as a failed delivery although nothing was wrong. The wait is
// bounded by WriteTimeout and ctx; when it fails (broker down, creation
// refused or slow) the write goes ahead and reports the real error.
func (k *KafkaSink) ensureTopics(ctx context.Context, msgs []kafka.Message) {
	if !k.cfg.AllowAutoTopicCreation {
		return
	}
	var todo []string
	k.mu.Lock()
	for _, m := range msgs {
		if !k.topics[m.Topic] && !slices.Contains(todo, m.Topic) {
			todo = append(todo, m.Topic)
		}
	}
	k.mu.Unlock()
	for _, t := range todo {
		if k.waitTopic(ctx, t) {
			k.mu.Lock()
			k.topics[t] = true
			k.mu.Unlock()
		}
	}
}

// waitTopic asks for topic with auto-creation until it exists with a
// leader per partition, or WriteTimeout or ctx ends. It reports whether
// the broker answered, so that a topic is waited for at most once (the
// broker may refuse to create it: auto.create.topics.enable=false), but
// again after the broker could not be reached. It uses the writer's
// Transport, so that the writer's metadata cache holds the topic after.
func (k *KafkaSink) waitTopic(ctx context.Context, topic string) (answered bool) {
	ctx, cancel := context.WithTimeout(ctx, k.cfg.WriteTimeout)
	defer cancel()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return answered
		case <-t.C:
		}
		res, err := k.tr.RoundTrip(ctx, k.w.Addr, &metadataAPI.Request{TopicNames: []string{topic}, AllowAutoTopicCreation: true})
		if err != nil {
			return answered // the broker cannot be reached: the write says so
		}
		answered = true
		if md, ok := res.(*metadataAPI.Response); ok && topicHasLeaders(md, topic) {
			return true
		}
		t.Reset(topicPoll)
	}
}

// topicHasLeaders reports whether md shows topic without error, with at
// least one partition and a leader for each.
func topicHasLeaders(md *metadataAPI.Response, topic string) bool {
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.ErrorCode != 0 || len(t.Partitions) == 0 {
			return false
		}
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 || p.LeaderID < 0 {
				return false
			}
		}
		return true
	}
	return false
}

// countBySource counts messages per key, skipping those whose skip entry is
// true (skip may be nil).
func countBySource(msgs []kafka.Message, skip []bool) map[string]int {
	m := map[string]int{}
	for i, msg := range msgs {
		if skip != nil && skip[i] {
			continue
		}
		m[string(msg.Key)]++
	}
	return m
}

func headerID(m kafka.Message) string {
	for _, h := range m.Headers {
		if h.Key == "lookout-id" {
			return string(h.Value)
		}
	}
	return "?"
}

// Flush is a no-op: Write is synchronous.
func (k *KafkaSink) Flush(context.Context) error { return nil }

// Close waits for writes in progress and closes connections. Writes after
// Close fail with ErrClosed.
func (k *KafkaSink) Close() error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	k.mu.Unlock()
	if err := k.w.Close(); err != nil {
		return fmt.Errorf("kafka sink: close writer: %w", err)
	}
	return nil
}
