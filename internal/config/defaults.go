package config

import (
	"time"

	"lookout/pipeline"
	"lookout/sink"
	"lookout/spool"
)

// Defaults have one home each. A value a package applies when its own
// config leaves it zero is that package's Default* constant, and Default
// reads it from there (pipeline.DefaultMaxBatch, sink.DefaultBatchSize,
// spool.DefaultMaxBytes, ingest.DefaultGateMaxInterval,
// pipeline.DefaultHeartbeat). The values that are choices of the service
// rather than of a package (paths, the HTTP address, the topic, lz4, the
// sampling interval, the model options) are stated here.
const (
	// DefaultEvery is a source's sampling interval when it sets neither
	// every nor fps.
	DefaultEvery = time.Second
	// DefaultDataDir is data_dir, relative to the working directory.
	DefaultDataDir = "lookout-data"
	// DefaultHTTPListen is http.listen.
	DefaultHTTPListen = "127.0.0.1:9464"
	// DefaultModelDir is model.dir, relative to the working directory.
	DefaultModelDir = "models/demo"
	// DefaultBroker and DefaultTopic are sinks.kafka.brokers and topic.
	DefaultBroker = "127.0.0.1:9092"
	DefaultTopic  = "lookout.captions"
	// DefaultAlertsTopic is sinks.kafka.alerts_topic.
	DefaultAlertsTopic = "lookout.alerts"
	// DefaultCompression is sinks.kafka.compression (the Kafka sink itself
	// defaults to none; the service compresses).
	DefaultCompression = "lz4"
)

// Default returns the configuration used when a field is not set.
func Default() Config {
	return Config{
		DataDir: DefaultDataDir,
		Log:     Log{Level: "info", Format: "auto"},
		HTTP:    HTTP{Listen: DefaultHTTPListen},
		Model:   Model{Dir: DefaultModelDir, Provider: "cpu", Decoder: "auto", Resize: "exact", GraphOptimization: "all"},
		Pipeline: Pipeline{MaxBatch: pipeline.DefaultMaxBatch, MaxWait: pipeline.DefaultMaxWait, Workers: 0,
			QueueSize: pipeline.DefaultQueueSize},
		Sinks: Sinks{Kafka: Kafka{
			Brokers: []string{DefaultBroker}, Topic: DefaultTopic, AlertsTopic: DefaultAlertsTopic, Compression: DefaultCompression,
			BatchSize: sink.DefaultBatchSize, BatchTimeout: sink.DefaultBatchTimeout, SpoolMaxBytes: spool.DefaultMaxBytes,
		}},
		Cluster: defaultCluster(),
	}
}
