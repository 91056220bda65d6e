package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"lookout/internal/config"
	"lookout/internal/rules"
	"lookout/pipeline"
	"lookout/sink"
)

// kindSink passes to its sink only the records whose kind keep accepts: the
// captions' Kafka sink gets every kind but alerts, the alerts' Kafka sink
// only alerts, so each topic has its own spool and backpressure.
type kindSink struct {
	s    sink.Sink
	name string
	keep func(kind string) bool
}

var (
	_ pipeline.Namer      = (*kindSink)(nil)
	_ pipeline.Readier    = (*kindSink)(nil)
	_ pipeline.KindFilter = (*kindSink)(nil)
)

func (k *kindSink) Name() string { return k.name }

// Accepts tells the pipeline which records to write here, so the sink's
// metrics count only those.
func (k *kindSink) Accepts(kind string) bool { return k.keep(kind) }

// Write drops the records it does not accept (the pipeline has already).
func (k *kindSink) Write(ctx context.Context, recs []sink.Record) error {
	own := make([]sink.Record, 0, len(recs))
	for _, r := range recs {
		if k.keep(r.Kind) {
			own = append(own, r)
		}
	}
	if len(own) == 0 {
		return nil
	}
	return k.s.Write(ctx, own)
}

func (k *kindSink) Flush(ctx context.Context) error { return k.s.Flush(ctx) }
func (k *kindSink) Close() error                    { return k.s.Close() }

// Ready is the wrapped sink's health, when it knows it.
func (k *kindSink) Ready() error {
	if r, ok := k.s.(pipeline.Readier); ok {
		return r.Ready()
	}
	return nil
}

func isAlert(kind string) bool  { return kind == sink.KindAlert }
func notAlert(kind string) bool { return kind != sink.KindAlert }

// openAlertsKafka opens the alerts' Kafka sink: sinks.kafka's brokers and
// security, topic sinks.kafka.alerts_topic, a spool of its own under
// data_dir/spool-alerts. It exists whenever Kafka is enabled, so that a
// reload may add rules.
func (s *Service) openAlertsKafka(ctx context.Context) error {
	sp, err := s.newKafkaSpool(ctx, s.cfg.Sinks.Kafka.AlertsTopic, nil, "spool-alerts", "kafka-alerts")
	if err != nil {
		return err
	}
	s.alertSpool = sp
	s.sinks = append(s.sinks, &kindSink{s: sp, name: "kafka-alerts", keep: isAlert})
	return nil
}

// attributeSchema is the loaded model's attribute heads, for checking the
// rules' slots and values.
func (s *Service) attributeSchema() rules.Schema {
	schema := rules.Schema{}
	for _, a := range s.model.Info().Attributes {
		schema[a.Name] = a.Classes
	}
	return schema
}

// newRules checks cfg's rules against the model and compiles them.
func (s *Service) newRules(cfg config.Config) (*rules.Engine, error) {
	if err := rules.Check(cfg, s.attributeSchema()); err != nil {
		return nil, ConfigError{err}
	}
	e, err := rules.New(cfg.Rules)
	if err != nil {
		return nil, ConfigError{err}
	}
	return e, nil
}

// derive runs the rules on each record the pipeline delivers (every caption
// record, also those emit: changes suppresses) and logs each alert.
func (s *Service) derive(rec sink.Record) []sink.Record {
	alerts := s.rules.Observe(rec)
	for _, a := range alerts {
		s.log.Info().Str("component", "rules").Str("source", a.SourceID).Str("rule", a.Rule).
			Int64("pts_ms", a.PTSMillis).Str("id", a.ID).Msg("alert")
	}
	return alerts
}

// ReplaceRules applies a reloaded config's rules; on error the running
// rules stay.
func (s *Service) ReplaceRules(cfg config.Config) error {
	if err := rules.Check(cfg, s.attributeSchema()); err != nil {
		return err
	}
	return s.rules.Replace(cfg.Rules)
}

// alertsReady adds the alerts spool's state to Ready's detail and fails
// while its broker does not acknowledge.
func (s *Service) alertsReady(detail string) (string, error) {
	if s.alertSpool == nil {
		return detail, nil
	}
	st := s.alertSpool.State()
	detail += fmt.Sprintf("kafka-alerts broker_up=%t spool_records=%d oldest_unsent=%s\n",
		st.BrokerUp, st.SpoolRecords, st.OldestUnsentAge.Round(time.Millisecond))
	if !st.BrokerUp {
		return detail, errors.New("kafka broker not acknowledging alerts: " + st.LastError)
	}
	return detail, nil
}
