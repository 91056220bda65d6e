package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2ESlowBroker: the broker process is paused (SIGSTOP) for 20 s, so
// produce requests hang instead of failing fast, while two cameras and a
// file replay run; then it resumes. The documented policy holds: nothing is
// lost (every record of the reference JSONL sink reaches Kafka, per-source
// order kept), the service stays responsive (/healthz) throughout, and live
// frames that could not be queued are dropped and counted, not queued stale.
func TestE2ESlowBroker(t *testing.T) {
	addr := e2eStartKafka(t)
	topic := e2eUniqueTopic("e2e-slow")
	e2eCreateTopic(t, addr, topic)
	pidB, err := os.ReadFile(filepath.Join(e2e.root, ".state", "kafka", e2eKafkaPort()+".pid"))
	if err != nil {
		t.Fatalf("broker pid file: %v", err)
	}
	brokerPID, err := strconv.Atoi(strings.TrimSpace(string(pidB)))
	if err != nil {
		t.Fatalf("broker pid %q: %v", pidB, err)
	}
	video := e2eSmallClip(t)
	dir := t.TempDir()
	ref := filepath.Join(dir, "reference.jsonl")
	cfg, httpAddr := e2eServiceConfig(t, dir, "", "info", fmt.Sprintf(`sources:
  - {id: road, uri: "synth://driving?seed=8&fps=10&size=320x180", every: 1s}
  - {id: gate, uri: "synth://surveillance?seed=9&fps=10&size=320x180", every: 1s}
  - {id: replay, uri: "%s", every: 1s, realtime: true}
sinks:
  kafka: {enabled: true, brokers: ["%s"], topic: %s}
  jsonl: {path: %s}
`, video, addr, topic, ref))
	p := e2eStartLookout(t, dir, "run", "--config", cfg)
	e2eWaitHTTP(t, p, "http://"+httpAddr+"/healthz", 60*time.Second)
	time.Sleep(3 * time.Second)

	if err := syscall.Kill(brokerPID, syscall.SIGSTOP); err != nil {
		t.Fatalf("pausing the broker: %v", err)
	}
	paused := true
	t.Cleanup(func() {
		if paused {
			_ = syscall.Kill(brokerPID, syscall.SIGCONT)
		}
	})
	var worst time.Duration
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		code, _, took, err := e2eHttpGet("http://"+httpAddr+"/healthz", 2*time.Second)
		if err != nil || code != 200 {
			t.Fatalf("/healthz failed while the broker was paused: %d %v", code, err)
		}
		worst = max(worst, took)
	}
	if err := syscall.Kill(brokerPID, syscall.SIGCONT); err != nil {
		t.Fatalf("resuming the broker: %v", err)
	}
	paused = false
	t.Logf("broker paused 20s; worst /healthz %s", worst)

	// Let the replay finish and the backlog drain, then stop gracefully.
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		done := false
		for _, r := range e2eReadJSONL(t, ref) {
			done = done || (r.Rec.SourceID == "replay" && r.Rec.PTSMillis == 39000)
		}
		if done {
			break
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("the replay did not finish within 120s after the pause; stderr:\n%s", e2eTail(p.stderr.String(), 30))
		}
	}
	m := e2eMetrics(t, httpAddr)
	if code := p.stop(syscall.SIGINT, 90*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT; stderr:\n%s", code, e2eTail(p.stderr.String(), 30))
	}
	got := e2eReadTopic(t, addr, topic)
	want := e2eReadJSONL(t, ref)
	lost, dups, distinct := e2eCompareDelivery(t, got, want)
	dropped := e2eMetricSum(m, "lookout_source_frames_dropped_total") + e2eMetricSum(m, "lookout_source_frames_stale_total")
	t.Logf("produced %d, in Kafka %d (%d distinct), lost %d, duplicates %d, live frames dropped or stale (counted) %g",
		len(want), len(got), distinct, lost, dups, dropped)
	if lost > 0 {
		t.Errorf("%d records lost while the broker was slow", lost)
	}
	var replay []int64
	for _, r := range got {
		if r.Rec.SourceID == "replay" && r.Rec.Kind == "caption" {
			replay = append(replay, r.Rec.PTSMillis)
		}
	}
	e2eExpectEachSecond(t, "replay after a paused broker", replay, 40)
}
