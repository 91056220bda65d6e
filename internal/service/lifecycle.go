package service

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"lookout/internal/config"
	"lookout/internal/statuspage"
)

// stopReminder is how often a graceful stop that is still waiting (a sink that cannot
// write: broker down and spool disk full) says so, with the sink's error.
const stopReminder = 15 * time.Second

// Run runs the pipeline until its sources end (Options.ExitWhenDone), Stop or
// Kill, or ctx ends.
func (s *Service) Run(ctx context.Context) error { return s.pipe.Run(ctx) }

// Stop begins a graceful stop: queued frames are captioned and sinks flushed.
// In cluster mode the instance leaves the group first, so that its sources
// start elsewhere while it drains.
func (s *Service) Stop() {
	if f := s.cluster(); f != nil {
		f.leave()
	}
	s.pipe.Stop()
}

// Kill stops at once; Close then does not wait for the broker, and records
// not yet written are lost.
func (s *Service) Kill() {
	s.killed.Store(true)
	s.pipe.Kill()
}

// Serve is `lookout run`: it starts cfg's sources and the ops server and runs
// until SIGINT or SIGTERM (graceful; a second signal exits at once). SIGHUP
// reloads the sources from cfgPath.
func Serve(ctx context.Context, cfgPath string, cfg config.Config, opt Options, log zerolog.Logger) error {
	if len(cfg.Sources) == 0 && !cfg.Cluster.Enabled {
		log.Warn().Msg("no sources configured; add some with POST /sources or SIGHUP after editing the config")
	}
	svc, err := New(ctx, cfg, log, opt)
	if err != nil {
		return err
	}
	defer svc.Close()
	// Through Reconcile, so that a SIGHUP later restarts only changed sources.
	if _, _, _, err := svc.Reconcile(cfg.Sources); err != nil {
		return ConfigError{err}
	}
	var httpAddr string
	if cfg.HTTP.Listen != "" {
		ops, err := startOpsServer(cfg.HTTP.Listen, cfg.HTTP.Token, svc.reg, svc.Ready, svc,
			statuspage.Config{View: svc.now, Header: svc.StatusHeader}, log.With().Str("component", "http").Logger())
		if err != nil {
			return err
		}
		defer ops.Close()
		httpAddr = advertised(ops.ln.Addr().String())
	}
	if cfg.Cluster.Enabled {
		if err := svc.joinFleet(ctx, httpAddr); err != nil {
			return err
		}
	}
	done := make(chan struct{})
	go svc.handleSignals(cfgPath, done)
	log.Info().Int("sources", len(cfg.Sources)).Msg("running")
	err = svc.Run(ctx)
	close(done)
	if err != nil {
		return err
	}
	if f := svc.cluster(); f != nil && f.refused() != nil {
		return ConfigError{f.refused()}
	}
	log.Info().Msg("stopped cleanly")
	return nil
}

// handleSignals serves SIGHUP (reload), the first SIGINT/SIGTERM (graceful
// stop, with a reminder while it waits) and the second (kill) until done.
func (s *Service) handleSignals(cfgPath string, done <-chan struct{}) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	stopping := false
	var since time.Time
	var waiting <-chan time.Time // ticks while a graceful stop waits (a sink that cannot write)
	for {
		select {
		case <-done:
			return
		case <-waiting:
			ev := s.log.Warn().Int64("waited_ms", time.Since(since).Milliseconds())
			if err := s.pipe.Ready(); err != nil {
				ev = ev.Err(err)
			}
			ev.Msg("still shutting down: records are kept until written (signal again to exit at once; records not yet written are then lost)")
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				s.reload(cfgPath)
			case !stopping:
				stopping = true
				s.log.Info().Str("signal", sig.String()).Msg("shutting down: captioning queued frames, flushing sinks (signal again to exit at once)")
				s.Stop()
				since = time.Now()
				t := time.NewTicker(stopReminder)
				defer t.Stop()
				waiting = t.C
			default:
				s.log.Warn().Msg("second signal: exiting at once")
				s.Kill()
			}
		}
	}
}

// reload applies the config file's source list and rules: removed and
// changed sources stop, new and changed ones start; the others keep running
// undisturbed. Unchanged rules keep their state (a match in progress, a
// cooldown). A file with a mistake, in the rules too, changes nothing.
func (s *Service) reload(cfgPath string) {
	cfg, err := config.Load(cfgPath)
	if err == nil {
		err = s.ReplaceRules(cfg)
	}
	if err != nil {
		s.log.Error().Err(err).Msg("reload refused; keeping the running sources and rules")
		return
	}
	if s.cluster() != nil {
		s.log.Info().Int("rules", len(cfg.Rules)).Msg("reloaded rules; in cluster mode the sources come from the catalogue: re-applying this instance's assignment")
		s.applyFleet()
		return
	}
	added, removed, restarted, err := s.Reconcile(cfg.Sources)
	ev := s.log.Info()
	if err != nil {
		ev = s.log.Error().Err(err)
	}
	ev.Strs("added", added).Strs("removed", removed).Strs("restarted", restarted).Int("rules", len(cfg.Rules)).Msg("reloaded sources and rules")
}
