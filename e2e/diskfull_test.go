package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lookout/sink"
)

// TestE2EDiskFullDuringOutage: the broker is down and the spool's file system fills up (a 96 KiB
// tmpfs the test mounts; mounting needs root, which CI has) while a replay is in progress.
// lookout keeps running and keeps the records it cannot write yet (the replay blocks, the live
// source drops frames and counts them), and when the broker is back the spool drains, room comes
// back and every record of the replay reaches Kafka, in order.
func TestE2EDiskFullDuringOutage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting the tmpfs needs root (CI runs as root)")
	}
	addr := e2eStartKafka(t)
	topic := e2eUniqueTopic("e2e-diskfull")
	e2eCreateTopic(t, addr, topic)
	e2eStopKafka(t)
	video := e2eSmallClip(t) // 40 s
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", dataDir).CombinedOutput(); err != nil {
		t.Fatalf("mount a 96 KiB tmpfs on %s: %v: %s", dataDir, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dataDir).Run() })
	cfg, httpAddr := e2eServiceConfig(t, dir, dataDir, "info", fmt.Sprintf(`sources:
  - {id: live, uri: "synth://driving?seed=8&fps=10&size=320x180", every: 100ms}
  - {id: replay, uri: "%s", every: 250ms, realtime: true}
sinks:
  kafka: {enabled: true, brokers: ["%s"], topic: %s}
`, video, addr, topic))
	p := e2eStartLookout(t, dir, "run", "--config", cfg)
	e2eWaitHTTP(t, p, "http://"+httpAddr+"/healthz", 60*time.Second)
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(p.stderr.String(), "no space left on device"); time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) || p.exited() {
			t.Fatalf("the spool's disk did not fill within 60s; stderr:\n%s", e2eTail(p.stderr.String(), 20))
		}
	}
	fullAt := time.Now()
	time.Sleep(10 * time.Second)
	if p.exited() {
		t.Fatalf("lookout exited on a full disk; stderr:\n%s", e2eTail(p.stderr.String(), 20))
	}
	if strings.Contains(p.stderr.String(), "source ended") {
		t.Fatal("the 40 s replay (paced in real time) ended before the disk was full for 10 s: the test proves nothing")
	}
	m := e2eMetrics(t, httpAddr)
	code, _, _, _ := e2eHttpGet("http://"+httpAddr+"/healthz", time.Second)
	t.Logf("disk full for 10s: /healthz %d, spooled records %g, live frames dropped %g", code,
		e2eMetricSum(m, "lookout_spool_records"), e2eMetricFor(m, "lookout_source_frames_dropped_total", "live"))
	if code != 200 {
		t.Errorf("/healthz answered %d with a full disk, want 200 (the process is alive and waits)", code)
	}
	e2eStartKafka(t)
	upAt := time.Now()
	for {
		m = e2eMetrics(t, httpAddr)
		if strings.Contains(p.stderr.String(), `"source":"replay"`) && strings.Contains(p.stderr.String(), "source ended") &&
			e2eMetricSum(m, "lookout_spool_records") == 0 {
			break
		}
		if p.exited() || time.Since(upAt) > 120*time.Second {
			t.Fatalf("the replay did not finish and drain within 120s of the broker's return; stderr:\n%s", e2eTail(p.stderr.String(), 30))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("disk full %.1fs before the broker came back; replay finished and the spool drained %.1fs after", upAt.Sub(fullAt).Seconds(), time.Since(upAt).Seconds())
	if code := p.stop(syscall.SIGINT, 60*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGINT, want 0; stderr:\n%s", code, e2eTail(p.stderr.String(), 30))
	}
	var pts []int64
	for _, r := range e2eReadTopic(t, addr, topic) {
		if r.Rec.SourceID == "replay" && r.Rec.Kind == sink.KindCaption {
			pts = append(pts, r.Rec.PTSMillis)
		}
	}
	seen := map[int64]bool{}
	var first []int64
	for _, v := range pts {
		if !seen[v] {
			seen[v] = true
			first = append(first, v)
		}
	}
	var missing []int64
	for k := int64(0); k < 160; k++ {
		want := (k*250 + 99) / 100 * 100 // the first 10 fps frame at or after each 250 ms
		if !seen[want] {
			missing = append(missing, want)
		}
	}
	t.Logf("replay: %d records in Kafka, %d distinct (want 160), %d duplicates, missing %v", len(pts), len(first), len(pts)-len(first), missing)
	if len(missing) > 0 || len(first) != 160 {
		t.Errorf("replay records lost: missing pts %v (%d distinct)", missing, len(first))
	}
	for i := 1; i < len(first); i++ {
		if first[i] < first[i-1] {
			t.Fatalf("replay out of order in Kafka at %d: %d after %d", i, first[i], first[i-1])
		}
	}
	if e2ePanicRe.MatchString(p.stderr.String()) {
		t.Errorf("output mentions a panic")
	}
}
