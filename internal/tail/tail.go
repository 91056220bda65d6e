// Package tail reads lookout records from a Kafka topic and prints them: the
// engine of `lookout tail`.
package tail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"lookout/sink"
)

// Options say what to read and how long.
type Options struct {
	Brokers []string
	Topic   string
	// Group, when set, joins that consumer group and commits each record after printing it.
	Group         string
	FromBeginning bool
	// Count ends Run after this many records (0: no limit).
	Count int
	// Timeout ends Run after this long (0: no limit).
	Timeout time.Duration
	// JSON prints each record's raw value instead of a summary line.
	JSON bool
	// Kinds, when not empty, are the record kinds to print; KindChange
	// selects the caption records that carry prev_caption.
	Kinds []string
}

// Run reads until the count, the timeout or ctx ends it.
func Run(ctx context.Context, o Options, out, errOut io.Writer) error {
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	readers, err := openTailReaders(ctx, o, errOut)
	if err != nil || readers == nil {
		return err
	}
	// FetchMessage, not ReadMessage: ReadMessage commits a group's offset
	// as soon as a message is fetched, so the one fetched while the main
	// loop printed the last of --count records was committed unprinted
	// and the next run skipped it. Here the main loop commits what it has
	// shown, and nothing else.
	msgs := make(chan tailMessage)
	errs := make(chan error, len(readers))
	var wg sync.WaitGroup
	for _, r := range readers {
		wg.Add(1)
		go func(r *kafka.Reader) {
			defer wg.Done()
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				select {
				case msgs <- tailMessage{r: r, m: m}:
				case <-ctx.Done():
					return
				}
			}
		}(r)
	}
	defer wg.Wait()
	defer cancel()

	n := 0
	for {
		select {
		case tm := <-msgs:
			if o.wantKind(tm.m.Value) && printTailRecord(out, errOut, tm.m, o.JSON) {
				n++
			}
			if o.Group != "" {
				if err := commitTail(tm); err != nil {
					return fmt.Errorf("tail: commit offset %d of partition %d of %s for group %s: %w", tm.m.Offset, tm.m.Partition, o.Topic, o.Group, err)
				}
			}
			if o.Count > 0 && n >= o.Count {
				return nil
			}
		case err := <-errs:
			return fmt.Errorf("tail: reading %s from %s: %w", o.Topic, strings.Join(o.Brokers, ","), err)
		case <-ctx.Done():
			if o.Count > 0 && n < o.Count && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("tail: timed out after %s with %d of %d records from topic %s", o.Timeout, n, o.Count, o.Topic)
			}
			return nil
		}
	}
}

// tailMessage is a fetched message and the reader that commits it.
type tailMessage struct {
	r *kafka.Reader
	m kafka.Message
}

// tailCommitTimeout bounds the commit of one shown record. The commit
// does not use the run's context: a record printed just before Ctrl-C or
// --timeout is still committed, so that the next run does not print it
// again.
const tailCommitTimeout = 10 * time.Second

// commitTail commits the group's offset past tm, synchronously (the
// reader's CommitInterval is 0), so it is stored before tail exits.
func commitTail(tm tailMessage) error {
	ctx, cancel := context.WithTimeout(context.Background(), tailCommitTimeout)
	defer cancel()
	return tm.r.CommitMessages(ctx, tm.m)
}

// tailTopicPoll is how often tail asks whether a missing topic exists yet.
const tailTopicPoll = 250 * time.Millisecond

// openTailReaders waits for the topic (see waitForTopic), then opens one
// reader per partition, or one group reader. It returns no readers and no
// error when ctx was cancelled while waiting (Ctrl-C).
func openTailReaders(ctx context.Context, o Options, errOut io.Writer) ([]*kafka.Reader, error) {
	parts, appeared, err := waitForTopic(ctx, o, errOut)
	if err != nil || parts == nil {
		return nil, err
	}
	// Every record of a topic that appeared while tail waited was written
	// after tail started: read it from the first one, or the records
	// written before the readers were open would be missed.
	fromBeginning := o.FromBeginning || appeared
	if o.Group != "" {
		start := kafka.LastOffset
		if fromBeginning {
			start = kafka.FirstOffset
		}
		return []*kafka.Reader{kafka.NewReader(kafka.ReaderConfig{
			Brokers: o.Brokers, Topic: o.Topic, GroupID: o.Group, StartOffset: start,
			MaxWait: 250 * time.Millisecond,
			// 0: CommitMessages commits synchronously, and Close has no
			// pending commit to flush. Stated, not left to the default,
			// because the exactly-once-per-run reading depends on it.
			CommitInterval: 0,
		})}, nil
	}
	var readers []*kafka.Reader
	for _, p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: o.Brokers, Topic: o.Topic, Partition: p.ID, MaxWait: 250 * time.Millisecond,
		})
		off := kafka.LastOffset
		if fromBeginning {
			off = kafka.FirstOffset
		}
		if err := r.SetOffset(off); err != nil {
			for _, r := range readers {
				_ = r.Close()
			}
			_ = r.Close()
			return nil, fmt.Errorf("tail: seek partition %d of %q: %w", p.ID, o.Topic, err)
		}
		readers = append(readers, r)
	}
	return readers, nil
}

// waitForTopic returns the topic's partitions once it exists (and, if it
// was missing at first, every partition has a leader); appeared is true
// when it did not exist at first.
// It never creates the topic (a typo in --topic must not make one): it
// polls metadata, after one note on errOut. It returns no partitions and
// no error when ctx is cancelled (Ctrl-C), and an error when ctx's
// deadline (--timeout) passes first.
func waitForTopic(ctx context.Context, o Options, errOut io.Writer) (parts []kafka.Partition, appeared bool, err error) {
	brokers := strings.Join(o.Brokers, ",")
	// Metadata served by a Transport comes from a cache refreshed every
	// MetadataTTL (6s by default): keep it as short as the poll.
	tr := &kafka.Transport{DialTimeout: 10 * time.Second, MetadataTTL: tailTopicPoll}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(o.Brokers...), Timeout: 10 * time.Second, Transport: tr}
	waited := time.Now()
	waiting := false // the topic was missing at least once
	for {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		md, err := client.Metadata(mctx, &kafka.MetadataRequest{Topics: []string{o.Topic}})
		cancel()
		switch {
		case err != nil && errors.Is(ctx.Err(), context.Canceled):
			return nil, false, nil
		case err != nil && waiting && ctx.Err() != nil:
			// The deadline passed during a poll: that is the timeout
			// below, not an unreachable broker.
		case err != nil:
			return nil, false, fmt.Errorf("tail: cannot reach Kafka at %s: %w (is the broker running? scripts/kafka.sh start)", brokers, err)
		default:
			parts, err := readyPartitions(md, o.Topic, waiting)
			if err != nil {
				return nil, false, err
			}
			if len(parts) > 0 {
				return parts, waiting, nil
			}
		}
		if !waiting {
			waiting = true
			fmt.Fprintf(errOut, "tail: topic %q does not exist yet on %s; waiting (Ctrl-C to stop)\n", o.Topic, brokers)
		}
		t := time.NewTimer(tailTopicPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, false, fmt.Errorf("tail: topic %q still does not exist on %s after %s: check --topic", o.Topic, brokers, time.Since(waited).Round(time.Millisecond))
			}
			return nil, false, nil
		case <-t.C:
		}
	}
}

// readyPartitions returns the topic's partitions from md, or none while
// the topic does not exist. With needLeaders (a topic that just appeared),
// also none while a partition has no leader yet: its creation is still
// under way. A topic found at once is read as it is, even with a partition
// offline.
func readyPartitions(md *kafka.MetadataResponse, topic string, needLeaders bool) ([]kafka.Partition, error) {
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) || errors.Is(t.Error, kafka.LeaderNotAvailable) {
				return nil, nil
			}
			return nil, fmt.Errorf("tail: topic %q: %w", topic, t.Error)
		}
		for _, p := range t.Partitions {
			if needLeaders && (p.Error != nil || p.Leader.Host == "") {
				return nil, nil
			}
		}
		return t.Partitions, nil
	}
	return nil, nil
}

// wantKind reports whether a message passes --kind. A value that is not a
// record passes, so that printTailRecord reports it.
func (o Options) wantKind(value []byte) bool {
	if len(o.Kinds) == 0 {
		return true
	}
	var r struct {
		Kind        string `json:"kind"`
		PrevCaption string `json:"prev_caption"`
	}
	if json.Unmarshal(value, &r) != nil || r.Kind == "" {
		return true
	}
	// A change is a caption record that replaces another (emit: changes);
	// it is not a kind of its own, so that consumers of captions see it.
	if r.Kind == sink.KindCaption && r.PrevCaption != "" && slices.Contains(o.Kinds, KindChange) {
		return true
	}
	return slices.Contains(o.Kinds, r.Kind)
}

// KindChange selects, in Options.Kinds, the caption records that carry
// prev_caption: the changes of sources with emit: changes.
const KindChange = "change"

// printTailRecord prints one message: its raw value with asJSON, else a
// summary line. A value that is not a record is reported on errOut and
// not counted (false).
func printTailRecord(out, errOut io.Writer, m kafka.Message, asJSON bool) bool {
	if asJSON {
		fmt.Fprintf(out, "%s\n", strings.TrimRight(string(m.Value), "\n"))
		return true
	}
	line, err := formatTailLine(m.Value)
	if err != nil {
		fmt.Fprintf(errOut, "partition %d offset %d: not a lookout record (%d bytes, key %q): %v\n", m.Partition, m.Offset, len(m.Value), m.Key, err)
		return false
	}
	fmt.Fprintln(out, line)
	return true
}

// formatTailLine renders a record as
// "15:04:05.000  cam-1  pts=12.000s  conf=0.82  a car on a road".
func formatTailLine(value []byte) (string, error) {
	var r sink.Record
	if err := json.Unmarshal(value, &r); err != nil {
		return "", err
	}
	if r.SourceID == "" {
		return "", errors.New("no source_id")
	}
	ts := "--:--:--.---"
	if !r.CaptureTime.IsZero() {
		ts = r.CaptureTime.Local().Format("15:04:05.000")
	}
	text := r.Caption
	switch {
	case r.Kind == sink.KindGap:
		text = fmt.Sprintf("[gap: source was away %.1fs]", float64(r.GapMillis)/1000)
	case r.Kind == sink.KindHeartbeat:
		text = fmt.Sprintf("[unchanged for %.1fs] %s", float64(r.HeldMillis)/1000, r.Caption)
	case r.Kind == sink.KindAlert:
		text = fmt.Sprintf("[alert %s, held %.1fs] %s", r.Rule, float64(r.HeldMillis)/1000, r.Caption)
	case r.PrevCaption != "":
		text = fmt.Sprintf("%s  [was for %.1fs: %s]", r.Caption, float64(r.HeldMillis)/1000, r.PrevCaption)
	}
	return fmt.Sprintf("%s  %s  pts=%.3fs  conf=%.2f  %s", ts, r.SourceID, float64(r.PTSMillis)/1000, r.Confidence, text), nil
}
