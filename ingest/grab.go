package ingest

// #cgo pkg-config: opencv4
// #cgo CXXFLAGS: --std=c++11
// #include "grab.h"
import "C"

import (
	"unsafe"

	"gocv.io/x/gocv"
)

// capturePtr is the cv::VideoCapture behind c: gocv's VideoCapture holds
// nothing but that pointer (v0.31, pinned in go.mod). Every file and RTSP
// read goes through it, so any layout change fails the ingest tests at once
// (TestDecodePoliciesSampleTheSameFrames among them).
func capturePtr(c *gocv.VideoCapture) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(c))
}

// grabFrame decodes the next frame of c without converting it: frames that
// will not be captioned cost their decode only. False at the end of the
// input or on a failed read.
func grabFrame(c *gocv.VideoCapture) bool {
	return C.lookout_capture_grab(capturePtr(c)) != 0
}

// retrieveFrame converts the frame grabbed last into dst (BGR), reusing
// dst's buffer when it has the size already.
func retrieveFrame(c *gocv.VideoCapture, dst *gocv.Mat) bool {
	return C.lookout_capture_retrieve(capturePtr(c), unsafe.Pointer(dst.Ptr())) != 0
}
