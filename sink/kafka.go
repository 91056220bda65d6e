package sink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"

	"lookout/internal/logthrottle"
)

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

// AttemptTimeout bounds how long kafka-go itself may spend on one
// WriteMessages call (every attempt and backoff: MaxAttempts x
// (WriteTimeout + backoff) + BatchTimeout + 5s). A caller's deadline
// shorter than this can return while kafka-go still holds the batch and
// writes it later, out of order; the spool never uses a shorter one.
func (k *KafkaSink) AttemptTimeout() time.Duration {
	return time.Duration(k.cfg.MaxAttempts)*(k.cfg.WriteTimeout+k.w.WriteBackoffMax) + k.cfg.BatchTimeout + 5*time.Second
}

// MaxBatch is BatchSize: the most messages per Produce that go to each
// partition in one produce request.
func (k *KafkaSink) MaxBatch() int { return k.cfg.BatchSize }

// TopicFor returns the topic a source's records go to.
func (k *KafkaSink) TopicFor(sourceID string) string {
	if t, ok := k.cfg.TopicBySource[sourceID]; ok && t != "" {
		return t
	}
	return k.cfg.Topic
}

// Message builds the Kafka message of a record.
func (k *KafkaSink) Message(r Record) (kafka.Message, error) {
	v, err := Encode(r)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("kafka sink: %w", err)
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

// Message is a record already encoded as JSON, with what the Kafka message
// needs besides: the key (the source id) and the id header.
type Message struct {
	SourceID, ID string
	Value        []byte
}

// Produce sends msgs and waits for the broker's acknowledgement; on failure
// the error is a *DeliveryError naming each message not acknowledged.
func (k *KafkaSink) Produce(ctx context.Context, msgs []Message) error {
	kms := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		kms[i] = k.rawMessage(m.SourceID, m.ID, m.Value)
	}
	return k.writeMessages(ctx, kms)
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
			k.cfg.Metrics.Delivered(src, n)
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
		k.cfg.Metrics.Delivered(src, n)
	}
	for src, n := range countBySource(msgs, isOK) {
		k.cfg.Metrics.Failed(src, n)
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
