package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"lookout/ingest"
)

// A long-running service opens each configured URI with OpenReconnecting
// (live sources survive outages; files are opened once), samples it, and
// reads until the end of input or until ctx is cancelled.
func Example() {
	ctx := context.Background()
	var counts ingest.Counters // or the pipeline's Prometheus adapter
	spec := ingest.SourceSpec{ID: "gate", URI: "synth://surveillance?fps=10&size=320x240", Logger: zerolog.Nop()}
	src, err := ingest.OpenReconnecting(ctx, spec, ingest.ReconnectConfig{Metrics: &counts})
	if err != nil {
		fmt.Println(err) // one line, password redacted
		return
	}
	sampled, err := ingest.NewSampler(src, spec.ID, ingest.SampleConfig{Every: 500 * time.Millisecond}, &counts)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sampled.Close()
	for i := 0; i < 3; i++ {
		f, err := sampled.Next(ctx)
		if errors.Is(err, ingest.ErrEndOfInput) {
			break
		} else if err != nil {
			fmt.Println(err)
			return
		}
		// ... hand f to the batcher, which closes f.Image when done.
		f.Close()
	}
}
