package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"lookout/internal/logthrottle"
)

// Entry is one record of a compacted topic as a Table sees it.
type Entry struct {
	Key    string
	Value  []byte // nil: a tombstone
	Offset int64
}

// Table mirrors a compacted topic into memory: it reads the topic from the
// start to its end (Synced), then follows it. Every record is handed to
// OnEntry in offset order, from the one goroutine that reads. Put and
// Delete write to the topic; the change comes back through OnEntry like
// anyone else's.
type Table struct {
	topic  string
	cl     *kgo.Client
	log    zerolog.Logger
	synced chan struct{}
	onOnce sync.Once
	cancel context.CancelFunc
	done   chan struct{}
}

// TableConfig configures OpenTable.
type TableConfig struct {
	// Topic is created compacted (1 partition, the broker's replication
	// factor) when missing.
	Topic string
	// OnEntry sees every record in order; it must not block for long.
	OnEntry func(Entry)
	Logger  zerolog.Logger
}

// OpenTable ensures the topic exists and starts reading it. Close stops.
func OpenTable(ctx context.Context, opts []kgo.Opt, cfg TableConfig) (*Table, error) {
	if err := EnsureCompacted(ctx, opts, cfg.Topic); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...),
		kgo.ConsumeTopics(cfg.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %s: %w", cfg.Topic, err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	t := &Table{topic: cfg.Topic, cl: cl, log: cfg.Logger, synced: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	ends, err := endOffsets(ctx, cl, cfg.Topic)
	if err != nil {
		cancel()
		cl.Close()
		return nil, err
	}
	go t.read(rctx, ends, cfg.OnEntry)
	return t, nil
}

// EnsureCompacted creates topic with cleanup.policy=compact when missing.
func EnsureCompacted(ctx context.Context, opts []kgo.Opt, topic string) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	compact := "compact"
	resp, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &compact}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("creating compacted topic %s: %w", topic, err)
	}
	return nil
}

func endOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("reading the end of %s: %w", topic, err)
	}
	ends := map[int32]int64{}
	var errs []error
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			errs = append(errs, o.Err)
		}
		if o.Offset > 0 {
			ends[o.Partition] = o.Offset
		}
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("reading the end of %s: %w", topic, errors.Join(errs...))
	}
	return ends, nil
}

func (t *Table) read(ctx context.Context, ends map[int32]int64, on func(Entry)) {
	defer close(t.done)
	if len(ends) == 0 {
		t.markSynced()
	}
	// At most one line per 30 s while the broker is away.
	warn := logthrottle.New(30 * time.Second)
	for ctx.Err() == nil {
		fs := t.cl.PollFetches(ctx)
		fs.EachError(func(_ string, _ int32, err error) {
			if ok, held := warn.Allow(t.topic); ok && ctx.Err() == nil {
				t.log.Warn().Err(err).Str("topic", t.topic).Int("held_back", held).Msg("reading compacted topic; retrying")
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			on(Entry{Key: string(r.Key), Value: r.Value, Offset: r.Offset})
			if end, ok := ends[r.Partition]; ok && r.Offset+1 >= end {
				delete(ends, r.Partition)
				if len(ends) == 0 {
					t.markSynced()
				}
			}
		})
	}
}

func (t *Table) markSynced() { t.onOnce.Do(func() { close(t.synced) }) }

// Synced is closed once the topic has been read up to where it ended at open.
func (t *Table) Synced() <-chan struct{} { return t.synced }

// WaitSynced waits for Synced or ctx.
func (t *Table) WaitSynced(ctx context.Context) error {
	select {
	case <-t.synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("reading %s to its end: %w", t.topic, ctx.Err())
	}
}

// Put writes key=value and waits for the broker's acknowledgement.
func (t *Table) Put(ctx context.Context, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	return t.cl.ProduceSync(ctx, &kgo.Record{Topic: t.topic, Key: []byte(key), Value: value}).FirstErr()
}

// PutAsync writes key=value without waiting; done (may be nil) gets the result.
func (t *Table) PutAsync(key string, value []byte, done func(error)) {
	t.cl.Produce(context.Background(), &kgo.Record{Topic: t.topic, Key: []byte(key), Value: value},
		func(_ *kgo.Record, err error) {
			if done != nil {
				done(err)
			}
		})
}

// Delete writes a tombstone for key.
func (t *Table) Delete(ctx context.Context, key string) error {
	return t.cl.ProduceSync(ctx, &kgo.Record{Topic: t.topic, Key: []byte(key), Value: nil}).FirstErr()
}

// Flush waits for asynchronous puts.
func (t *Table) Flush(ctx context.Context) error { return t.cl.Flush(ctx) }

// Close stops reading; unsent puts get a short chance to go out.
func (t *Table) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = t.cl.Flush(ctx)
	cancel()
	t.cancel()
	<-t.done
	t.cl.Close()
}
