package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gocv.io/x/gocv"

	"lookout/inference"
	"lookout/sink"
)

// modelFlags are the engine options shared by the model subcommands.
type modelFlags struct {
	provider     string
	fallback     bool
	threads      int
	ortLib       string
	optLevel     string
	resize       string
	decoder      string
	numBeams     int
	maxNewTokens int
	task         string
	asJSON       bool
}

func (f *modelFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.provider, "provider", "cpu", "execution provider: cpu, cuda or tensorrt")
	fl.BoolVar(&f.fallback, "cpu-fallback", false, "fall back to cpu when the provider cannot load")
	fl.IntVar(&f.threads, "threads", 0, "ONNX Runtime intra-op threads (0: all cores)")
	fl.StringVar(&f.ortLib, "ort-lib", "", "ONNX Runtime library (default $LOOKOUT_ORT_LIB or .state/ort/libonnxruntime.so)")
	fl.StringVar(&f.optLevel, "graph-optimization", "all", "graph optimisation: all, extended, basic or disable")
	fl.StringVar(&f.resize, "resize", "exact", "preprocessing resize: exact (Pillow bit-exact) or fast (OpenCV)")
	fl.StringVar(&f.decoder, "decoder", "auto", "decoder files: auto (merged when present), merged or split")
	fl.IntVar(&f.numBeams, "num-beams", 0, "override num_beams (0: generation_config.json)")
	fl.IntVar(&f.maxNewTokens, "max-new-tokens", 0, "override max_new_tokens (0: generation_config.json)")
	fl.StringVar(&f.task, "task", "", "Florence-2 task: <CAPTION> (default), <DETAILED_CAPTION>, <MORE_DETAILED_CAPTION>, <OD>, <OCR>")
	fl.BoolVar(&f.asJSON, "json", false, "print JSON")
}

func (f *modelFlags) options() (inference.Options, error) {
	o := inference.Options{
		LibraryPath:       f.ortLib,
		Provider:          f.provider,
		AllowCPUFallback:  f.fallback,
		IntraOpThreads:    f.threads,
		GraphOptimization: f.optLevel,
		Resize:            f.resize,
		Decoder:           f.decoder,
		Task:              f.task,
		Logger:            newLogger(os.Stderr, "warn", "auto"),
	}
	switch f.provider {
	case "cpu", "cuda", "tensorrt":
	default:
		return o, usagef("--provider %q: want cpu, cuda or tensorrt", f.provider)
	}
	if f.resize != "exact" && f.resize != "fast" {
		return o, usagef("--resize %q: want exact or fast", f.resize)
	}
	switch f.decoder {
	case "auto", "merged", "split":
	default:
		return o, usagef("--decoder %q: want auto, merged or split", f.decoder)
	}
	if f.task != "" && !inference.KnownTask(f.task) {
		return o, usagef("--task %q: want one of %s", f.task, strings.Join(inference.Tasks(), ", "))
	}
	if f.threads < 0 {
		return o, usagef("--threads %d: want >= 0", f.threads)
	}
	if f.numBeams < 0 || f.maxNewTokens < 0 {
		return o, usagef("--num-beams and --max-new-tokens must be >= 0")
	}
	if f.numBeams > 0 {
		o.Generation.NumBeams = &f.numBeams
	}
	if f.maxNewTokens > 0 {
		o.Generation.MaxNewTokens = &f.maxNewTokens
	}
	return o, nil
}

func newModelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Inspect, check and benchmark an exported captioning model folder",
		Long: `A model folder is optimum's image-to-text-with-past export of a VisionEncoderDecoder (ViT, DeiT,
BEiT or Swin encoder; GPT-2, TrOCR, BART/mBART, BERT or RoBERTa decoder; BERT and RoBERTa come without a cache,
decoder_model.onnx alone): encoder_model.onnx, decoder_model_merged.onnx (or decoder_model.onnx +
decoder_with_past_model.onnx), config.json, generation_config.json, preprocessor_config.json,
tokenizer.json, and optionally attributes_model.onnx + attributes.json and domain_profile.json
(the out-of-domain profile our export toolchain writes; docs/MODELS.md).
Florence-2 folders in onnx-community's layout load too. 'lookout model pull' makes a folder from a
local ONNX folder, a PyTorch checkpoint or a hub id.
The ONNX Runtime library comes from scripts/ort.sh (or $LOOKOUT_ORT_LIB).`,
	}
	cmd.AddCommand(newModelInfoCmd(), newModelCheckCmd(), newModelBenchCmd(), newModelPullCmd())
	return cmd
}

func loadModelArg(args []string, f *modelFlags) (*inference.Model, error) {
	if len(args) == 0 {
		return nil, usagef("missing model folder: lookout model <command> DIR")
	}
	st, err := os.Stat(args[0])
	if err != nil {
		return nil, usagef("model folder %s: %v", args[0], errText(err))
	}
	if !st.IsDir() {
		return nil, usagef("model folder %s: not a directory", args[0])
	}
	opts, err := f.options()
	if err != nil {
		return nil, err
	}
	return inference.Load(args[0], opts)
}

func errText(err error) string {
	var pe *os.PathError
	if e, ok := err.(*os.PathError); ok {
		pe = e
		return pe.Err.Error()
	}
	return err.Error()
}

func newModelInfoCmd() *cobra.Command {
	var f modelFlags
	cmd := &cobra.Command{
		Use:   "info DIR",
		Short: "Print a model's architecture, sizes, graph inputs/outputs and generation settings",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("model info takes one folder, got %d arguments", len(args))
			}
			m, err := loadModelArg(args, &f)
			if err != nil {
				return err
			}
			defer m.Close()
			info := m.Info()
			if f.asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			printInfo(cmd.OutOrStdout(), info)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func printInfo(w io.Writer, in inference.ModelInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	p("name", "%s", in.Name)
	p("folder", "%s", in.Dir)
	p("digest", "%s", in.Digest)
	p("provider", "%s", in.Provider)
	if in.Architecture == "florence2" {
		p("architecture", "Florence-2: DaViT vision encoder + BART encoder-decoder (onnx-community layout), default task %s", in.Task)
	} else {
		p("architecture", "VisionEncoderDecoder: %s encoder + %s decoder (%s decoder layout)", in.Encoder.ModelType, in.Decoder.ModelType, in.Layout)
		p("encoder", "image %dx%d, patch %d, hidden %d, %d layers, %d heads, sequence %d",
			in.ImageSize[0], in.ImageSize[1], in.Encoder.PatchSize, in.Encoder.HiddenSize, in.Encoder.NumLayers, in.Encoder.NumHeads, in.EncoderSeq)
	}
	p("decoder", "vocab %d, hidden %d, %d layers, %d heads, %d positions",
		in.Decoder.VocabSize, in.Decoder.NEmbd, in.Decoder.NLayer, in.Decoder.NHead, in.Decoder.NPositions)
	p("preprocess", "resize to %dx%d (PIL filter %d), mean %v, std %v", in.ImageSize[0], in.ImageSize[1], in.Resample, in.Mean, in.Std)
	g := in.Generation
	p("generation", "max_length %d, min_length %d, num_beams %d, num_return_sequences %d, length_penalty %g, early_stopping %s",
		g.MaxLength, g.MinLength, g.NumBeams, g.NumReturnSequences, g.LengthPenalty, g.EarlyStopping)
	p("", "no_repeat_ngram_size %d, repetition_penalty %g, decoder_start %d, eos %v, pad %d",
		g.NoRepeatNgramSize, g.RepetitionPenalty, g.DecoderStartToken, g.EOSTokenIDs, g.PadTokenID)
	for _, a := range in.Attributes {
		p("attribute", "%s: %s (output %s)", a.Name, strings.Join(a.Classes, ", "), a.Output)
	}
	if d := in.Domain; d != nil {
		p("domain", "profile of %d principal directions, out of domain above distance %g; trained on %s", d.Rank, d.Threshold, d.TrainedOn)
	}
	files := make([]string, 0, len(in.FileBytes))
	for f := range in.FileBytes {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		p("file", "%s (%.1f MB)", f, float64(in.FileBytes[f])/1e6)
	}
	tw.Flush()
	for _, gr := range in.Graphs {
		fmt.Fprintf(w, "\n%s\n", gr.File)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, x := range gr.Inputs {
			fmt.Fprintf(tw, "  in\t%s\t%s\t%s\n", x.Name, x.Type, shapeString(x.Shape))
		}
		for _, x := range gr.Outputs {
			fmt.Fprintf(tw, "  out\t%s\t%s\t%s\n", x.Name, x.Type, shapeString(x.Shape))
		}
		tw.Flush()
	}
}

func shapeString(s []int64) string {
	parts := make([]string, len(s))
	for i, d := range s {
		if d < 0 {
			parts[i] = "?"
		} else {
			parts[i] = strconv.FormatInt(d, 10)
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// readImages reads image files named on the command line (a missing one is a usage error).
func readImages(paths []string) ([]gocv.Mat, error) {
	var mats []gocv.Mat
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			closeMats(mats)
			return nil, usagef("image %s: %v", p, errText(err))
		}
		m := gocv.IMRead(p, gocv.IMReadColor)
		if m.Empty() {
			m.Close()
			closeMats(mats)
			return nil, fmt.Errorf("image %s: cannot decode it (want PNG, JPEG or another format OpenCV reads)", p)
		}
		mats = append(mats, m)
	}
	return mats, nil
}

func closeMats(ms []gocv.Mat) {
	for _, m := range ms {
		m.Close()
	}
}

// supportedLine says what lookout runs, for an unsupported architecture's one line.
func supportedLine(arch string) string {
	if strings.HasPrefix(arch, "vision-encoder-decoder") {
		return fmt.Sprintf("lookout runs VisionEncoderDecoder with encoders %s and decoders %s; see docs/MODELS.md",
			strings.Join(inference.Encoders, ", "), strings.Join(inference.Decoders, ", "))
	}
	return "lookout runs vision-encoder-decoder and florence2"
}

func newModelCheckCmd() *cobra.Command {
	var f modelFlags
	cmd := &cobra.Command{
		Use:   "check DIR [IMAGE...]",
		Short: "Validate a model folder and caption images with it",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("missing model folder: lookout model check DIR [IMAGE...]")
			}
			imgs, err := readImages(args[1:])
			if err != nil {
				return err
			}
			defer closeMats(imgs)
			arch, ok, err := inference.Architecture(args[0])
			if err == nil && !ok {
				err = fmt.Errorf("model %s: architecture %s is not supported (%s)", args[0], arch, supportedLine(arch))
			}
			if err != nil {
				return err
			}
			m, err := loadModelArg(args, &f)
			if err != nil {
				return err
			}
			defer m.Close()
			out := cmd.OutOrStdout()
			if !f.asJSON {
				if in := m.Info(); in.Architecture != "florence2" {
					arch = fmt.Sprintf("%s: %s encoder + %s", arch, in.Encoder.ModelType, in.DecoderKind)
				}
				fmt.Fprintf(out, "model %s ok: %s, architecture %s (supported), digest %s, provider %s\n", m.Name(), args[0], arch, m.Digest(), m.Provider())
			}
			for i, img := range imgs {
				res, err := m.Caption(cmd.Context(), []gocv.Mat{img})
				if err != nil {
					return fmt.Errorf("image %s: %w", args[1+i], err)
				}
				r := res[0]
				if f.asJSON {
					b, _ := json.Marshal(struct {
						Image string `json:"image"`
						inference.Result
						Confidence float64 `json:"confidence"`
					}{args[1+i], r, sink.ConfidenceFromMeanLogProb(r.MeanLogProb)})
					fmt.Fprintln(out, string(b))
					continue
				}
				attrs := ""
				keys := make([]string, 0, len(r.Attributes))
				for k := range r.Attributes {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					attrs += fmt.Sprintf(" %s=%s(%.2f)", k, r.Attributes[k].Value, r.Attributes[k].Prob)
				}
				for _, o := range r.Objects {
					attrs += fmt.Sprintf(" %s=%v", o.Label, o.Box)
				}
				if d := r.Domain; d != nil {
					attrs += fmt.Sprintf(" in_domain=%v(distance %.4f)", d.InDomain, d.Distance)
				}
				fmt.Fprintf(out, "%s\t%s\t(confidence %.3f, %d tokens, %s)%s\n", args[1+i], r.Caption, sink.ConfidenceFromMeanLogProb(r.MeanLogProb), len(r.Tokens),
					(r.Timings.Preprocess + r.Timings.Encode + r.Timings.Decode).Round(time.Microsecond), attrs)
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

// benchResult is one batch size's figures from `lookout model bench`.
type benchResult struct {
	Batch          int     `json:"batch"`
	Captions       int     `json:"captions"`
	Seconds        float64 `json:"seconds"`
	CaptionsPerSec float64 `json:"captions_per_sec"`
	SessionSeconds float64 `json:"session_seconds"` // time inside ONNX Runtime runs
	Overhead       float64 `json:"overhead"`        // (wall - session) / session
}

func newModelBenchCmd() *cobra.Command {
	var f modelFlags
	var batches string
	var seconds float64
	var minIters int
	cmd := &cobra.Command{
		Use:   "bench DIR IMAGE...",
		Short: "Measure captions per second at several batch sizes (images are cycled to fill batches)",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef("usage: lookout model bench DIR IMAGE... (at least one image)")
			}
			var sizes []int
			for _, s := range strings.Split(batches, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || n < 1 || n > 1024 {
					return usagef("--batch %q: want comma-separated sizes in [1, 1024]", batches)
				}
				sizes = append(sizes, n)
			}
			if seconds <= 0 {
				return usagef("--seconds %v: want > 0", seconds)
			}
			imgs, err := readImages(args[1:])
			if err != nil {
				return err
			}
			defer closeMats(imgs)
			m, err := loadModelArg(args, &f)
			if err != nil {
				return err
			}
			defer m.Close()
			var results []benchResult
			for _, b := range sizes {
				r, err := benchBatch(cmd.Context(), m, imgs, b, seconds, minIters)
				if err != nil {
					return err
				}
				results = append(results, r)
				if !f.asJSON {
					fmt.Fprintf(cmd.OutOrStdout(), "batch %3d: %8.2f captions/s (%d captions in %.2fs; onnxruntime %.2fs, engine overhead %.1f%%)\n",
						r.Batch, r.CaptionsPerSec, r.Captions, r.Seconds, r.SessionSeconds, 100*r.Overhead)
				}
			}
			if f.asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{
					"model": m.Name(), "digest": m.Digest(), "provider": m.Provider(), "generation": m.Generation(), "results": results,
				})
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&batches, "batch", "1,4,16", "comma-separated batch sizes")
	cmd.Flags().Float64Var(&seconds, "seconds", 3, "minimum measuring time per batch size")
	cmd.Flags().IntVar(&minIters, "min-iters", 2, "minimum Caption calls per batch size")
	return cmd
}

func benchBatch(ctx context.Context, m *inference.Model, imgs []gocv.Mat, b int, seconds float64, minIters int) (benchResult, error) {
	batch := make([]gocv.Mat, b)
	for i := range batch {
		batch[i] = imgs[i%len(imgs)]
	}
	if _, err := m.Caption(ctx, batch); err != nil { // warm-up
		return benchResult{}, err
	}
	s0 := m.SessionTime()
	t0 := time.Now()
	n := 0
	for it := 0; it < minIters || time.Since(t0).Seconds() < seconds; it++ {
		if _, err := m.Caption(ctx, batch); err != nil {
			return benchResult{}, err
		}
		n += b
	}
	wall := time.Since(t0).Seconds()
	sess := (m.SessionTime() - s0).Seconds()
	r := benchResult{Batch: b, Captions: n, Seconds: wall, CaptionsPerSec: float64(n) / wall, SessionSeconds: sess}
	if sess > 0 {
		r.Overhead = (wall - sess) / sess
	}
	return r, nil
}
