package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2ESourceState: two RTSP sources that cannot open, one with a wrong
// path on the real GStreamer server, one on a closed port. /metrics shows
// both down (lookout_source_up 0, state reconnecting, outages counted,
// restarts 0), the log and /readyz say which failure each is (404 vs
// connection refused), and /readyz is 503 once both are down past the
// grace. Then a healthy synthetic source next to the wrong path keeps the
// service ready.
func TestE2ESourceState(t *testing.T) {
	const secret = "Hush-4-e2e"
	port := e2eRtspPort()
	e2e.rtspUsed = true
	e2eScript(t, 30*time.Second, "rtsp-server", "start", "--port", port, "--file", e2eSmallClip(t))
	t.Cleanup(func() { e2eScript(t, 30*time.Second, "rtsp-server", "stop", "--port", port) })
	closed := e2eFreeAddr(t)
	want404 := fmt.Sprintf("rtsp server at 127.0.0.1:%s answered 404 Not Found for path /wrong: check the path", port)
	wantRefused := fmt.Sprintf("cannot connect to %s: connection refused", closed)
	wrong := fmt.Sprintf(`{id: wrong, uri: "rtsp://viewer:%s@127.0.0.1:%s/wrong", every: 1s}`, secret, port)

	t.Run("both down", func(t *testing.T) {
		dir := t.TempDir()
		cfg, addr := e2eServiceConfig(t, dir, "", "info", fmt.Sprintf(`sources:
  - %s
  - {id: refused, uri: "rtsp://%s/cam", every: 1s}
sinks:
  jsonl: {path: %s}
`, wrong, closed, filepath.Join(dir, "out.jsonl")))
		p := e2eStartLookout(t, dir, "run", "--config", cfg)
		e2eWaitHTTP(t, p, "http://"+addr+"/healthz", 60*time.Second)

		var code int
		var body string
		deadline := time.Now().Add(40 * time.Second)
		for {
			var err error
			code, body, _, err = e2eHttpGet("http://"+addr+"/readyz", 5*time.Second)
			if err == nil && code == 503 && strings.Contains(body, "every source is down") {
				break
			}
			if p.exited() || time.Now().After(deadline) {
				t.Fatalf("/readyz did not turn 503 for both sources down (last %d %q); stderr:\n%s", code, body, e2eTail(p.stderr.String(), 30))
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Logf("/readyz %d:\n%s", code, body)
		for _, w := range []string{"source wrong reconnecting for ", want404, "source refused reconnecting for ", wantRefused} {
			if !strings.Contains(body, w) {
				t.Errorf("/readyz body lacks %q", w)
			}
		}
		m := e2eMetrics(t, addr)
		for _, id := range []string{"wrong", "refused"} {
			if v, ok := m[fmt.Sprintf(`lookout_source_up{source="%s"}`, id)]; !ok || v != 0 {
				t.Errorf("lookout_source_up{source=%q} = %v (present %v), want 0", id, v, ok)
			}
			if v := m[fmt.Sprintf(`lookout_source_state{source="%s",state="reconnecting"}`, id)]; v != 1 {
				t.Errorf("lookout_source_state{source=%q,state=\"reconnecting\"} = %v, want 1", id, v)
			}
			if v := e2eMetricFor(m, "lookout_source_outages_total", id); v < 1 {
				t.Errorf("lookout_source_outages_total{source=%q} = %v, want >= 1", id, v)
			}
			if v := e2eMetricFor(m, "lookout_source_restarts_total", id); v != 0 {
				t.Errorf("lookout_source_restarts_total{source=%q} = %v: a reader's reconnects are not pipeline restarts", id, v)
			}
		}
		if c := p.stop(os.Interrupt, 30*time.Second); c != 0 {
			t.Errorf("exit code %d after SIGINT, want 0", c)
		}
		stderr := p.stderr.String()
		for _, w := range []string{want404, wantRefused} {
			if !strings.Contains(stderr, `"message":"source down; reconnecting"`) || !strings.Contains(stderr, w) {
				t.Errorf("the log lacks an outage line saying %q; stderr:\n%s", w, e2eTail(stderr, 20))
			}
		}
		if strings.Contains(stderr+body, secret) {
			t.Error("the RTSP password reached the log or /readyz")
		}
		if strings.Contains(stderr, "[ WARN:") {
			t.Errorf("OpenCV warnings in the JSON log:\n%s", e2eTail(stderr, 20))
		}
	})

	t.Run("one healthy source keeps it ready", func(t *testing.T) {
		dir := t.TempDir()
		cfg, addr := e2eServiceConfig(t, dir, "", "info", fmt.Sprintf(`sources:
  - %s
  - {id: good, uri: "synth://surveillance?seed=3&fps=5&size=320x180", every: 1s}
sinks:
  jsonl: {path: %s}
`, wrong, filepath.Join(dir, "out.jsonl")))
		p := e2eStartLookout(t, dir, "run", "--config", cfg)
		e2eWaitHTTP(t, p, "http://"+addr+"/readyz", 60*time.Second)
		// Past the grace (10 s) the wrong path alone would make it 503.
		deadline := time.Now().Add(12 * time.Second)
		for time.Now().Before(deadline) {
			code, body, _, err := e2eHttpGet("http://"+addr+"/readyz", 5*time.Second)
			if err != nil || code != 200 {
				t.Fatalf("/readyz %d %v with a healthy source:\n%s", code, err, body)
			}
			time.Sleep(time.Second)
		}
		code, body, _, _ := e2eHttpGet("http://"+addr+"/readyz", 5*time.Second)
		t.Logf("/readyz %d:\n%s", code, body)
		if !strings.Contains(body, "source good running") || !strings.Contains(body, want404) {
			t.Errorf("/readyz body %q: want good running and wrong's 404", body)
		}
		m := e2eMetrics(t, addr)
		if m[`lookout_source_up{source="good"}`] != 1 || m[`lookout_source_up{source="wrong"}`] != 0 {
			t.Errorf("lookout_source_up: good %v wrong %v, want 1 and 0", m[`lookout_source_up{source="good"}`], m[`lookout_source_up{source="wrong"}`])
		}
		if c := p.stop(os.Interrupt, 30*time.Second); c != 0 {
			t.Errorf("exit code %d after SIGINT, want 0", c)
		}
	})
}
