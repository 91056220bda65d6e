package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"lookout/ingest"
	"lookout/internal/config"
)

// stopReminder is how often a graceful stop that is still waiting (a sink that cannot
// write: broker down and spool disk full) says so, with the sink's error.
const stopReminder = 15 * time.Second

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
					err = checkFileInput(loc)
				}
				if err != nil {
					return usageError{cfg.SourceErr(i, "uri", err)}
				}
			}
			if logFormat != "" {
				cfg.Log.Format = logFormat
			}
			log := newLogger(os.Stderr, cfg.Log.Level, cfg.Log.Format)
			return runService(cmd.Context(), cfgPath, cfg, fromStart, log)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "YAML config file (required)")
	cmd.Flags().StringVar(&logFormat, "log-format", "", "override log.format: json, console or auto")
	cmd.Flags().BoolVar(&fromStart, "from-start", false, "replay files from the start, ignoring checkpoints")
	return cmd
}

func runService(ctx context.Context, cfgPath string, cfg config.Config, fromStart bool, log zerolog.Logger) error {
	if len(cfg.Sources) == 0 {
		log.Warn().Msg("no sources configured; add some with POST /sources or SIGHUP after editing the config")
	}
	svc, err := newService(ctx, cfg, log, serviceOptions{fromStart: fromStart})
	if err != nil {
		return err
	}
	defer svc.Close()
	// Through Reconcile, so that a SIGHUP later restarts only changed sources.
	if _, _, _, err := svc.Reconcile(cfg.Sources); err != nil {
		return usageError{err}
	}
	if cfg.HTTP.Listen != "" {
		ops, err := startOpsServer(cfg.HTTP.Listen, cfg.HTTP.Token, svc.reg, svc.Ready, svc, log.With().Str("component", "http").Logger())
		if err != nil {
			return err
		}
		defer ops.Close()
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() {
		stopping := false
		var since time.Time
		var waiting <-chan time.Time // ticks while a graceful stop waits (a sink that cannot write)
		for {
			select {
			case <-done:
				return
			case <-waiting:
				ev := log.Warn().Int64("waited_ms", time.Since(since).Milliseconds())
				if err := svc.pipe.Ready(); err != nil {
					ev = ev.Err(err)
				}
				ev.Msg("still shutting down: records are kept until written (signal again to exit at once; records not yet written are then lost)")
			case sig := <-sigs:
				switch {
				case sig == syscall.SIGHUP:
					reload(cfgPath, svc, log)
				case !stopping:
					stopping = true
					log.Info().Str("signal", sig.String()).Msg("shutting down: captioning queued frames, flushing sinks (signal again to exit at once)")
					svc.pipe.Stop()
					since = time.Now()
					t := time.NewTicker(stopReminder)
					defer t.Stop()
					waiting = t.C
				default:
					log.Warn().Msg("second signal: exiting at once")
					svc.killed.Store(true)
					svc.pipe.Kill()
				}
			}
		}
	}()
	log.Info().Int("sources", len(cfg.Sources)).Msg("running")
	err = svc.pipe.Run(ctx)
	close(done)
	if err != nil {
		return err
	}
	log.Info().Msg("stopped cleanly")
	return nil
}

// reload applies the config file's source list: removed and changed sources
// stop, new and changed ones start; the others keep running undisturbed.
func reload(cfgPath string, svc *service, log zerolog.Logger) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		log.Error().Err(err).Msg("reload refused; keeping the running sources")
		return
	}
	added, removed, restarted, err := svc.Reconcile(cfg.Sources)
	ev := log.Info()
	if err != nil {
		ev = log.Error().Err(err)
	}
	ev.Strs("added", added).Strs("removed", removed).Strs("restarted", restarted).Msg("reloaded sources")
}
