package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"lookout/ingest"
	"lookout/internal/config"
)

func newCaptionCmd() *cobra.Command {
	var (
		every     time.Duration
		fps       float64
		modelDir  string
		out       string
		video     string
		realtime  bool
		maxBatch  int
		numBeams  int
		logLevel  string
		noProgess bool
	)
	cmd := &cobra.Command{
		Use:   "caption INPUT...",
		Short: "Caption recorded files (or any source URI) to JSONL, no Kafka needed",
		Long: `Caption replays each INPUT (a file path or any source URI) and writes one JSON record per
sampled frame to --out (default stdout). Sampling by PTS makes replays deterministic.`,
		Example: "  lookout caption drive.mp4 --every 1s --model models/demo --out drive.jsonl",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, inputs []string) error {
			cfg := config.Default()
			cfg.HTTP.Listen = ""
			cfg.Log.Level = logLevel
			cfg.DataDir = "" // one-shot: no checkpoints, no spool
			cfg.Model.Dir = modelDir
			cfg.Pipeline.MaxBatch = maxBatch
			if numBeams > 0 {
				cfg.Model.Generation.NumBeams = &numBeams
			}
			cfg.Sinks.JSONL.Path = out
			cfg.Sinks.Video.Path = video
			if fps > 0 {
				every = 0
			}
			ids := map[string]int{}
			for _, in := range inputs {
				id := inputID(in)
				if n := ids[id]; n > 0 {
					id = fmt.Sprintf("%s-%d", id, n+1)
				}
				ids[inputID(in)]++
				cfg.Sources = append(cfg.Sources, config.Source{ID: id, URI: in, Every: every, FPS: fps, Realtime: realtime})
			}
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			for _, s := range cfg.Sources {
				if _, err := ingest.ParseURI(s.URI); err != nil {
					return usageError{err}
				}
			}
			// Open every input once before the model loads, so that a missing
			// or undecodable file or an unreachable camera is one error line
			// (the pipeline would retry a live source for ever).
			for _, s := range cfg.Sources {
				if err := probeInput(cmd.Context(), s.URI); err != nil {
					return err
				}
			}
			return captionFiles(cmd.Context(), cfg, !noProgess && out != "-" && isTerminal(os.Stderr))
		},
	}
	f := cmd.Flags()
	f.DurationVar(&every, "every", time.Second, "caption one frame per interval of video time")
	f.Float64Var(&fps, "fps", 0, "caption N frames per second of video time instead of --every")
	f.StringVar(&modelDir, "model", "models/demo", "model folder (optimum image-to-text-with-past layout)")
	f.StringVarP(&out, "out", "o", "-", "JSONL output file, - for stdout")
	f.StringVar(&video, "video", "", "also write an annotated MP4 with the captions drawn on the sampled frames")
	f.BoolVar(&realtime, "realtime", false, "pace replays at native speed")
	f.IntVar(&maxBatch, "max-batch", 8, "largest batch of frames per model call")
	f.IntVar(&numBeams, "num-beams", 0, "beam search width (default: the model's generation_config.json)")
	f.StringVar(&logLevel, "log-level", "warn", "trace, debug, info, warn or error")
	f.BoolVar(&noProgess, "no-progress", false, "never show the progress bar")
	return cmd
}

// probeInput opens a caption input once and closes it. A file that does not
// exist is a usage error (exit 2); one that cannot be decoded, or a camera
// that cannot be opened within ingest's open timeout (10 s), is a runtime
// error (exit 1). Synthetic sources are not probed.
func probeInput(ctx context.Context, uri string) error {
	loc, err := ingest.ParseURI(uri)
	if err != nil {
		return usageError{err}
	}
	if loc.Kind == ingest.KindSynth {
		return nil
	}
	src, err := ingest.OpenLocation(ctx, loc, ingest.SourceSpec{})
	if err != nil {
		if loc.Kind == ingest.KindFile {
			if _, serr := os.Stat(loc.Path); errors.Is(serr, os.ErrNotExist) {
				return usageError{err}
			}
		}
		return err
	}
	return src.Close()
}

// inputID names a source after its file, without extension.
func inputID(in string) string {
	if loc, err := ingest.ParseURI(in); err == nil && loc.Path != "" {
		in = loc.Path
	}
	base := strings.TrimSuffix(filepath.Base(in), filepath.Ext(in))
	var b strings.Builder
	for _, r := range base {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "input"
	}
	return b.String()
}

func captionFiles(ctx context.Context, cfg config.Config, progress bool) error {
	log := newLogger(os.Stderr, cfg.Log.Level, "auto")
	svc, err := newService(ctx, cfg, log, serviceOptions{exitWhenDone: true, fromStart: true, failFirstOpen: true})
	if err != nil {
		return err
	}
	defer svc.Close()
	if progress {
		svc.onDelivered = newReplayProgress(ctx, cfg.Sources)
	}
	for _, src := range cfg.Sources {
		if err := svc.AddSource(src); err != nil {
			return err
		}
	}
	return svc.pipe.Run(ctx)
}

// newReplayProgress shows a progress bar over the total duration of the
// replayed files, advanced as records are delivered.
func newReplayProgress(ctx context.Context, sources []config.Source) func(string, int64) {
	var total int64
	for _, s := range sources {
		loc, err := ingest.ParseURI(s.URI)
		if err != nil || loc.Kind.Live() {
			continue
		}
		if f, err := ingest.OpenFile(ctx, loc.Path, ingest.FileOptions{ID: s.ID}); err == nil {
			total += f.Duration().Milliseconds()
			_ = f.Close()
		}
	}
	if total <= 0 {
		return nil
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription("captioning"),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
	)
	var mu sync.Mutex
	last := map[string]int64{}
	return func(id string, pts int64) {
		mu.Lock()
		defer mu.Unlock()
		_ = bar.Add64(pts - last[id])
		last[id] = pts
	}
}
