package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"lookout/ingest"
	"lookout/internal/config"
	"lookout/internal/service"
	"lookout/pipeline"
)

// captionOpts are lookout caption's flags.
type captionOpts struct {
	every      time.Duration
	fps        float64
	modelDir   string
	task       string
	out        string
	appendOut  bool
	video      string
	realtime   bool
	maxBatch   int
	numBeams   int
	logLevel   string
	noProgress bool
	decode     string
	emit       string
	heartbeat  time.Duration
	gate       float64
	reportPath string
	truthPath  string
}

const captionLong = `Caption replays each INPUT (a file path or any source URI) and writes one JSON record per
sampled frame to --out (default stdout). Sampling by PTS makes replays deterministic.

--out and --video are written beside their targets (NAME.partial.jsonl, NAME.partial.mp4) and
renamed over them when every input is done, so a rerun replaces the file and a run that fails
or is interrupted leaves the previous file as it was and says where the partial output is.
--append appends to --out instead (no partial file). With a live input (rtsp://, device://,
synth://) an interrupt is how the run ends, so the output is renamed into place then too.

SIGINT or SIGTERM stops reading, captions the frames already read, closes the outputs (a
playable MP4, whole JSONL lines) and exits 130; a second signal exits at once.`

func newCaptionCmd() *cobra.Command {
	var o captionOpts
	cmd := &cobra.Command{
		Use:     "caption INPUT...",
		Short:   "Caption recorded files (or any source URI) to JSONL, no Kafka needed",
		Long:    captionLong,
		Example: "  lookout caption drive.mp4 --every 1s --model models/demo --out drive.jsonl",
		Args:    minArgs(1, "give at least one input: a video file or a source URI"),
		RunE: func(cmd *cobra.Command, inputs []string) error {
			changed := cmd.Flags().Changed
			if err := o.check(changed); err != nil {
				return err
			}
			cfg, outs := o.config(changed, inputs)
			if err := checkInputs(cmd.Context(), cfg); err != nil {
				return err
			}
			rep, err := newCaptionReport(o.reportPath, o.truthPath, inputs)
			if err != nil {
				return err
			}
			if err := outs.prepare(); err != nil {
				return err
			}
			return captionFiles(cmd.Context(), cfg, outs, rep, !o.noProgress && o.out != "-" && isTerminal(os.Stderr))
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.every, "every", config.DefaultEvery, "caption one frame per interval of video time")
	f.Float64Var(&o.fps, "fps", 0, "caption N frames per second of video time instead of --every")
	f.StringVar(&o.modelDir, "model", config.DefaultModelDir, "model folder (optimum image-to-text-with-past layout, or Florence-2 in onnx-community's layout)")
	f.StringVar(&o.task, "task", "", "Florence-2 task: <CAPTION> (default), <DETAILED_CAPTION>, <MORE_DETAILED_CAPTION>, <OD> (records get objects), <OCR> (records get ocr)")
	f.StringVarP(&o.out, "out", "o", "-", "JSONL output file, - for stdout (replaced at the end of the run; see --append)")
	f.BoolVar(&o.appendOut, "append", false, "append to --out instead of replacing it")
	f.StringVar(&o.video, "video", "", "also write an annotated MP4 with the captions drawn on the sampled frames")
	f.BoolVar(&o.realtime, "realtime", false, "pace replays at native speed")
	f.StringVar(&o.emit, "emit", "every", "every (one record per sampled frame) or changes (only when the caption changes, plus heartbeats)")
	f.DurationVar(&o.heartbeat, "heartbeat", pipeline.DefaultHeartbeat, "with --emit changes: repeat the current caption after this much video time without a record (0s: never)")
	f.Float64Var(&o.gate, "gate", 0, "skip captioning frames that differ from the last captioned one by less than this many grey levels (0: off; 3 suits still cameras)")
	f.StringVar(&o.decode, "decode", "auto", "all, keyframes or auto: auto decodes keyframes only when the keyframe interval is within the sampling interval")
	f.IntVar(&o.maxBatch, "max-batch", pipeline.DefaultMaxBatch, "largest batch of frames per model call")
	f.IntVar(&o.numBeams, "num-beams", 0, "beam search width, 1-64 (default: the model's generation_config.json)")
	f.StringVar(&o.reportPath, "report", "", "also write a self-contained HTML report: thumbnails, captions, attributes and gaps on a timeline")
	f.StringVar(&o.truthPath, "truth", "", "with --report: truth JSONL of a synthetic clip (scenes video); captions that differ are marked")
	f.StringVar(&o.logLevel, "log-level", "warn", "trace, debug, info, warn or error")
	f.BoolVar(&o.noProgress, "no-progress", false, "never show the progress bar")
	return cmd
}

// check rejects flag values and combinations that make no sense, as usage
// errors (exit 2).
func (o *captionOpts) check(changed func(flag string) bool) error {
	if changed("every") && changed("fps") {
		return usagef("caption: set either --every or --fps, not both")
	}
	if o.every <= 0 {
		return usagef("caption: --every must be > 0, got %s (e.g. 500ms, 1s, 2s)", o.every)
	}
	if changed("fps") && (o.fps <= 0 || o.fps > 240) {
		return usagef("caption: --fps must be between 0 and 240 (exclusive of 0), got %g", o.fps)
	}
	if changed("num-beams") && (o.numBeams < 1 || o.numBeams > 64) {
		return usagef("caption: --num-beams must be between 1 and 64, got %d", o.numBeams)
	}
	if o.maxBatch < 1 || o.maxBatch > 256 {
		return usagef("caption: --max-batch must be between 1 and 256, got %d", o.maxBatch)
	}
	if _, err := ingest.ParseDecode(o.decode); err != nil {
		return usagef("caption: --decode: %v", err)
	}
	if o.appendOut && (o.out == "-" || o.out == "") {
		return usagef("caption: --append needs --out FILE")
	}
	return nil
}

// config is the service configuration of a caption run: one source per
// input (ids from the file names, numbered when they repeat), JSONL and
// video sinks, no HTTP server, no data directory.
func (o *captionOpts) config(changed func(flag string) bool, inputs []string) (config.Config, captionOutputs) {
	cfg := config.Default()
	cfg.HTTP.Listen = ""
	cfg.Log.Level = o.logLevel
	cfg.DataDir = "" // one-shot: no checkpoints, no spool
	cfg.Model.Dir = o.modelDir
	cfg.Model.Task = o.task
	cfg.Pipeline.MaxBatch = o.maxBatch
	if changed("num-beams") {
		cfg.Model.Generation.NumBeams = &o.numBeams
	}
	every := o.every
	if o.fps > 0 {
		every = 0
	}
	outs := captionOutputs{jsonl: o.out, video: o.video, appendJSONL: o.appendOut}
	cfg.Sinks.JSONL.Path, cfg.Sinks.Video.Path = outs.writePaths()
	ids := map[string]int{}
	for _, in := range inputs {
		id := inputID(in)
		if n := ids[id]; n > 0 {
			id = fmt.Sprintf("%s-%d", id, n+1)
		}
		ids[inputID(in)]++
		src := config.Source{ID: id, URI: in, Every: every, FPS: o.fps, Decode: o.decode, Realtime: o.realtime, Emit: o.emit,
			Gate: config.Gate{Threshold: o.gate}}
		if changed("heartbeat") {
			src.Heartbeat = &o.heartbeat
		}
		cfg.Sources = append(cfg.Sources, src)
	}
	return cfg, outs
}

// checkInputs validates cfg and opens every input once before the model
// loads, so that a missing or undecodable file or an unreachable camera is
// one error line (the pipeline would retry a live source for ever).
func checkInputs(ctx context.Context, cfg config.Config) error {
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	for _, s := range cfg.Sources {
		if _, err := ingest.ParseURI(s.URI); err != nil {
			return usageError{err}
		}
	}
	for _, s := range cfg.Sources {
		if err := probeInput(ctx, s.URI); err != nil {
			return err
		}
	}
	return nil
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

// captionFiles runs the one-shot pipeline over cfg's sources, handling
// SIGINT and SIGTERM like run does, and puts the outputs in place.
func captionFiles(ctx context.Context, cfg config.Config, outs captionOutputs, rep *captionReport, progress bool) error {
	log := newLogger(os.Stderr, cfg.Log.Level, "auto")
	var captions atomic.Int64
	var bar *progressbar.ProgressBar
	var advance func(string, int64)
	if progress {
		bar, advance = newReplayProgress(ctx, cfg.Sources)
	}
	opt := service.Options{ExitWhenDone: true, FromStart: true, FailFirstOpen: true,
		OnDelivered: func(id string, pts int64) {
			captions.Add(1)
			if advance != nil {
				advance(id, pts)
			}
		}}
	if rep != nil {
		opt.ExtraSinks = append(opt.ExtraSinks, rep.collector)
		opt.OnCaptioned = rep.collector.Captioned
	}
	svc, err := service.New(ctx, cfg, log, opt)
	if err != nil {
		return err
	}
	closed := false
	closeSvc := func() {
		if !closed {
			closed = true
			svc.Close()
		}
	}
	defer closeSvc()
	for _, src := range cfg.Sources {
		if err := svc.AddSource(src); err != nil {
			return err
		}
	}

	var interrupted atomic.Bool
	stopWatching, release := watchSignals(svc, bar, &interrupted)
	defer release()
	runErr := svc.Run(ctx)
	stopWatching()
	closeSvc() // flushes the JSONL file and writes the MP4's index
	if bar != nil {
		if runErr == nil && !interrupted.Load() {
			_ = bar.Finish()
		} else {
			_ = bar.Exit()
			fmt.Fprintln(os.Stderr)
		}
	}
	switch {
	case runErr != nil:
		return fmt.Errorf("%w; %s", runErr, outs.partials(captions.Load()))
	case interrupted.Load() && !anyLive(cfg.Sources):
		return exitError{code: 130, err: fmt.Errorf("interrupted: %s", outs.partials(captions.Load()))}
	}
	if err := outs.commit(); err != nil {
		return err
	}
	if err := rep.finish(); err != nil {
		return err
	}
	if interrupted.Load() {
		return exitError{code: 130, err: fmt.Errorf("interrupted: %d captions written%s", captions.Load(), outs.written())}
	}
	return nil
}

// watchSignals handles SIGINT and SIGTERM during a caption run: the first
// stops reading and lets the frames already read finish (interrupted is
// set), a second kills the run. stop ends the handling once the run is
// over; signals are still caught, and ignored, until release, so that
// closing the outputs is not cut short.
func watchSignals(svc *service.Service, bar *progressbar.ProgressBar, interrupted *atomic.Bool) (stop, release func()) {
	sigs := make(chan os.Signal, 2)
	// Notify also undoes an inherited "ignore SIGINT" (a script's background job).
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case sig := <-sigs:
				if interrupted.CompareAndSwap(false, true) {
					if bar != nil {
						_ = bar.Clear()
					}
					fmt.Fprintf(os.Stderr, "lookout: %s: finishing the frames already read and closing the outputs (signal again to exit at once)\n", sig)
					svc.Stop()
					continue
				}
				svc.Kill()
			}
		}
	}()
	return func() { close(done) }, func() { signal.Stop(sigs) }
}

// anyLive reports whether a source is live (rtsp://, device://, synth://),
// where an interrupt is the normal end of a run.
func anyLive(srcs []config.Source) bool {
	for _, s := range srcs {
		if loc, err := ingest.ParseURI(s.URI); err == nil && loc.Kind.Live() {
			return true
		}
	}
	return false
}

// newReplayProgress shows a progress bar over the total duration of the
// replayed files, advanced as records are delivered.
func newReplayProgress(ctx context.Context, sources []config.Source) (*progressbar.ProgressBar, func(string, int64)) {
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
		return nil, nil
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
	return bar, func(id string, pts int64) {
		mu.Lock()
		defer mu.Unlock()
		_ = bar.Add64(pts - last[id])
		last[id] = pts
	}
}
