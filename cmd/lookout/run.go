package main

import (
	"os"

	"github.com/spf13/cobra"

	"lookout/ingest"
	"lookout/internal/config"
	"lookout/internal/rules"
	"lookout/internal/service"
)

func newRunCmd() *cobra.Command {
	var cfgPath, logFormat string
	var fromStart bool
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the captioning service",
		Long: `Captions every configured source and delivers the records to the configured sinks
until SIGINT or SIGTERM (graceful: queued frames are captioned and sinks flushed; a second
signal exits at once). SIGHUP reloads the sources from the config file: the running sources
become exactly the file's, so sources added with POST /sources stop at the next SIGHUP
unless the file lists them too.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				return usagef("run: --config is required (examples in configs/)")
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return usageError{err}
			}
			// Check the source URIs before the model loads: a bad URI is a
			// configuration error (exit 2, one line), not a runtime failure.
			for i, s := range cfg.Sources {
				loc, err := ingest.ParseURI(s.URI)
				if err == nil {
					err = service.CheckFileInput(loc)
				}
				if err != nil {
					return usageError{cfg.SourceErr(i, "uri", err)}
				}
			}
			// The rules' attribute slots against the model's heads, also
			// before the model loads.
			if len(cfg.Rules) > 0 {
				schema, err := modelSchema(cfg.Model.Dir)
				if err == nil {
					err = rules.Check(cfg, schema)
				}
				if err != nil {
					return usageError{err}
				}
			}
			if logFormat != "" {
				cfg.Log.Format = logFormat
			}
			log := newLogger(os.Stderr, cfg.Log.Level, cfg.Log.Format)
			return service.Serve(cmd.Context(), cfgPath, cfg, service.Options{FromStart: fromStart}, log)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "YAML config file (required)")
	cmd.Flags().StringVar(&logFormat, "log-format", "", "override log.format: json, console or auto")
	cmd.Flags().BoolVar(&fromStart, "from-start", false, "replay files from the start, ignoring checkpoints")
	return cmd
}
