package service

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"lookout/sink"
	"lookout/spool"
)

// openKafka opens the captions' Kafka sink: sinks.kafka.topic (sources may
// override it) behind the spool in data_dir/spool. It takes every record
// but alerts, which go to their own topic (openAlertsKafka).
func (s *Service) openKafka(ctx context.Context) error {
	sp, err := s.newKafkaSpool(ctx, s.cfg.Sinks.Kafka.Topic, s.topicOverrides(), "spool", "kafka")
	if err != nil {
		return err
	}
	s.spool = sp
	s.sinks = append(s.sinks, &kindSink{s: sp, name: "kafka", keep: notAlert})
	return registerSpoolGauges(s.reg, sp.State)
}

// newKafkaSpool opens a Kafka sink for topic (sources in bySource go to
// their own topics) behind a spool in data_dir/spoolDir, with the brokers
// and security of sinks.kafka; its metrics are labelled sink=metricsName.
func (s *Service) newKafkaSpool(_ context.Context, topic string, bySource map[string]string, spoolDir, metricsName string) (*spool.Sink, error) {
	k := s.cfg.Sinks.Kafka
	password := k.SASL.Password
	if k.SASL.PasswordFile != "" {
		b, err := os.ReadFile(k.SASL.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("sinks.kafka.sasl.password_file: %w", err)
		}
		password = strings.TrimSpace(string(b))
	}
	kmetrics, err := newDeliveryMetrics(s.reg, metricsName)
	if err != nil {
		return nil, err
	}
	log := s.log.With().Str("component", metricsName).Logger()
	ks, err := sink.NewKafkaSink(sink.KafkaConfig{
		Brokers:       k.Brokers,
		Topic:         topic,
		TopicBySource: bySource,
		Compression:   k.Compression,
		BatchSize:     k.BatchSize,
		BatchTimeout:  k.BatchTimeout,
		// A new topic is created on first use (when the broker allows it,
		// Kafka's default), with the broker's partition defaults.
		AllowAutoTopicCreation: true,
		TLS: sink.TLSConfig{Enabled: k.TLS.Enabled, CAFile: k.TLS.CAFile, CertFile: k.TLS.CertFile,
			KeyFile: k.TLS.KeyFile, InsecureSkipVerify: k.TLS.InsecureSkipVerify},
		SASL:    sink.SASLConfig{Mechanism: k.SASL.Mechanism, Username: k.SASL.Username, Password: password},
		Metrics: kmetrics,
		Logger:  log,
	})
	if err != nil {
		return nil, err
	}
	sp, err := spool.NewSink(ks, spool.SinkConfig{
		Spool: spool.Config{Dir: filepath.Join(s.cfg.DataDir, spoolDir), MaxBytes: k.SpoolMaxBytes},
		Policy: func(id string) spool.FullPolicy {
			if live, _ := s.live.Load(id); live == true {
				return spool.DropOldest
			}
			return spool.Block
		},
		Metrics: kmetrics,
		Logger:  s.log, // no component: the sink adds kafka or spool
	})
	if err != nil {
		_ = ks.Close()
		return nil, err
	}
	return sp, nil
}
