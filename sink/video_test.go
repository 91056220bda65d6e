package sink

import (
	"errors"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

func TestAnnotateWriterWritesAnH264WithCaptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.mp4")
	a, err := NewAnnotateWriter(path, 2)
	if err != nil {
		t.Fatal(err)
	}
	src := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(40, 120, 40, 0), 240, 320, gocv.MatTypeCV8UC3)
	defer src.Close()
	before := src.Clone()
	defer before.Close()
	for i := 0; i < 6; i++ {
		if err := a.WriteFrame(testRecord("cam1", i), src); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	// A frame of another size is resized, not refused.
	big := gocv.NewMatWithSize(480, 640, gocv.MatTypeCV8UC3)
	defer big.Close()
	if err := a.WriteFrame(testRecord("cam1", 6), big); err != nil {
		t.Fatal(err)
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if err := a.WriteFrame(testRecord("cam1", 7), empty); err == nil {
		t.Fatal("empty frame accepted")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteFrame(testRecord("cam1", 8), src); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	// The caller's frame is untouched.
	diff := gocv.NewMat()
	defer diff.Close()
	gocv.AbsDiff(src, before, &diff)
	gray := gocv.NewMat()
	defer gray.Close()
	gocv.CvtColor(diff, &gray, gocv.ColorBGRToGray)
	if gocv.CountNonZero(gray) != 0 {
		t.Fatal("WriteFrame drew on the caller's frame")
	}

	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	if fourcc := vc.CodecString(); fourcc != "h264" && fourcc != "avc1" {
		t.Logf("codec reported as %q", fourcc)
	}
	frame := gocv.NewMat()
	defer frame.Close()
	n := 0
	for vc.Read(&frame) && !frame.Empty() {
		if frame.Cols() != 320 || frame.Rows() != 240 {
			t.Fatalf("frame %d is %dx%d, want 320x240", n, frame.Cols(), frame.Rows())
		}
		if n == 0 {
			// The caption band darkens the bottom and the text lightens it:
			// the bottom rows differ from the plain green top.
			top := frame.GetVecbAt(10, 160)
			low := frame.Region(image.Rect(0, 200, 320, 240))
			m := low.Mean()
			low.Close()
			if abs(m.Val2-float64(top[1])) < 10 {
				t.Fatalf("no caption band: top green %d, bottom mean green %.1f", top[1], m.Val2)
			}
		}
		n++
	}
	if n != 7 {
		t.Fatalf("read back %d frames, want 7", n)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("video file: %v", err)
	}
	_ = color.RGBA{}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestAnnotateWriterBadPath(t *testing.T) {
	if _, err := NewAnnotateWriter("", 1); err == nil {
		t.Fatal("empty path accepted")
	}
	a, _ := NewAnnotateWriter(filepath.Join(t.TempDir(), "no", "such", "dir", "x.mp4"), 1)
	img := gocv.NewMatWithSize(64, 64, gocv.MatTypeCV8UC3)
	defer img.Close()
	if err := a.WriteFrame(testRecord("cam1", 0), img); err == nil {
		t.Fatal("a path in a missing folder accepted")
	}
	_ = a.Close()
}
