package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// clipDir holds clips made once per test binary run.
var (
	clipDir  string
	clipMu   sync.Mutex
	clipMade = map[string]string{}
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "ingest-clips-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingest tests: cannot make a temp dir:", err)
		os.Exit(1)
	}
	clipDir = d
	code := m.Run()
	_ = os.RemoveAll(d)
	os.Exit(code)
}

// clip returns an H.264 MP4 of ffmpeg's testsrc, made once per run:
// seconds long at fps, 160x120 unless size is given, GOP one second, no
// B-frames. faststart puts the index first (a truncated copy still opens).
func clip(t testing.TB, seconds int, fps int, faststart bool) string {
	t.Helper()
	name := fmt.Sprintf("testsrc-%ds-%dfps-fs%v.mp4", seconds, fps, faststart)
	clipMu.Lock()
	defer clipMu.Unlock()
	if p, ok := clipMade[name]; ok {
		return p
	}
	p := filepath.Join(clipDir, name)
	args := []string{"-v", "error", "-y", "-f", "lavfi",
		"-i", fmt.Sprintf("testsrc=duration=%d:size=160x120:rate=%d", seconds, fps),
		"-c:v", "libx264", "-preset", "ultrafast", "-g", strconv.Itoa(fps), "-bf", "0", "-pix_fmt", "yuv420p"}
	if faststart {
		args = append(args, "-movflags", "+faststart")
	}
	args = append(args, p)
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("making test clip with ffmpeg (Debian package ffmpeg; scripts/deps-apt.sh installs it): %v: %s", err, out)
	}
	clipMade[name] = p
	return p
}

// readAll drains src until ErrEndOfInput and returns the PTS of every frame.
func readAll(t testing.TB, src Source) []time.Duration {
	t.Helper()
	var pts []time.Duration
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		f, err := src.Next(ctx)
		if errors.Is(err, ErrEndOfInput) {
			return pts
		}
		if err != nil {
			t.Fatalf("Next after %d frames: %v", len(pts), err)
		}
		if f.Image.Empty() {
			t.Fatalf("frame %d (pts %s) has an empty image", f.Seq, f.PTS)
		}
		pts = append(pts, f.PTS)
		_ = f.Close()
	}
}

// syncBuffer is a log sink that tests can read while sources write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freePort returns a TCP port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// rtspServer drives the repo's scripts/rtsp-server on one port.
type rtspServer struct {
	t    testing.TB
	port int
	file string
}

func (s *rtspServer) run(verb string) {
	s.t.Helper()
	args := []string{verb, "--port", strconv.Itoa(s.port)}
	if verb == "start" {
		args = append(args, "--file", s.file)
	}
	cmd := exec.Command("../scripts/rtsp-server", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("scripts/rtsp-server %s: %v: %s (needs Debian packages gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)",
			strings.Join(args, " "), err, out)
	}
}

func (s *rtspServer) pid() int {
	b, err := os.ReadFile(filepath.Join("..", ".state", "rtsp", fmt.Sprintf("server-%d.pid", s.port)))
	if err != nil {
		s.t.Fatalf("reading the rtsp server's pid file: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		s.t.Fatalf("rtsp server pid file: %v", err)
	}
	return n
}

func startRTSPServer(t testing.TB, file string) *rtspServer {
	t.Helper()
	s := &rtspServer{t: t, port: freePort(t), file: file}
	s.run("start")
	t.Cleanup(func() { s.run("stop") })
	return s
}
