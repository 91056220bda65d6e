package sink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
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

// Defaults of KafkaConfig.
const (
	DefaultBatchSize     = 100
	DefaultBatchTimeout  = 10 * time.Millisecond
	DefaultWriteTimeout  = 10 * time.Second
	DefaultMaxAttempts   = 3
	DefaultErrorInterval = 10 * time.Second
)

func (c *KafkaConfig) applyDefaults() {
	if c.Metrics == nil {
		c.Metrics = nopMetrics{}
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchTimeout <= 0 {
		c.BatchTimeout = DefaultBatchTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.ErrorInterval <= 0 {
		c.ErrorInterval = DefaultErrorInterval
	}
}

// Validate reports the first invalid field by name.
func (c KafkaConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka sink: brokers: list at least one host:port")
	}
	for _, b := range c.Brokers {
		if err := CheckBroker(b); err != nil {
			return fmt.Errorf("kafka sink: brokers: %w", err)
		}
	}
	if c.Topic == "" {
		return errors.New("kafka sink: topic: must be set")
	}
	if err := CheckCompression(c.Compression); err != nil {
		return fmt.Errorf("kafka sink: compression: %w", err)
	}
	if err := CheckSASLMechanism(c.SASL.Mechanism); err != nil {
		return fmt.Errorf("kafka sink: sasl.mechanism: %w", err)
	}
	if _, err := c.SASL.mechanism(); err != nil {
		return err
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("kafka sink: tls: cert_file and key_file must be set together")
	}
	return nil
}

// CheckBroker reports why addr is not a bootstrap address: host:port with
// a host and a port in 1-65535. The service's config checks with it too.
func CheckBroker(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q has no valid port", addr)
	}
	return nil
}

// CheckCompression reports a compression name the sink does not know
// (case-insensitive; "" is none).
func CheckCompression(name string) error {
	_, err := compressionCodec(name)
	return err
}

// CheckSASLMechanism reports a SASL mechanism the sink does not know
// (case-insensitive; "" is none).
func CheckSASLMechanism(m string) error {
	switch strings.ToLower(m) {
	case "", "plain", "scram-sha-256", "scram-sha-512":
		return nil
	}
	return fmt.Errorf("%q is not one of plain, scram-sha-256, scram-sha-512", m)
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
	return 0, fmt.Errorf("%q is not one of none, gzip, snappy, lz4, zstd", name)
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
	return nil, fmt.Errorf("kafka sink: sasl.mechanism: %w", CheckSASLMechanism(c.Mechanism))
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
