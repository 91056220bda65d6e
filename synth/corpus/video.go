// Package corpus makes and scores offline material from synthetic scenes
// (lookout scenes video|dataset|score): H.264 clips with a truth file per
// frame, image datasets for training, and the scoring of predicted captions
// against the truth. The live synth:// source needs only package synth.
package corpus

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gocv.io/x/gocv"

	"lookout/synth"
)

// MaxSide bounds rendered frame sides (8K).
const MaxSide = 8192

// VideoOptions describes a clip for WriteVideo.
type VideoOptions struct {
	Domain   synth.Domain
	Seed     int64
	Duration time.Duration // > 0
	Width    int           // > 0, even (H.264 4:2:0)
	Height   int           // > 0, even
	FPS      float64       // > 0
	// Out is the MP4 path; the truth goes to TruthPath(Out).
	Out string
	// MinHold and MaxHold bound how long the content stays fixed
	// (NewSceneHolding). Zero: 2-8 s, as NewScene.
	MinHold, MaxHold time.Duration
	// Script, when set, gives the content instead (synth.NewScriptedScene);
	// MinHold and MaxHold are then ignored.
	Script []synth.Step
	// Progress, when set, is called after each frame with frames done and total.
	Progress func(done, total int)
}

// TruthLine is one line of a truth JSONL file: the true caption and slots of
// one frame of a rendered clip.
type TruthLine struct {
	Frame   int         `json:"frame"`
	PTSMs   int64       `json:"pts_ms"`
	Caption string      `json:"caption"`
	Slots   synth.Slots `json:"slots"`
}

// TruthPath returns the truth file that goes with the clip out:
// "X.mp4" -> "X.truth.jsonl" (any extension is replaced).
func TruthPath(out string) string {
	return strings.TrimSuffix(out, filepath.Ext(out)) + ".truth.jsonl"
}

// FrameCount returns the number of frames of a clip of duration d at fps:
// round(d*fps), at least 1.
func FrameCount(d time.Duration, fps float64) int {
	return max(1, int(math.Round(d.Seconds()*fps)))
}

// FramePTS returns frame i's presentation time in milliseconds, round(i*1000/fps).
func FramePTS(i int, fps float64) int64 {
	return int64(math.Round(float64(i) * 1000 / fps))
}

// Validate checks the options and names the bad field.
func (o VideoOptions) Validate() error {
	if _, err := synth.ParseDomain(string(o.Domain)); err != nil {
		return err
	}
	if o.Duration <= 0 {
		return fmt.Errorf("duration %v: must be positive", o.Duration)
	}
	if !(o.FPS > 0) || o.FPS > 1000 {
		return fmt.Errorf("fps %v: must be in (0, 1000]", o.FPS)
	}
	if o.Width <= 0 || o.Height <= 0 || o.Width > MaxSide || o.Height > MaxSide {
		return fmt.Errorf("size %dx%d: sides must be in 1..%d", o.Width, o.Height, MaxSide)
	}
	if o.Width%2 != 0 || o.Height%2 != 0 {
		return fmt.Errorf("size %dx%d: H.264 needs even sides", o.Width, o.Height)
	}
	if o.Out == "" {
		return errors.New("out: an output path is required")
	}
	return nil
}

// WriteVideo renders the scene (Domain, Seed) into an H.264 MP4 at Out
// (OpenCV VideoWriter, fourcc avc1) and writes one TruthLine per frame to
// TruthPath(Out). Frame i shows the scene at i/FPS seconds.
func WriteVideo(o VideoOptions) (frames int, err error) {
	if err := o.Validate(); err != nil {
		return 0, err
	}
	minHold, maxHold := o.MinHold, o.MaxHold
	if minHold == 0 && maxHold == 0 {
		minHold, maxHold = synth.DefaultMinHold, synth.DefaultMaxHold
	}
	scene, err := synth.NewSceneHolding(o.Domain, o.Seed, minHold, maxHold)
	if len(o.Script) > 0 {
		scene, err = synth.NewScriptedScene(o.Domain, o.Seed, o.Script)
	}
	if err != nil {
		return 0, err
	}
	truthPath := TruthPath(o.Out)
	tf, err := os.Create(truthPath)
	if err != nil {
		return 0, fmt.Errorf("truth file: %w", err)
	}
	defer func() {
		if cerr := tf.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("truth file %s: %w", truthPath, cerr)
		}
	}()
	vw, err := gocv.VideoWriterFile(o.Out, "avc1", o.FPS, o.Width, o.Height, true)
	if err != nil || !vw.IsOpened() {
		if vw != nil {
			vw.Close()
		}
		return 0, fmt.Errorf("video %s: cannot open an H.264 (avc1) writer: check the path is writable and OpenCV has FFmpeg with libx264", o.Out)
	}
	defer func() {
		if cerr := vw.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("video %s: %w", o.Out, cerr)
		}
	}()
	bw := bufio.NewWriter(tf)
	enc := json.NewEncoder(bw)
	frame := gocv.NewMat()
	defer frame.Close()
	n := FrameCount(o.Duration, o.FPS)
	for i := 0; i < n; i++ {
		t := time.Duration(float64(i) / o.FPS * float64(time.Second))
		slots := scene.Render(t, &frame, o.Width, o.Height)
		if err := vw.Write(frame); err != nil {
			return i, fmt.Errorf("video %s: frame %d: %w", o.Out, i, err)
		}
		line := TruthLine{Frame: i, PTSMs: FramePTS(i, o.FPS), Caption: synth.Caption(o.Domain, slots), Slots: slots}
		if err := enc.Encode(line); err != nil {
			return i, fmt.Errorf("truth file %s: %w", truthPath, err)
		}
		if o.Progress != nil {
			o.Progress(i+1, n)
		}
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("truth file %s: %w", truthPath, err)
	}
	return n, nil
}
