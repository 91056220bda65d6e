// Package cluster makes lookout instances a fleet with Kafka as the only
// coordinator: a compacted catalogue topic holds the source definitions,
// every instance joins one Kafka group with lookout's own protocol type, and
// the group leader places the sources with a sticky, weighted, balanced
// assignment (Assign). Replay checkpoints live in a second compacted topic,
// so a replay resumes on whichever instance owns it next. docs/SCALING.md
// has the design and the measured figures.
//
// It uses twmb/franz-go (the sink keeps kafka-go): the group protocol
// needs raw JoinGroup/SyncGroup/Heartbeat/LeaveGroup requests routed to the
// group coordinator, which franz-go's Client.Request does, and its consumer
// survives broker restarts.
package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"lookout/internal/config"
)

// ClientOptions turns the Kafka sink's settings (brokers, TLS, SASL) into
// franz-go options, so the fleet talks to the brokers the records go to.
func ClientOptions(k config.Kafka) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(k.Brokers...),
		kgo.DialTimeout(5 * time.Second),
		kgo.RetryBackoffFn(func(tries int) time.Duration { return min(time.Duration(tries)*100*time.Millisecond, time.Second) }),
	}
	if k.TLS.Enabled {
		tc := &tls.Config{InsecureSkipVerify: k.TLS.InsecureSkipVerify} //nolint:gosec // the operator's choice, named in the config
		if k.TLS.CAFile != "" {
			pem, err := os.ReadFile(k.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("sinks.kafka.tls.ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("sinks.kafka.tls.ca_file %s: no PEM certificate in it", k.TLS.CAFile)
			}
		}
		if k.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(k.TLS.CertFile, k.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("sinks.kafka.tls.cert_file: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	password := k.SASL.Password
	if k.SASL.PasswordFile != "" {
		b, err := os.ReadFile(k.SASL.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("sinks.kafka.sasl.password_file: %w", err)
		}
		password = string(trimNL(b))
	}
	switch k.SASL.Mechanism {
	case "plain":
		opts = append(opts, kgo.SASL(plain.Auth{User: k.SASL.Username, Pass: password}.AsMechanism()))
	case "scram-sha-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: password}.AsSha256Mechanism()))
	case "scram-sha-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: password}.AsSha512Mechanism()))
	}
	return opts, nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
