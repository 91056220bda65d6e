package corpus

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math/rand"
	"os"
	"path/filepath"
	"sync"

	"gocv.io/x/gocv"

	"lookout/synth"
)

// DatasetOptions describes a training set for WriteDataset.
type DatasetOptions struct {
	// Domains to draw from; with several, sample i uses Domains[i%len(Domains)].
	Domains []synth.Domain
	N       int   // number of samples, > 0
	Seed    int64 // one rand.Rand seeded with Seed draws every sample in order
	Width   int   // render size; even when H264 is set
	Height  int
	// StoreWidth and StoreHeight, when both > 0, resize each stored image with
	// INTER_AREA; zero keeps the render size.
	StoreWidth, StoreHeight int
	// H264 passes all frames through one H.264 (avc1) MP4 at the render size
	// and reads them back, so images carry the codec's artefacts as the
	// pipeline's decoded frames do.
	H264 bool
	// Out is the dataset folder: Out/images/*.png, Out/captions.jsonl, Out/schema.json.
	Out string
	// Progress, when set, is called after each stored sample.
	Progress func(done, total int)
}

// DatasetLine is one line of captions.jsonl.
type DatasetLine struct {
	Image   string       `json:"image"`
	Domain  synth.Domain `json:"domain"`
	Seed    int64        `json:"seed"`
	Index   int          `json:"index"`
	Caption string       `json:"caption"`
	Slots   synth.Slots  `json:"slots"`
}

// Validate checks the options and names the bad field.
func (o DatasetOptions) Validate() error {
	if len(o.Domains) == 0 {
		return errors.New("domain: at least one domain is required")
	}
	for _, d := range o.Domains {
		if _, err := synth.ParseDomain(string(d)); err != nil {
			return err
		}
	}
	if o.N <= 0 {
		return fmt.Errorf("n %d: must be positive", o.N)
	}
	if o.Width <= 0 || o.Height <= 0 || o.Width > MaxSide || o.Height > MaxSide {
		return fmt.Errorf("size %dx%d: sides must be in 1..%d", o.Width, o.Height, MaxSide)
	}
	if o.H264 && (o.Width%2 != 0 || o.Height%2 != 0) {
		return fmt.Errorf("size %dx%d: H.264 needs even sides (or pass --h264=false)", o.Width, o.Height)
	}
	if (o.StoreWidth != 0 || o.StoreHeight != 0) && (o.StoreWidth <= 0 || o.StoreHeight <= 0 || o.StoreWidth > MaxSide || o.StoreHeight > MaxSide) {
		return fmt.Errorf("store size %dx%d: sides must be in 1..%d", o.StoreWidth, o.StoreHeight, MaxSide)
	}
	if o.Out == "" {
		return errors.New("out: an output folder is required")
	}
	return nil
}

// SchemaJSON returns the schema of every domain, as written to schema.json:
// {"driving":[{"name":..,"values":[..]},..],"surveillance":[..]}.
func SchemaJSON() ([]byte, error) {
	m := map[synth.Domain][]synth.SlotSpec{}
	for _, d := range synth.Domains {
		m[d] = synth.Schema(d)
	}
	return json.MarshalIndent(m, "", "  ")
}

// WriteDataset renders N independent samples (RenderSample) and stores them
// under Out. It is deterministic in the options.
func WriteDataset(o DatasetOptions) (err error) {
	if err := o.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(o.Out, "images"), 0o755); err != nil {
		return fmt.Errorf("dataset folder: %w", err)
	}
	schema, err := SchemaJSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.Out, "schema.json"), append(schema, '\n'), 0o644); err != nil {
		return fmt.Errorf("dataset schema: %w", err)
	}
	lines := make([]DatasetLine, o.N)
	for i := range lines {
		d := o.Domains[i%len(o.Domains)]
		lines[i] = DatasetLine{
			Image:  fmt.Sprintf("images/%s_%d_%06d.png", d, o.Seed, i),
			Domain: d, Seed: o.Seed, Index: i,
		}
	}
	frame := gocv.NewMat()
	defer frame.Close()
	next, done, err := sampleFrames(o, lines, &frame)
	if err != nil {
		return err
	}
	defer done()
	if err := writeImages(o, lines, next); err != nil {
		return err
	}
	return writeCaptions(filepath.Join(o.Out, "captions.jsonl"), lines)
}

// sampleFrames returns next, which yields sample i's frame (rendered into
// frame, and through one H.264 clip first when o.H264), filling
// lines[i].Slots; done removes what it made.
func sampleFrames(o DatasetOptions, lines []DatasetLine, frame *gocv.Mat) (next func(i int) (gocv.Mat, error), done func(), err error) {
	rng := rand.New(rand.NewSource(o.Seed))
	if !o.H264 {
		return func(i int) (gocv.Mat, error) {
			lines[i].Slots = synth.RenderSample(lines[i].Domain, rng, frame, o.Width, o.Height)
			return *frame, nil
		}, func() {}, nil
	}
	tmp, err := os.MkdirTemp(o.Out, ".h264-")
	if err != nil {
		return nil, nil, fmt.Errorf("dataset temporary folder: %w", err)
	}
	clip := filepath.Join(tmp, "samples.mp4")
	vc, err := h264RoundTrip(o, lines, rng, frame, clip)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, nil, err
	}
	return func(i int) (gocv.Mat, error) {
			if !vc.Read(frame) || frame.Empty() {
				return *frame, fmt.Errorf("dataset: the H.264 round trip returned %d of %d frames", i, o.N)
			}
			return *frame, nil
		}, func() {
			_ = vc.Close()
			_ = os.RemoveAll(tmp)
		}, nil
}

// h264RoundTrip renders every sample into one H.264 clip and opens it for
// reading back.
func h264RoundTrip(o DatasetOptions, lines []DatasetLine, rng *rand.Rand, frame *gocv.Mat, clip string) (*gocv.VideoCapture, error) {
	vw, err := gocv.VideoWriterFile(clip, "avc1", 30, o.Width, o.Height, true)
	if err != nil || !vw.IsOpened() {
		if vw != nil {
			vw.Close()
		}
		return nil, fmt.Errorf("dataset: cannot open an H.264 (avc1) writer at %s: check OpenCV has FFmpeg with libx264", clip)
	}
	for i := range lines {
		lines[i].Slots = synth.RenderSample(lines[i].Domain, rng, frame, o.Width, o.Height)
		if err := vw.Write(*frame); err != nil {
			vw.Close()
			return nil, fmt.Errorf("dataset: encode sample %d: %w", i, err)
		}
	}
	if err := vw.Close(); err != nil {
		return nil, fmt.Errorf("dataset: close %s: %w", clip, err)
	}
	vc, err := gocv.VideoCaptureFileWithAPI(clip, gocv.VideoCaptureFFmpeg)
	if err != nil {
		return nil, fmt.Errorf("dataset: read back %s: %w", clip, err)
	}
	return vc, nil
}

// writeImages stores every sample's frame as a PNG (resized to the store
// size) and sets its caption. PNG encoding dominates; two writers run
// beside the decoder.
func writeImages(o DatasetOptions, lines []DatasetLine, next func(i int) (gocv.Mat, error)) error {
	type job struct {
		img  gocv.Mat
		path string
	}
	jobs := make(chan job, 8)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var werr error
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if !gocv.IMWrite(j.path, j.img) {
					mu.Lock()
					if werr == nil {
						werr = fmt.Errorf("dataset: cannot write %s", j.path)
					}
					mu.Unlock()
				}
				j.img.Close()
			}
		}()
	}
	var loopErr error
	for i := range lines {
		src, err := next(i)
		if err != nil {
			loopErr = err
			break
		}
		var out gocv.Mat
		if o.StoreWidth > 0 && (o.StoreWidth != o.Width || o.StoreHeight != o.Height) {
			out = gocv.NewMat()
			gocv.Resize(src, &out, image.Pt(o.StoreWidth, o.StoreHeight), 0, 0, gocv.InterpolationArea)
		} else {
			out = src.Clone()
		}
		jobs <- job{img: out, path: filepath.Join(o.Out, lines[i].Image)}
		lines[i].Caption = synth.Caption(lines[i].Domain, lines[i].Slots)
		if o.Progress != nil {
			o.Progress(i+1, o.N)
		}
	}
	close(jobs)
	wg.Wait()
	if loopErr != nil {
		return loopErr
	}
	return werr
}

// writeCaptions writes captions.jsonl, one DatasetLine per sample.
func writeCaptions(path string, lines []DatasetLine) error {
	cf, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("dataset captions: %w", err)
	}
	bw := bufio.NewWriter(cf)
	enc := json.NewEncoder(bw)
	for _, l := range lines {
		if err := enc.Encode(l); err != nil {
			cf.Close()
			return fmt.Errorf("dataset captions: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		cf.Close()
		return fmt.Errorf("dataset captions: %w", err)
	}
	return cf.Close()
}
