package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"lookout/inference"
	"lookout/internal/config"
	"lookout/internal/rules"
	"lookout/sink"
)

func newRulesCmd() *cobra.Command {
	return groupCmd("rules", "Check and replay alert rules offline", "", newRulesTestCmd())
}

func newRulesTestCmd() *cobra.Command {
	var cfgPath, captions string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "test --config FILE --captions CAPTIONS.jsonl",
		Short: "Replay a captions file through the config's rules and print the alerts",
		Long: `Replays a captions JSONL file (sinks.jsonl of lookout run, or lookout caption --out) through
the rules section of a config, in file order, and prints the alerts the service would have
published: the same records with the same ids, since rules decide on each record's pts and
capture time, never the wall clock. Give it a file of every caption record (emit: every): a rule
measures how long its match held over every sampled frame.

Attribute slots and values are checked against the config's model.dir (its attributes.json)
when that folder exists. Exit status 2 for a bad config (the field is named) or a line that is
not a record (its number is named).`,
		Example: "  lookout rules test --config configs/driving-replay.yaml --captions drive.captions.jsonl",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" || captions == "" {
				return usagef("rules test: --config and --captions are required")
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return usageError{err}
			}
			schema, err := modelSchema(cfg.Model.Dir)
			if err != nil {
				return usageError{fmt.Errorf("model.dir: %w", err)}
			}
			if schema == nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: model folder %s not found: attribute slots are not checked against the model\n", cfg.Model.Dir)
			}
			if err := rules.Check(cfg, schema); err != nil {
				return usageError{err}
			}
			e, err := rules.New(cfg.Rules)
			if err != nil {
				return usageError{err}
			}
			f, err := os.Open(captions)
			if err != nil {
				return usagef("rules test: --captions: %v", err)
			}
			defer f.Close()
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			st, err := rules.Replay(f, captions, e, func(a sink.Record) {
				if asJSON {
					_ = enc.Encode(a)
					return
				}
				fmt.Fprintf(out, "%s  %s  pts=%.3fs  %s  held=%.1fs  %s\n", a.ID, a.SourceID, float64(a.PTSMillis)/1000, a.Rule, float64(a.HeldMillis)/1000, a.Caption)
			})
			if err != nil {
				return usageError{err}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d alerts from %d caption records of %d sources, %d rules\n", st.Alerts, st.Captions, len(st.Sources), e.Len())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfgPath, "config", "c", "", "YAML config file with a rules section (required)")
	f.StringVar(&captions, "captions", "", "captions JSONL file (required)")
	f.BoolVar(&asJSON, "json", false, "print each alert record's JSON instead of a summary line")
	return cmd
}

// modelSchema reads the attribute heads of the model folder dir without
// loading the model: nil when the folder does not exist (nothing can be
// checked), empty when it has no attributes.json (a model without heads).
func modelSchema(dir string) (rules.Schema, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	specs, err := inference.ReadAttributeSpecs(dir)
	if err != nil {
		return nil, err
	}
	schema := rules.Schema{}
	for _, a := range specs {
		schema[a.Name] = a.Classes
	}
	return schema, nil
}
