package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"lookout/internal/config"
	"lookout/synth"
	"lookout/synth/corpus"
)

// newScenesCmd groups the synthetic-scene tools: rendering clips with their
// truth, rendering training sets, and scoring captions against the truth.
func newScenesCmd() *cobra.Command {
	return groupCmd("scenes", "Render synthetic scenes with known captions and score captions against them",
		`Synthetic scenes are procedurally drawn video whose true caption is known for
every frame (docs/SCENES.md). Domains: driving, surveillance.`,
		newScenesVideoCmd(), newScenesDatasetCmd(), newScenesScoreCmd())
}

func newScenesVideoCmd() *cobra.Command {
	var (
		domain, size, out, hold string
		script                  string
		seed                    int64
		duration                time.Duration
		fps                     float64
	)
	cmd := &cobra.Command{
		Use:   "video",
		Short: "Write an H.264 MP4 of a scene and its per-frame truth (X.mp4 -> X.truth.jsonl)",
		Example: "  lookout scenes video --domain driving --seed 7 --duration 60s --size 1280x720 --fps 30 --out clip.mp4\n" +
			"  lookout scenes score --truth clip.truth.jsonl --captions captions.jsonl",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := synth.ParseDomain(domain)
			if err != nil {
				return usagef("--domain: %w", err)
			}
			w, h, err := parseSceneSize(size)
			if err != nil {
				return usagef("--size: %w", err)
			}
			if duration <= 0 {
				return usagef("--duration %v: must be positive, e.g. 60s", duration)
			}
			if !(fps > 0) || fps > 1000 {
				return usagef("--fps %v: must be in (0, 1000], e.g. 30", fps)
			}
			if out == "" {
				return usagef("--out: an output path is required, e.g. --out clip.mp4")
			}
			if w%2 != 0 || h%2 != 0 {
				return usagef("--size %s: H.264 needs even sides", size)
			}
			if err := checkWritableFile(corpus.TruthPath(out)); err != nil {
				return usagef("--out: %w", err)
			}
			if err := checkWritableFile(out); err != nil {
				return usagef("--out: %w", err)
			}
			minHold, maxHold, err := parseHold(hold)
			if err != nil {
				return usagef("--hold %s: %v", hold, err)
			}
			opts := corpus.VideoOptions{Domain: d, Seed: seed, Duration: duration, Width: w, Height: h, FPS: fps, Out: out,
				MinHold: minHold, MaxHold: maxHold}
			if script != "" {
				if opts.Script, err = readScript(script, d, seed); err != nil {
					return usageError{err}
				}
			}
			bar := newSceneBar(cmd.ErrOrStderr(), corpus.FrameCount(duration, fps), "rendering "+filepath.Base(out))
			if bar != nil {
				opts.Progress = func(done, _ int) { _ = bar.Set(done) }
			}
			n, err := corpus.WriteVideo(opts)
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(cmd.ErrOrStderr())
			}
			if err != nil {
				return fmt.Errorf("scenes video: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s and %s (%d frames, %dx%d, %g fps)\n", out, corpus.TruthPath(out), n, w, h, fps)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&domain, "domain", "driving", "scene domain: driving or surveillance")
	f.Int64Var(&seed, "seed", 1, "scene seed; equal seeds give identical clips")
	f.DurationVar(&duration, "duration", 60*time.Second, "clip length")
	f.StringVar(&size, "size", "1280x720", "frame size WxH (even sides)")
	f.Float64Var(&fps, "fps", 30, "frames per second")
	f.StringVar(&out, "out", "", "output MP4 path; the truth goes next to it as <name>.truth.jsonl (required)")
	f.StringVar(&hold, "hold", "2s-8s", "how long the content stays fixed, MIN-MAX (a calm scene: 60s-180s)")
	f.StringVar(&script, "script", "", "YAML file of steps giving the content instead of --hold: steps: [{hold: 6s, set: {light: green, pedestrian: \"yes\"}}, ...] (docs/SCENES.md)")
	return cmd
}

// readScript reads a scene script: a YAML document with a steps list, each
// step setting some slots for a while. Mistakes name the file, line and
// field, or the step.
func readScript(path string, d synth.Domain, seed int64) ([]synth.Step, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--script: %w", err)
	}
	var doc struct {
		Steps []synth.Step `yaml:"steps"`
	}
	if err := config.DecodeStrict(path, b, &doc); err != nil {
		return nil, err
	}
	if _, err := synth.NewScriptedScene(d, seed, doc.Steps); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return doc.Steps, nil
}

// parseHold reads MIN-MAX durations, e.g. 2s-8s.
func parseHold(s string) (time.Duration, time.Duration, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("want MIN-MAX, e.g. 2s-8s")
	}
	lo, err1 := time.ParseDuration(a)
	hi, err2 := time.ParseDuration(b)
	if err1 != nil || err2 != nil || lo < 100*time.Millisecond || hi < lo {
		return 0, 0, fmt.Errorf("want two durations MIN-MAX with 100ms <= MIN <= MAX, e.g. 2s-8s")
	}
	return lo, hi, nil
}

func newScenesDatasetCmd() *cobra.Command {
	var (
		domain, size, storeSize, out string
		n                            int
		seed                         int64
		h264                         bool
	)
	cmd := &cobra.Command{
		Use:     "dataset",
		Short:   "Render independent random samples as PNG images plus captions.jsonl and schema.json",
		Example: "  lookout scenes dataset --domain both --n 5000 --seed 1 --size 640x360 --store-size 64x64 --out data/train",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var domains []synth.Domain
			if domain == "both" {
				domains = synth.Domains
			} else {
				d, err := synth.ParseDomain(domain)
				if err != nil {
					return usagef("--domain: %w (or both)", err)
				}
				domains = []synth.Domain{d}
			}
			w, h, err := parseSceneSize(size)
			if err != nil {
				return usagef("--size: %w", err)
			}
			var sw, sh int
			if storeSize != "" {
				if sw, sh, err = parseSceneSize(storeSize); err != nil {
					return usagef("--store-size: %w", err)
				}
			}
			if n <= 0 {
				return usagef("--n %d: must be positive", n)
			}
			if out == "" {
				return usagef("--out: an output folder is required")
			}
			if h264 && (w%2 != 0 || h%2 != 0) {
				return usagef("--size %s: H.264 needs even sides (or pass --h264=false)", size)
			}
			if err := os.MkdirAll(filepath.Join(out, "images"), 0o755); err != nil {
				return usagef("--out: cannot create the dataset folder: %w", err)
			}
			opts := corpus.DatasetOptions{Domains: domains, N: n, Seed: seed, Width: w, Height: h,
				StoreWidth: sw, StoreHeight: sh, H264: h264, Out: out}
			bar := newSceneBar(cmd.ErrOrStderr(), n, "samples")
			if bar != nil {
				opts.Progress = func(done, _ int) { _ = bar.Set(done) }
			}
			start := time.Now()
			err = corpus.WriteDataset(opts)
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(cmd.ErrOrStderr())
			}
			if err != nil {
				return fmt.Errorf("scenes dataset: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d samples to %s in %.1fs\n", n, out, time.Since(start).Seconds())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&domain, "domain", "both", "scene domain: driving, surveillance or both (alternating)")
	f.IntVar(&n, "n", 1000, "number of samples")
	f.Int64Var(&seed, "seed", 1, "dataset seed; equal options give identical datasets")
	f.StringVar(&size, "size", "640x360", "render size WxH")
	f.StringVar(&storeSize, "store-size", "", "stored image size WxH, resized with INTER_AREA (default: the render size)")
	f.StringVar(&out, "out", "", "output folder (required)")
	f.BoolVar(&h264, "h264", true, "pass samples through an H.264 encode and decode at the render size")
	return cmd
}

func newScenesScoreCmd() *cobra.Command {
	var truthPath, capPath string
	cmd := &cobra.Command{
		Use:   "score",
		Short: "Score caption records against a clip's truth; the last line is exact_match=... slot_accuracy=... frames=N",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if truthPath == "" || capPath == "" {
				return usagef("--truth and --captions are both required")
			}
			truth, err := corpus.ReadTruthFile(truthPath)
			if err != nil {
				return usagef("--truth: %w", err)
			}
			if len(truth) == 0 {
				return usagef("--truth: %s holds no truth lines", truthPath)
			}
			caps, err := corpus.ReadCaptionsFile(capPath)
			if err != nil {
				return usagef("--captions: %w", err)
			}
			r := corpus.Score(truth, caps)
			w := cmd.OutOrStdout()
			for _, s := range r.Slots {
				fmt.Fprintf(w, "slot %s.%s accuracy=%.3f (%d/%d)\n", s.Domain, s.Name, s.Accuracy, s.Correct, s.Total)
			}
			if r.Unmatched > 0 {
				fmt.Fprintf(w, "unmatched=%d (caption records outside the clip's frames, not scored)\n", r.Unmatched)
			}
			if r.Unparseable > 0 {
				fmt.Fprintf(w, "unparseable=%d\n", r.Unparseable)
			}
			fmt.Fprintf(w, "mismatched=%d (scored captions that differ from the truth)\n", r.Mismatched)
			fmt.Fprintln(w, r.String())
			return nil
		},
	}
	cmd.Flags().StringVar(&truthPath, "truth", "", "truth JSONL written by scenes video (required)")
	cmd.Flags().StringVar(&capPath, "captions", "", "caption records JSONL, e.g. from lookout caption --out (required)")
	return cmd
}

// parseSceneSize parses "WxH" with positive sides up to corpus.MaxSide.
func parseSceneSize(s string) (int, int, error) {
	ws, hs, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
	w, errW := strconv.Atoi(ws)
	h, errH := strconv.Atoi(hs)
	if !ok || errW != nil || errH != nil || w <= 0 || h <= 0 || w > corpus.MaxSide || h > corpus.MaxSide {
		return 0, 0, fmt.Errorf("%q is not a size: want WxH with sides in 1..%d, e.g. 1280x720", s, corpus.MaxSide)
	}
	return w, h, nil
}

// checkWritableFile creates path (and leaves it) to report an unwritable output early.
func checkWritableFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("cannot write: %w", err)
	}
	return f.Close()
}

// newSceneBar returns a progress bar on w when w is a terminal, else nil.
func newSceneBar(w io.Writer, total int, what string) *progressbar.ProgressBar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
	)
}
