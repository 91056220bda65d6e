package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2ESourcesAddedAndRemovedWhileRunning: a running service gains and
// loses sources through POST/DELETE /sources (bearer token required when the
// server is bound off loopback) and through SIGHUP after the config file
// changed, while the source that stays keeps flowing.
func TestE2ESourcesAddedAndRemovedWhileRunning(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "records.jsonl")
	_, port, _ := strings.Cut(e2eFreeAddr(t), ":")
	cfgPath := filepath.Join(dir, "lookout.yaml")
	const token = "reload-test-token"
	config := func(sources ...string) string {
		return fmt.Sprintf(`data_dir: %s
log: {level: info, format: json}
http: {listen: "0.0.0.0:%s", token: %s}
model: {dir: %s}
pipeline: {max_wait: 20ms}
sources:
%s
sinks: {jsonl: {path: %s}}
`, filepath.Join(dir, "data"), port, token, e2eTinyModel(), strings.Join(sources, "\n"), out)
	}
	steady := "  - {id: steady, uri: 'synth://driving?seed=1&fps=10&size=320x180', fps: 5}"
	e2eWriteFile(t, cfgPath, config(steady))
	p := e2eStartLookout(t, dir, "run", "--config", cfgPath)
	base := "http://127.0.0.1:" + port
	e2eWaitHTTP(t, p, base+"/healthz", 60*time.Second)

	count := func(src string) int {
		n := 0
		for _, r := range e2eReadJSONL(t, out) {
			if r.Rec.SourceID == src && r.Rec.Kind == "caption" {
				n++
			}
		}
		return n
	}
	waitFor := func(src string, atLeast int, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for count(src) < atLeast {
			if time.Now().After(deadline) || p.exited() {
				t.Fatalf("source %s: %d records, want >= %d within %s; stderr:\n%s", src, count(src), atLeast, within, e2eTail(p.stderr.String(), 20))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	request := func(method, path, body, bearer string) int {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor("steady", 3, 60*time.Second)

	added := `{"id": "added", "uri": "synth://surveillance?seed=2&fps=10&size=320x180", "fps": 5}`
	if code := request(http.MethodPost, "/sources", added, ""); code != http.StatusUnauthorized {
		t.Fatalf("POST /sources without token: status %d, want 401", code)
	}
	if code := request(http.MethodPost, "/sources", added, token); code != http.StatusCreated {
		t.Fatalf("POST /sources: status %d, want 201; stderr:\n%s", code, e2eTail(p.stderr.String(), 10))
	}
	if code := request(http.MethodPost, "/sources", `{"id": "bad", "uri": "ftp://x"}`, token); code != http.StatusBadRequest {
		t.Fatalf("POST /sources with a bad URI: status %d, want 400", code)
	}
	waitFor("added", 3, 30*time.Second)
	if code := request(http.MethodDelete, "/sources?id=added", "", token); code != http.StatusNoContent {
		t.Fatalf("DELETE /sources: status %d, want 204", code)
	}
	afterDelete := count("added")
	steadyBefore := count("steady")

	e2eWriteFile(t, cfgPath, config(steady, "  - {id: hup, uri: 'synth://driving?seed=3&fps=10&size=320x180', fps: 5}"))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("hup", 3, 30*time.Second)
	waitFor("steady", steadyBefore+3, 30*time.Second)
	if n := count("added"); n > afterDelete+1 {
		t.Errorf("removed source kept producing: %d records after DELETE, %d now", afterDelete, n)
	}
	if code := p.stop(syscall.SIGINT, 60*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT; stderr:\n%s", code, e2eTail(p.stderr.String(), 20))
	}
	// The steady source was never restarted by the reloads: one gapless run.
	var last int64 = -1
	for _, r := range e2eReadJSONL(t, out) {
		if r.Rec.SourceID != "steady" {
			continue
		}
		if r.Rec.Kind != "caption" || r.Rec.PTSMillis <= last {
			t.Fatalf("steady source restarted or out of order at %+v", r.Rec)
		}
		last = r.Rec.PTSMillis
	}
	if !strings.Contains(p.stderr.String(), "reloaded sources") {
		t.Errorf("no reload log line; stderr:\n%s", e2eTail(p.stderr.String(), 20))
	}
}
