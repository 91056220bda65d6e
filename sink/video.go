package sink

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"sync"

	"gocv.io/x/gocv"
)

// AnnotateWriter writes an H.264 MP4 (fourcc avc1) of sampled frames with
// each frame's caption drawn on a dark band at the bottom, for people who
// would rather look than read. The first frame fixes the video size; later
// frames of another size are resized to it. Safe for concurrent use.
type AnnotateWriter struct {
	path string
	fps  float64

	mu     sync.Mutex
	vw     *gocv.VideoWriter
	size   image.Point
	closed bool
	frames int
}

// NewAnnotateWriter prepares path; the file is created by the first frame.
// fps is the playback rate of the written video (sampled frames per second;
// default 1).
func NewAnnotateWriter(path string, fps float64) (*AnnotateWriter, error) {
	if path == "" {
		return nil, errors.New("video sink: path is empty: give the .mp4 file to write")
	}
	if fps <= 0 {
		fps = 1
	}
	return &AnnotateWriter{path: path, fps: fps}, nil
}

// WriteFrame draws rec's caption on a copy of img (a BGR frame; img is not
// changed) and appends it to the video.
func (a *AnnotateWriter) WriteFrame(rec Record, img gocv.Mat) error {
	if img.Empty() || img.Channels() != 3 {
		return fmt.Errorf("video sink: frame of source %q at %d ms is empty or not 3-channel BGR", rec.SourceID, rec.PTSMillis)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if a.vw == nil {
		a.size = image.Pt(img.Cols(), img.Rows())
		vw, err := gocv.VideoWriterFile(a.path, "avc1", a.fps, a.size.X, a.size.Y, true)
		if err != nil {
			return fmt.Errorf("video sink: open %s: %w", a.path, err)
		}
		if !vw.IsOpened() {
			_ = vw.Close()
			return fmt.Errorf("video sink: cannot write H.264 to %s: check that the folder exists and OpenCV has FFmpeg with libx264", a.path)
		}
		a.vw = vw
	}
	frame := gocv.NewMat()
	defer frame.Close()
	if img.Cols() != a.size.X || img.Rows() != a.size.Y {
		gocv.Resize(img, &frame, a.size, 0, 0, gocv.InterpolationLinear)
	} else {
		img.CopyTo(&frame)
	}
	Annotate(&frame, rec)
	if err := a.vw.Write(frame); err != nil {
		return fmt.Errorf("video sink: write frame to %s: %w", a.path, err)
	}
	a.frames++
	return nil
}

// Annotate draws "source  t=12.0s" and the caption on a dark band at the
// bottom of img, in place.
func Annotate(img *gocv.Mat, rec Record) {
	w, h := img.Cols(), img.Rows()
	scale := float64(h) / 720 * 0.9
	if scale < 0.35 {
		scale = 0.35
	}
	thick := max(1, int(scale*2))
	// Shrink a caption that would run off the right edge.
	if tw := gocv.GetTextSize(rec.Caption, gocv.FontHersheySimplex, scale, thick).X; tw > w-16 && tw > 0 {
		scale = max(0.3, scale*float64(w-16)/float64(tw))
		thick = max(1, int(scale*2))
	}
	line := gocv.GetTextSize("Ag", gocv.FontHersheySimplex, scale, thick).Y + int(10*scale) + 2
	band := image.Rect(0, h-2*line-6, w, h)
	roi := img.Region(band)
	dark := gocv.NewMatWithSize(roi.Rows(), roi.Cols(), roi.Type())
	gocv.AddWeighted(roi, 0.35, dark, 0.65, 0, &roi)
	dark.Close()
	roi.Close()
	head := fmt.Sprintf("%s  t=%.1fs", rec.SourceID, float64(rec.PTSMillis)/1000)
	if rec.Kind == KindGap {
		head += fmt.Sprintf("  GAP %.1fs", float64(rec.GapMillis)/1000)
	}
	gocv.PutText(img, head, image.Pt(8, h-line-8), gocv.FontHersheySimplex, scale, color.RGBA{255, 210, 0, 0}, thick)
	gocv.PutText(img, rec.Caption, image.Pt(8, h-8), gocv.FontHersheySimplex, scale, color.RGBA{255, 255, 255, 0}, thick)
}

// Frames is the number of frames written so far.
func (a *AnnotateWriter) Frames() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.frames
}

// Close finishes the MP4. Frames after Close fail with ErrClosed.
func (a *AnnotateWriter) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	if a.vw != nil {
		if err := a.vw.Close(); err != nil {
			return fmt.Errorf("video sink: close %s: %w", a.path, err)
		}
	}
	return nil
}
