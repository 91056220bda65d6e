package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

func TestKafkaConfigValidateNamesTheField(t *testing.T) {
	ok := KafkaConfig{Brokers: []string{"127.0.0.1:9092"}, Topic: "t"}
	cases := []struct {
		name  string
		mut   func(*KafkaConfig)
		field string
	}{
		{"no brokers", func(c *KafkaConfig) { c.Brokers = nil }, "brokers"},
		{"no port", func(c *KafkaConfig) { c.Brokers = []string{"localhost"} }, "brokers"},
		{"bad port", func(c *KafkaConfig) { c.Brokers = []string{"localhost:99999"} }, "brokers"},
		{"no topic", func(c *KafkaConfig) { c.Topic = "" }, "topic"},
		{"bad compression", func(c *KafkaConfig) { c.Compression = "brotli" }, "compression"},
		{"bad sasl", func(c *KafkaConfig) { c.SASL.Mechanism = "gssapi" }, "sasl.mechanism"},
		{"cert without key", func(c *KafkaConfig) { c.TLS.CertFile = "c.pem" }, "tls"},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for _, c := range cases {
		cfg := ok
		c.mut(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: got %v, want an error naming %s", c.name, err, c.field)
		}
		if _, err := NewKafkaSink(cfg); err == nil {
			t.Errorf("%s: NewKafkaSink accepted it", c.name)
		}
	}
	for _, codec := range []string{"", "none", "gzip", "snappy", "lz4", "ZSTD"} {
		cfg := ok
		cfg.Compression = codec
		if err := cfg.Validate(); err != nil {
			t.Errorf("compression %q rejected: %v", codec, err)
		}
	}
}

func TestKafkaConfigNeverPrintsThePassword(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	cfg := KafkaConfig{Brokers: []string{"127.0.0.1:1"}, Topic: "t",
		SASL: SASLConfig{Mechanism: "scram-sha-512", Username: "lookout", Password: secret}}
	var logBuf strings.Builder
	log := zerolog.New(&logBuf)
	log.Info().Object("kafka", cfg).Msg("config")
	outs := []string{fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg), fmt.Sprintf("%+v %#v", cfg.SASL, cfg.SASL), logBuf.String()}
	// Errors from a failed delivery carry no secret either.
	cfg.Logger = log
	k, err := NewKafkaSink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	werr := k.Write(ctx, testRecords("cam1", 0, 1))
	if werr == nil {
		t.Fatal("write to a closed port succeeded")
	}
	outs = append(outs, werr.Error(), logBuf.String())
	_ = k.Close()
	for _, o := range outs {
		if strings.Contains(o, secret) {
			t.Fatalf("password printed: %s", o)
		}
	}
	if !strings.Contains(outs[0], "lookout") || !strings.Contains(outs[0], "redacted") {
		t.Fatalf("String lost the user or the redaction mark: %s", outs[0])
	}
}

func TestKafkaSinkBrokerDownFailsEveryRecordAndCounts(t *testing.T) {
	var mu sync.Mutex
	failed := map[string]int{}
	var logBuf strings.Builder
	k, err := NewKafkaSink(KafkaConfig{Brokers: []string{"127.0.0.1:1"}, Topic: "t", ErrorInterval: time.Hour,
		Logger:  zerolog.New(&logBuf),
		Metrics: metricsFuncs{failed: func(src string, n int) { mu.Lock(); failed[src] += n; mu.Unlock() }}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	recs := append(testRecords("a", 0, 2), testRecords("b", 0, 1)...)
	for i := 0; i < 3; i++ {
		err = k.Write(context.Background(), recs)
		if got := FailedIndexes(err, len(recs)); err == nil || len(got) != 3 {
			t.Fatalf("write %d: err %v, failed %v", i, err, got)
		}
	}
	if failed["a"] != 6 || failed["b"] != 3 {
		t.Fatalf("failed counts %v, want a=6 b=3", failed)
	}
	if n := strings.Count(logBuf.String(), "kafka delivery failed"); n != 1 {
		t.Fatalf("%d error lines within one interval, want 1:\n%s", n, logBuf.String())
	}
	_ = k.Close()
	if err := k.Write(context.Background(), recs); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestKafkaSinkDeliversKeyedOrderedAcked(t *testing.T) {
	addr := needBroker(t)
	topic := createTopic(t, addr, "sink-order", 3)
	special := createTopic(t, addr, "sink-special", 1)
	delivered := map[string]int{}
	var mu sync.Mutex
	k, err := NewKafkaSink(KafkaConfig{Brokers: []string{addr}, Topic: topic, Compression: "lz4",
		TopicBySource: map[string]string{"cam-special": special},
		Metrics:       metricsFuncs{delivered: func(src string, n int) { mu.Lock(); delivered[src] += n; mu.Unlock() }}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if k.w.RequiredAcks != kafka.RequireAll {
		t.Fatalf("RequiredAcks is %v, want RequireAll", k.w.RequiredAcks)
	}
	sources := []string{"cam-a", "cam-b", "cam-c", "cam-d"}
	const rounds = 25
	ctx := context.Background()
	for i := 0; i < rounds; i += 5 {
		var batch []Record
		for j := 0; j < 5; j++ {
			for _, s := range sources {
				batch = append(batch, testRecord(s, i+j))
			}
		}
		if err := k.Write(ctx, batch); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if err := k.Write(ctx, testRecords("cam-special", 0, 3)); err != nil {
		t.Fatal(err)
	}
	// Write returned after the broker's ack: everything is readable now.
	want := rounds * len(sources)
	msgs := readAll(t, addr, topic, want, 15*time.Second)
	if len(msgs) != want {
		t.Fatalf("read back %d of %d records", len(msgs), want)
	}
	next := map[string]int{}
	partOf := map[string]int{}
	for _, m := range msgs {
		var r Record
		if err := json.Unmarshal(m.Value, &r); err != nil {
			t.Fatalf("value is not a record: %v", err)
		}
		if string(m.Key) != r.SourceID {
			t.Fatalf("key %q, source %q", m.Key, r.SourceID)
		}
		if headerID(m) != r.ID {
			t.Fatalf("header id %q, record id %q", headerID(m), r.ID)
		}
		if p, seen := partOf[r.SourceID]; seen && p != m.Partition {
			t.Fatalf("source %s in partitions %d and %d", r.SourceID, p, m.Partition)
		}
		partOf[r.SourceID] = m.Partition
		if r.PTSMillis != int64(next[r.SourceID])*1000 {
			t.Fatalf("source %s: pts %d out of order, want %d", r.SourceID, r.PTSMillis, next[r.SourceID]*1000)
		}
		next[r.SourceID]++
	}
	sp := readAll(t, addr, special, 3, 10*time.Second)
	if len(sp) != 3 || string(sp[0].Key) != "cam-special" {
		t.Fatalf("override topic got %d records", len(sp))
	}
	mu.Lock()
	defer mu.Unlock()
	if delivered["cam-a"] != rounds || delivered["cam-special"] != 3 {
		t.Fatalf("delivered counts %v", delivered)
	}
}

func TestKafkaSinkEveryCompression(t *testing.T) {
	addr := needBroker(t)
	topic := createTopic(t, addr, "sink-codecs", 1)
	codecs := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	for i, c := range codecs {
		k, err := NewKafkaSink(KafkaConfig{Brokers: []string{addr}, Topic: topic, Compression: c})
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Write(context.Background(), testRecords("cam-"+c, i, 2)); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		_ = k.Close()
	}
	msgs := readAll(t, addr, topic, 2*len(codecs), 10*time.Second)
	if len(msgs) != 2*len(codecs) {
		t.Fatalf("read %d of %d", len(msgs), 2*len(codecs))
	}
	for i, m := range msgs {
		if want := "cam-" + codecs[i/2]; string(m.Key) != want {
			t.Fatalf("message %d key %q, want %q", i, m.Key, want)
		}
	}
}
