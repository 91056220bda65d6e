package pipeline_test

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"lookout/inference"
	"lookout/ingest"
	"lookout/pipeline"
	"lookout/sink"
)

// Example shows the wiring of `lookout run`: the first SIGINT or SIGTERM
// shuts down gracefully, a second one kills.
func Example() {
	var (
		captioner inference.Captioner // from package inference
		sinks     []sink.Sink         // from package sink
		open      func(ctx context.Context) (ingest.Source, error)
	)
	log := zerolog.New(os.Stderr)
	var m pipeline.Metrics = pipeline.NopMetrics{} // the service passes its Prometheus recorder (internal/service/metrics.go)
	cfg := pipeline.Config{MaxBatch: 8, Workers: 2}
	if err := cfg.Validate(); err != nil {
		log.Fatal().Err(err).Msg("config") // exit 2
	}
	p := pipeline.New(cfg, captioner, sinks, log, m)
	_ = p.AddSource(pipeline.SourceSpec{ID: "gate", Live: true, Labels: map[string]string{"site": "north"}}, open)

	ctx, stop := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		stop() // graceful: sources stop, queued frames captioned, sinks flushed
		<-sig
		p.Kill() // at once
	}()
	if err := p.Run(ctx); err != nil {
		log.Error().Err(err).Msg("pipeline") // exit 1
	}
	// The caller closes what it opened.
	for _, s := range sinks {
		_ = s.Close()
	}
	_ = captioner.Close()
}
