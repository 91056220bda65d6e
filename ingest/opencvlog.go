package ingest

// #cgo pkg-config: opencv4
// #cgo CXXFLAGS: --std=c++11
// #include "opencvlog.h"
import "C"

import "os"

const envOpenCVLogLevel = "OPENCV_LOG_LEVEL"

// init keeps OpenCV's own log lines ("[ WARN:0@0.1] global cap.cpp ...")
// out of stderr, where they would break the JSON logs: ingest reports what
// they would say itself. OpenCV 4.6 reads OPENCV_LOG_LEVEL when the library
// loads, before Go runs, so setting the variable here would be too late;
// init sets the level through OpenCV's API instead. ERROR, not SILENT: an
// OpenCV error is rare and worth seeing. A level the user set in the
// environment is kept. TestOpenCVWarningsStayOutOfStderr checks both.
func init() {
	if _, ok := os.LookupEnv(envOpenCVLogLevel); !ok {
		C.lookout_opencv_log_errors_only()
	}
}
