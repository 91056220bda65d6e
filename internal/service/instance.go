package service

import (
	"context"

	"lookout/pipeline"
	"lookout/sink"
)

// instanceSink stamps every record with the instance that produced it
// (cluster mode), so the fleet's records say who captioned them. It keeps
// the wrapped sink's name and health visible to the pipeline.
type instanceSink struct {
	sink.Sink
	instance string
}

var _ sink.Sink = instanceSink{}

func (s instanceSink) Write(ctx context.Context, recs []sink.Record) error {
	out := make([]sink.Record, len(recs))
	for i, r := range recs {
		r.Instance = s.instance
		out[i] = r
	}
	return s.Sink.Write(ctx, out)
}

// Name keeps the wrapped sink's metric label.
func (s instanceSink) Name() string {
	if n, ok := s.Sink.(pipeline.Namer); ok {
		return n.Name()
	}
	return ""
}

// Ready passes on the wrapped sink's health.
func (s instanceSink) Ready() error {
	if r, ok := s.Sink.(pipeline.Readier); ok {
		return r.Ready()
	}
	return nil
}

// withInstance wraps sinks when instance is set.
func withInstance(sinks []sink.Sink, instance string) []sink.Sink {
	if instance == "" {
		return sinks
	}
	out := make([]sink.Sink, len(sinks))
	for i, s := range sinks {
		out[i] = instanceSink{Sink: s, instance: instance}
	}
	return out
}
