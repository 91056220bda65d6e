package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"lookout/sink"
)

// tailOptions are the flags of `lookout tail`.
type tailOptions struct {
	brokers       []string
	topic         string
	group         string
	fromBeginning bool
	count         int
	timeout       time.Duration
	json          bool
}

func newTailCmd() *cobra.Command {
	o := tailOptions{}
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print caption records from a Kafka topic",
		Long: `Reads caption records from a Kafka topic and prints one line per record
(capture time, source, pts, confidence, caption), or the raw JSON with --json.

Without --group every partition is read directly, starting at the end
(or at the beginning with --from-beginning). With --group the reader joins
that consumer group and commits its offsets; --from-beginning then applies
only when the group has no committed offset.

Exits after --count records, after --timeout, or on Ctrl-C. Exit status 1
when --timeout passes before --count records arrived, or when Kafka cannot
be reached.`,
		Example: `  lookout tail --brokers 127.0.0.1:9092 --topic lookout.captions
  lookout tail --topic lookout.captions --from-beginning --count 10 --timeout 30s --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runTail(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.brokers, "brokers", []string{"127.0.0.1:9092"}, "Kafka bootstrap brokers, host:port, comma-separated")
	f.StringVar(&o.topic, "topic", "lookout.captions", "topic to read")
	f.StringVar(&o.group, "group", "", "consumer group to join (default: none, read every partition directly)")
	f.BoolVar(&o.fromBeginning, "from-beginning", false, "start at the oldest record instead of the newest")
	f.IntVar(&o.count, "count", 0, "exit after this many records (0: no limit); with the summary format, values that are not records are reported and not counted")
	f.DurationVar(&o.timeout, "timeout", 0, "exit after this long, e.g. 30s (0: no limit)")
	f.BoolVar(&o.json, "json", false, "print each record's raw JSON instead of a summary line")
	return cmd
}

func (o tailOptions) validate() error {
	if len(o.brokers) == 0 {
		return usagef("tail: --brokers: give at least one host:port")
	}
	for _, b := range o.brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return usagef("tail: --brokers: %q is not host:port", b)
		}
	}
	if strings.TrimSpace(o.topic) == "" {
		return usagef("tail: --topic: must not be empty")
	}
	if o.count < 0 {
		return usagef("tail: --count: must be >= 0, got %d", o.count)
	}
	if o.timeout < 0 {
		return usagef("tail: --timeout: must be >= 0, got %s", o.timeout)
	}
	return nil
}

// runTail reads until the count, the timeout or ctx ends it.
func runTail(ctx context.Context, o tailOptions, out, errOut io.Writer) error {
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	readers, err := openTailReaders(ctx, o)
	if err != nil {
		return err
	}
	msgs := make(chan kafka.Message)
	errs := make(chan error, len(readers))
	var wg sync.WaitGroup
	for _, r := range readers {
		wg.Add(1)
		go func(r *kafka.Reader) {
			defer wg.Done()
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				select {
				case msgs <- m:
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
		case m := <-msgs:
			if printTailRecord(out, errOut, m, o.json) {
				n++
			}
			if o.count > 0 && n >= o.count {
				return nil
			}
		case err := <-errs:
			return fmt.Errorf("tail: reading %s from %s: %w", o.topic, strings.Join(o.brokers, ","), err)
		case <-ctx.Done():
			if o.count > 0 && n < o.count && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("tail: timed out after %s with %d of %d records from topic %s", o.timeout, n, o.count, o.topic)
			}
			return nil
		}
	}
}

// openTailReaders checks that the brokers answer and the topic exists, then
// opens one reader per partition, or one group reader.
func openTailReaders(ctx context.Context, o tailOptions) ([]*kafka.Reader, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// A metadata request that never creates the topic (a typo in --topic
	// must not make one).
	client := &kafka.Client{Addr: kafka.TCP(o.brokers...), Timeout: 10 * time.Second}
	md, err := client.Metadata(dctx, &kafka.MetadataRequest{Topics: []string{o.topic}})
	if err != nil {
		return nil, fmt.Errorf("tail: cannot reach Kafka at %s: %w (is the broker running? scripts/kafka.sh start)", strings.Join(o.brokers, ","), err)
	}
	var parts []kafka.Partition
	for _, t := range md.Topics {
		if t.Name != o.topic {
			continue
		}
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				break
			}
			return nil, fmt.Errorf("tail: topic %q: %w", o.topic, t.Error)
		}
		parts = t.Partitions
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("tail: topic %q does not exist on %s: check --topic", o.topic, strings.Join(o.brokers, ","))
	}
	if o.group != "" {
		start := kafka.LastOffset
		if o.fromBeginning {
			start = kafka.FirstOffset
		}
		return []*kafka.Reader{kafka.NewReader(kafka.ReaderConfig{
			Brokers: o.brokers, Topic: o.topic, GroupID: o.group, StartOffset: start,
			MaxWait: 250 * time.Millisecond,
		})}, nil
	}
	var readers []*kafka.Reader
	for _, p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: o.brokers, Topic: o.topic, Partition: p.ID, MaxWait: 250 * time.Millisecond,
		})
		off := kafka.LastOffset
		if o.fromBeginning {
			off = kafka.FirstOffset
		}
		if err := r.SetOffset(off); err != nil {
			for _, r := range readers {
				_ = r.Close()
			}
			_ = r.Close()
			return nil, fmt.Errorf("tail: seek partition %d of %q: %w", p.ID, o.topic, err)
		}
		readers = append(readers, r)
	}
	return readers, nil
}

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
	if r.Kind == sink.KindGap {
		text = fmt.Sprintf("[gap: source was away %.1fs]", float64(r.GapMillis)/1000)
	}
	return fmt.Sprintf("%s  %s  pts=%.3fs  conf=%.2f  %s", ts, r.SourceID, float64(r.PTSMillis)/1000, r.Confidence, text), nil
}
