package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"lookout/inference"
)

// The graph files a pull copies out of an ONNX folder: the engine's files
// only, so that the quantised and fp16 variants published beside them
// (onnx/*_quantized.onnx, *_fp16.onnx) do not travel.
var pullGraphs = []string{
	"encoder_model.onnx", "decoder_model_merged.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx",
	"attributes_model.onnx",
	"vision_encoder.onnx", "embed_tokens.onnx", // Florence-2 (with encoder_model and decoder_model_merged)
}

// pullWeights are checkpoint files an ONNX folder does not need.
var pullWeights = regexp.MustCompile(`\.(safetensors|bin|h5|msgpack|ckpt|pt|pth|ot)$`)

// hubID is a Hugging Face repository id: owner/name.
var hubID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$`)

type pullKind int

const (
	pullONNX pullKind = iota
	pullCheckpoint
)

func newModelPullCmd() *cobra.Command {
	var f modelFlags
	var out string
	cmd := &cobra.Command{
		Use:   "pull SRC [--out DIR]",
		Short: "Fetch a model into a folder lookout runs: a local ONNX folder, a local PyTorch checkpoint (exported) or a Hugging Face hub id",
		Long: `SRC is one of:
  a local ONNX folder (optimum's image-to-text-with-past export, or a Florence-2 folder): copied,
    the engine's graphs only (quantised and fp16 variants beside them are left out);
  a local PyTorch VisionEncoderDecoder checkpoint folder (config.json + model.safetensors):
    exported with the pinned optimum and lookout's optimizer pass (python -m lookout_train export);
  a hub id (owner/name): downloaded with huggingface_hub (needs internet), then handled as above.
The result is verified as 'lookout model check' does, and its model card line printed.
Exporting and the hub need the Python toolchain: run from the lookout checkout after
'make deps-py', or set LOOKOUT_PYTHON and LOOKOUT_TRAINING (the training/ folder).`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("model pull takes one source (a folder or a hub id), got %d arguments", len(args))
			}
			opts, err := f.options()
			if err != nil {
				return err
			}
			return runPull(cmd.ErrOrStderr(), cmd.OutOrStdout(), args[0], out, opts)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&out, "out", "", "destination folder, new or empty (default models/<name>)")
	return cmd
}

// runPull fetches src into out, verifies it and prints the card line.
func runPull(log, stdout io.Writer, src, out string, opts inference.Options) error {
	local := src
	st, statErr := os.Stat(src)
	if statErr != nil {
		if !errors.Is(statErr, os.ErrNotExist) || !hubID.MatchString(src) || strings.HasPrefix(src, ".") {
			return usagef("model pull %s: %s; pass a model folder on this machine or a hub id (owner/name)", src, errText(statErr))
		}
	} else if !st.IsDir() {
		return usagef("model pull %s: not a directory; pass a model folder or a hub id (owner/name)", src)
	}
	if out == "" {
		out = filepath.Join("models", filepath.Base(strings.TrimRight(src, "/")))
	}
	if err := checkPullOut(out); err != nil {
		return err
	}
	if statErr != nil {
		tmp, err := os.MkdirTemp("", "lookout-pull-")
		if err != nil {
			return fmt.Errorf("model pull: scratch folder: %v", err)
		}
		defer os.RemoveAll(tmp)
		fmt.Fprintf(log, "pull: downloading %s from huggingface.co\n", src)
		if err := runToolchain(log, "the hub download", "hub", "pull", "--repo", src, "--dest", tmp); err != nil {
			return err
		}
		local = tmp
	}
	kind, err := classifyPull(local)
	if err != nil {
		if statErr != nil {
			return fmt.Errorf("model pull %s: the hub repository %v", src, err)
		}
		return usagef("model pull %s: %v", src, err)
	}
	switch kind {
	case pullONNX:
		fmt.Fprintf(log, "pull: copying the ONNX folder %s -> %s\n", src, out)
		err = copyONNXFolder(local, out)
	case pullCheckpoint:
		fmt.Fprintf(log, "pull: exporting the PyTorch checkpoint %s -> %s (optimum image-to-text-with-past + optimizer pass)\n", src, out)
		err = runToolchain(log, "the export", "export", "--ckpt", local, "--out", out)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "pull: verifying %s as model check does\n", out)
	card, err := verifyPulled(out, opts)
	if err != nil {
		return fmt.Errorf("model pull %s: the result in %s fails model check: %w", src, out, err)
	}
	fmt.Fprintf(stdout, "%s (from %s)\n", card, src)
	return nil
}

// checkPullOut refuses a destination holding files: a pull never mixes two models.
func checkPullOut(out string) error {
	ents, err := os.ReadDir(out)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return usagef("model pull: --out %s: %s", out, errText(err))
	case len(ents) > 0:
		return usagef("model pull: --out %s is not empty; pass a new folder", out)
	}
	return nil
}

// classifyPull says whether dir is an ONNX folder or a PyTorch checkpoint.
func classifyPull(dir string) (pullKind, error) {
	has := func(p ...string) bool {
		_, err := os.Stat(filepath.Join(append([]string{dir}, p...)...))
		return err == nil
	}
	if !has("config.json") {
		return 0, errors.New("has no config.json: not a Hugging Face model folder")
	}
	for _, g := range []string{"encoder_model.onnx", "vision_encoder.onnx"} {
		if has(g) || has("onnx", g) {
			return pullONNX, nil
		}
	}
	if has("model.safetensors") || has("pytorch_model.bin") || has("model.safetensors.index.json") {
		return pullCheckpoint, nil
	}
	return 0, errors.New("holds neither ONNX graphs (encoder_model.onnx) nor PyTorch weights (model.safetensors, pytorch_model.bin)")
}

// copyONNXFolder copies the root's small files (configs, tokenizer, README)
// and the engine's graphs; a VisionEncoderDecoder's onnx/ graphs land at the
// root (the engine's layout), Florence-2's stay in onnx/.
func copyONNXFolder(src, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("model pull: --out %s: %s", out, errText(err))
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("model pull: %s: %s", src, errText(err))
	}
	for _, e := range ents {
		if e.Type().IsRegular() && !pullWeights.MatchString(e.Name()) && !strings.HasSuffix(e.Name(), ".onnx") {
			if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(out, e.Name())); err != nil {
				return err
			}
		}
	}
	graphSrc, graphOut := src, out
	if _, err := os.Stat(filepath.Join(src, "encoder_model.onnx")); err != nil {
		graphSrc = filepath.Join(src, "onnx")
		if _, err := os.Stat(filepath.Join(graphSrc, "vision_encoder.onnx")); err == nil {
			graphOut = filepath.Join(out, "onnx")
		}
	}
	if err := os.MkdirAll(graphOut, 0o755); err != nil {
		return fmt.Errorf("model pull: %s: %s", graphOut, errText(err))
	}
	for _, g := range pullGraphs {
		// External weights (a graph over 2 GB) travel with their graph.
		for _, name := range []string{g, g + "_data", g + ".data", strings.TrimSuffix(g, ".onnx") + ".onnx_data"} {
			p := filepath.Join(graphSrc, name)
			if _, err := os.Stat(p); err == nil {
				if err := copyFile(p, filepath.Join(graphOut, name)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("model pull: %s: %s", src, errText(err))
	}
	defer in.Close()
	o, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("model pull: %s: %s", dst, errText(err))
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return fmt.Errorf("model pull: copy to %s: %v", dst, err)
	}
	if err := o.Close(); err != nil {
		return fmt.Errorf("model pull: copy to %s: %v", dst, err)
	}
	return nil
}

// verifyPulled runs model check's checks and returns the model card line.
func verifyPulled(dir string, opts inference.Options) (string, error) {
	arch, ok, err := inference.Architecture(dir)
	if err == nil && !ok {
		err = fmt.Errorf("architecture %s is not supported (%s)", arch, supportedLine(arch))
	}
	if err != nil {
		return "", err
	}
	m, err := inference.Load(dir, opts)
	if err != nil {
		return "", err
	}
	defer m.Close()
	return modelCard(m.Info(), dir), nil
}

// modelCard is one line: what the folder is, its size and digest, and the
// license its README.md (the hub's model card) declares.
func modelCard(in inference.ModelInfo, dir string) string {
	var total int64
	for _, n := range in.FileBytes {
		total += n
	}
	arch := "Florence-2 (DaViT + BART)"
	if in.Architecture != "florence2" {
		arch = fmt.Sprintf("VisionEncoderDecoder %s + %s (%s decoder)", in.Encoder.ModelType, in.Decoder.ModelType, in.Layout)
	}
	lic := "not stated"
	if b, err := os.ReadFile(filepath.Join(dir, "README.md")); err == nil {
		if m := regexp.MustCompile(`(?m)^license:\s*(\S+)`).FindSubmatch(b); m != nil {
			lic = string(m[1])
		}
	}
	return fmt.Sprintf("model %s: %s, vocab %d, %.1f MB of graphs, digest %s, license %s, in %s",
		in.Name, arch, in.Decoder.VocabSize, float64(total)/1e6, in.Digest, lic, dir)
}

// runToolchain runs python -m lookout_train ARGS. Lines the toolchain marks
// as progress ("export: ...", "pull: ...") are passed on; the rest is kept
// and its tail shown only when the run fails. A line starting "error: " is
// the toolchain's one-line diagnosis and becomes the error.
func runToolchain(log io.Writer, what string, args ...string) error {
	py, training, err := findToolchain()
	if err != nil {
		return err
	}
	cmd := exec.Command(py, append([]string{"-m", "lookout_train"}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+training, "PYTHONUNBUFFERED=1")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("model pull: cannot start %s: %v", py, err)
	}
	var rest []string
	diag := ""
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "error: "):
				diag = strings.TrimPrefix(line, "error: ")
			case strings.HasPrefix(line, "export: "), strings.HasPrefix(line, "pull: "):
				fmt.Fprintln(log, line)
			default:
				if rest = append(rest, line); len(rest) > 20 {
					rest = rest[1:]
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	werr := cmd.Wait()
	pw.Close()
	<-done
	if werr == nil {
		return nil
	}
	if diag != "" {
		return errors.New("model pull: " + diag)
	}
	return fmt.Errorf("model pull: %s failed (%v); its last lines:\n%s", what, werr, strings.Join(rest, "\n"))
}

// findToolchain finds the venv's python and the training/ folder: the
// environment's LOOKOUT_PYTHON / LOOKOUT_TRAINING, else the lookout checkout
// above the working directory or the binary (.state/venv from make deps-py).
func findToolchain() (py, training string, err error) {
	py, training = os.Getenv("LOOKOUT_PYTHON"), os.Getenv("LOOKOUT_TRAINING")
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, s := range starts {
		for d := s; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "training", "lookout_train", "__init__.py")); err == nil {
				if training == "" {
					training = filepath.Join(d, "training")
				}
				if py == "" {
					py = filepath.Join(d, ".state", "venv", "bin", "python")
				}
			}
			if filepath.Dir(d) == d || (py != "" && training != "") {
				break
			}
		}
	}
	if training == "" {
		return "", "", errors.New("model pull: the Python toolchain (training/lookout_train) is not found; run from the lookout checkout or set LOOKOUT_TRAINING")
	}
	if _, err := os.Stat(py); err != nil {
		return "", "", fmt.Errorf("model pull: python %s: %s; run make deps-py (scripts/venv.sh) or set LOOKOUT_PYTHON", py, errText(err))
	}
	return py, training, nil
}
