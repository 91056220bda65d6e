package ingest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

// OpenCV's warnings would land in the JSON stderr. The package's init sets
// OPENCV_LOG_LEVEL=ERROR when the user did not: this runs the test binary
// again without the variable, opens a missing file through every backend
// (which makes OpenCV 4.6 warn), and finds no warning; with the user's own
// WARNING level the same open does warn, so the check can fail.
func TestOpenCVWarningsStayOutOfStderr(t *testing.T) {
	if os.Getenv("LOOKOUT_OPENCV_LOG_CHILD") == "1" {
		c, err := gocv.VideoCaptureFile(filepath.Join(os.TempDir(), "lookout-no-such-video.mp4"))
		if err == nil {
			_ = c.Close()
		}
		return
	}
	run := func(level string) string {
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, envOpenCVLogLevel+"=") {
				env = append(env, kv)
			}
		}
		env = append(env, "LOOKOUT_OPENCV_LOG_CHILD=1")
		if level != "" {
			env = append(env, envOpenCVLogLevel+"="+level)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestOpenCVWarningsStayOutOfStderr$", "-test.count=1")
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child test (%s=%q): %v: %s", envOpenCVLogLevel, level, err, out)
		}
		return string(out)
	}
	if out := run("WARNING"); !strings.Contains(out, "[ WARN:") {
		t.Fatalf("with %s=WARNING the bad open gave no OpenCV warning, so this test proves nothing; output:\n%s", envOpenCVLogLevel, out)
	}
	if out := run(""); strings.Contains(out, "[ WARN:") {
		t.Errorf("OpenCV warnings reached stderr with %s unset:\n%s", envOpenCVLogLevel, out)
	}
}
