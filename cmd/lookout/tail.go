package main

import (
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"lookout/internal/config"
	"lookout/internal/tail"
	"lookout/sink"
)

func newTailCmd() *cobra.Command {
	o := tail.Options{}
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print caption records from a Kafka topic",
		Long: `Reads caption records from a Kafka topic and prints one line per record
(capture time, source, pts, confidence, caption), or the raw JSON with --json.

Without --group every partition is read directly, starting at the end
(or at the beginning with --from-beginning). With --group the reader joins
that consumer group; --from-beginning then applies only when the group has
no committed offset. The group's offset is committed after each record is
printed (or reported as not a lookout record), never for a record that was
not shown, so successive runs with --count read each record exactly once.

A topic that does not exist yet is waited for (tail never creates it): a
note goes to stderr once, and when the topic appears its records are read
from its first one, as they all arrived after tail started. --timeout bounds
the wait.

Exits after --count records, after --timeout, or on Ctrl-C. Exit status 1
when --timeout passes before --count records arrived or before the topic
appeared, or when Kafka cannot be reached.`,
		Example: `  lookout tail --brokers 127.0.0.1:9092 --topic lookout.captions
  lookout tail --topic lookout.captions --from-beginning --count 10 --timeout 30s --json
  lookout tail --topic lookout.alerts --kind alert`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validateTail(o); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return tail.Run(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Brokers, "brokers", []string{"127.0.0.1:9092"}, "Kafka bootstrap brokers, host:port, comma-separated")
	f.StringVar(&o.Topic, "topic", config.DefaultTopic, "topic to read")
	f.StringVar(&o.Group, "group", "", "consumer group to join (default: none, read every partition directly)")
	f.BoolVar(&o.FromBeginning, "from-beginning", false, "start at the oldest record instead of the newest")
	f.IntVar(&o.Count, "count", 0, "exit after this many records (0: no limit); with the summary format, values that are not records are reported and not counted")
	f.DurationVar(&o.Timeout, "timeout", 0, "exit after this long, e.g. 30s (0: no limit)")
	f.BoolVar(&o.JSON, "json", false, "print each record's raw JSON instead of a summary line")
	f.StringSliceVar(&o.Kinds, "kind", nil, "print only records of these kinds: caption, change, heartbeat, alert, gap (comma-separated; change: caption records that replace another, emit: changes; others are skipped, not counted, and committed with --group)")
	return cmd
}

// validateTail checks tail's flags: bad values are usage errors (exit 2).
func validateTail(o tail.Options) error {
	for _, k := range o.Kinds {
		switch k {
		case sink.KindCaption, sink.KindGap, sink.KindHeartbeat, sink.KindAlert, tail.KindChange:
		default:
			return usagef("tail: --kind: %q is not one of caption, change, heartbeat, alert, gap", k)
		}
	}
	if len(o.Brokers) == 0 {
		return usagef("tail: --brokers: give at least one host:port")
	}
	for _, b := range o.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return usagef("tail: --brokers: %q is not host:port", b)
		}
	}
	if strings.TrimSpace(o.Topic) == "" {
		return usagef("tail: --topic: must not be empty")
	}
	if o.Count < 0 {
		return usagef("tail: --count: must be >= 0, got %d", o.Count)
	}
	if o.Timeout < 0 {
		return usagef("tail: --timeout: must be >= 0, got %s", o.Timeout)
	}
	return nil
}
