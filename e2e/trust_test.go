package e2e

// End-to-end tests of what a new user trusts lookout with (issue 16): ids,
// the ops API's safety, inputs that cannot open, interrupted commands and
// exit codes.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lookout/sink"
)

// TestE2ELiveIDsNeverRepeatAcrossRestarts runs the same live sources (a
// synthetic scene and an RTSP camera) in two processes, one after the other,
// and in the second also restarts the synthetic source by SIGHUP: a live
// source's PTS starts at 0 on each opening, yet no record id may repeat.
// (That a retried record keeps its id is TestE2EBrokerOutage's comparison by
// id of Kafka against the reference sink.)
func TestE2ELiveIDsNeverRepeatAcrossRestarts(t *testing.T) {
	port := e2eRtspPort()
	e2e.rtspUsed = true
	e2eScript(t, 30*time.Second, "rtsp-server", "start", "--port", port, "--file", e2eSmallClip(t))
	t.Cleanup(func() { e2eScript(t, 30*time.Second, "rtsp-server", "stop", "--port", port) })

	dir := t.TempDir()
	sources := func(label string) string {
		return fmt.Sprintf(`sources:
  - {id: cam, uri: "rtsp://127.0.0.1:%s/cam", every: 500ms}
  - {id: synth, uri: "synth://driving?seed=4&fps=10&size=320x180", every: 500ms, labels: {run: %s}}
`, port, label)
	}
	// runOnce runs lookout until each source gave want captions (after the
	// SIGHUP too when reload), and returns its records.
	runOnce := func(name string, reload bool) []e2eJsonlRecord {
		out := filepath.Join(dir, name+".jsonl")
		cfg, _ := e2eServiceConfig(t, dir, "", "info", sources("a")+"sinks:\n  jsonl: {path: "+out+"}\n")
		p := e2eStartLookout(t, dir, "run", "--config", cfg)
		waitCaptions := func(src string, n int, since time.Time) {
			deadline := time.Now().Add(60 * time.Second)
			for {
				got := 0
				for _, r := range e2eReadJSONL(t, out) {
					if r.Rec.SourceID == src && r.Rec.Kind == sink.KindCaption && r.Rec.CaptureTime.After(since) {
						got++
					}
				}
				if got >= n {
					return
				}
				if p.exited() || time.Now().After(deadline) {
					t.Fatalf("%s: %d of %d captions from %s; stderr:\n%s", name, got, n, src, e2eTail(p.stderr.String(), 20))
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		waitCaptions("cam", 3, p.started)
		waitCaptions("synth", 3, p.started)
		if reload {
			// A changed label restarts the synthetic source: a new opening.
			e2eServiceConfig(t, dir, "", "info", sources("b")+"sinks:\n  jsonl: {path: "+out+"}\n")
			at := time.Now()
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			waitCaptions("synth", 3, at)
		}
		if code := p.stop(os.Interrupt, 30*time.Second); code != 0 {
			t.Fatalf("%s: lookout exited %d; stderr:\n%s", name, code, e2eTail(p.stderr.String(), 20))
		}
		return e2eReadJSONL(t, out)
	}
	first := runOnce("first", false)
	second := runOnce("second", true)

	seen := map[string]sink.Record{}
	runs := map[string]map[string]bool{} // source -> runs
	for i, recs := range [][]e2eJsonlRecord{first, second} {
		for _, r := range recs {
			rec := r.Rec
			if rec.Run == "" {
				t.Fatalf("process %d: live record of %s has no run: %s", i+1, rec.SourceID, r.Raw)
			}
			if want := sink.RecordID(rec.SourceID, rec.Run, rec.PTSMillis, rec.ModelDigest, rec.Kind); rec.ID != want {
				t.Errorf("record id %s, want %s from its fields", rec.ID, want)
			}
			if prev, dup := seen[rec.ID]; dup {
				t.Errorf("id %s repeats: %s pts %d run %s, and %s pts %d run %s", rec.ID,
					prev.SourceID, prev.PTSMillis, prev.Run, rec.SourceID, rec.PTSMillis, rec.Run)
			}
			seen[rec.ID] = rec
			if runs[rec.SourceID] == nil {
				runs[rec.SourceID] = map[string]bool{}
			}
			runs[rec.SourceID][rec.Run] = true
		}
	}
	// The restarts really restarted the PTS: without the run, ids would repeat.
	pts := map[string]bool{}
	repeats := 0
	for _, recs := range [][]e2eJsonlRecord{first, second} {
		for _, r := range recs {
			k := fmt.Sprint(r.Rec.SourceID, "/", r.Rec.PTSMillis, "/", r.Rec.Kind)
			if pts[k] && r.Rec.SourceID == "synth" {
				repeats++
			}
			pts[k] = true
		}
	}
	if repeats == 0 {
		t.Errorf("no synthetic pts repeated across openings; the test did not restart the source")
	}
	if len(runs["cam"]) != 2 || len(runs["synth"]) != 3 {
		t.Errorf("runs: cam %d (want 2 processes), synth %d (want 3 openings)", len(runs["cam"]), len(runs["synth"]))
	}
	t.Logf("%d records, %d (source, pts, kind) repeats across openings, all ids distinct", len(seen), repeats)
}

// TestE2ECaptionOutReplacedAndInterrupted: `caption --out F` run twice leaves
// one replay in F; a run killed mid-way leaves the earlier F as it was; a run
// interrupted by SIGINT exits 130 with whole JSONL lines and a playable MP4
// beside the targets, and says where they are.
func TestE2ECaptionOutReplacedAndInterrupted(t *testing.T) {
	video := e2eSmallClip(t) // 40 s: 40 captions at --every 1s
	dir := t.TempDir()
	out := filepath.Join(dir, "caps.jsonl")
	args := []string{"caption", video, "--model", e2eTinyModel(), "--out", out}
	for i := range 2 {
		if code, _, stderr, _ := e2eRunLookout(t, dir, 2*time.Minute, args...); code != 0 {
			t.Fatalf("run %d: exit %d: %s", i+1, code, stderr)
		}
		recs := e2eReadJSONL(t, out)
		ids := map[string]bool{}
		for _, r := range recs {
			ids[r.Rec.ID] = true
		}
		if len(recs) != 40 || len(ids) != 40 {
			t.Fatalf("after run %d: %d records, %d distinct ids; want one replay: 40 and 40", i+1, len(recs), len(ids))
		}
	}
	before, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e2ePartialPath(out)); !os.IsNotExist(err) {
		t.Errorf("a finished run left %s behind (stat: %v)", e2ePartialPath(out), err)
	}

	// Killed mid-way (SIGKILL: no chance to clean up).
	p := e2eStartLookout(t, dir, append(args, "--realtime")...)
	waitLines := func(path string, n int) {
		deadline := time.Now().Add(60 * time.Second)
		for len(e2eReadJSONL(t, path)) < n {
			if p.exited() || time.Now().After(deadline) {
				t.Fatalf("fewer than %d lines in %s; stderr:\n%s", n, path, e2eTail(p.stderr.String(), 20))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLines(e2ePartialPath(out), 3)
	p.stop(syscall.SIGKILL, 10*time.Second)
	after, err := os.ReadFile(out)
	if err != nil || string(after) != string(before) {
		t.Fatalf("a killed run changed %s (err %v): %d bytes before, %d after", out, err, len(before), len(after))
	}

	// Interrupted (SIGINT): a graceful stop, exit 130, outputs closed properly.
	mp4 := filepath.Join(dir, "annotated.mp4")
	p = e2eStartLookout(t, dir, append(args, "--realtime", "--video", mp4)...)
	waitLines(e2ePartialPath(out), 4)
	code := p.stop(os.Interrupt, 30*time.Second)
	stderr := p.stderr.String()
	if code != 130 {
		t.Fatalf("interrupted caption exited %d, want 130; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, e2ePartialPath(out)) || !strings.Contains(stderr, e2ePartialPath(mp4)) {
		t.Errorf("the last line does not say where the partial output is:\n%s", stderr)
	}
	if after, _ := os.ReadFile(out); string(after) != string(before) {
		t.Errorf("an interrupted run of a file changed %s", out)
	}
	partial, err := os.ReadFile(e2ePartialPath(out))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(partial), "\n"), "\n")
	if !strings.HasSuffix(string(partial), "\n") || len(lines) < 4 {
		t.Fatalf("partial JSONL is not whole lines (%d lines, ends %q)", len(lines), partial[max(0, len(partial)-20):])
	}
	for i, l := range lines {
		var rec sink.Record
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Kind != sink.KindCaption {
			t.Fatalf("line %d of the partial JSONL is not a caption record: %v: %s", i+1, err, l)
		}
	}
	// Playable: ffprobe reads the index (moov) and counts the frames.
	probe, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", e2ePartialPath(mp4)).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v: %s (is ffmpeg installed? scripts/deps-apt.sh)", e2ePartialPath(mp4), err, probe)
	}
	frames, err := strconv.Atoi(strings.TrimSpace(string(probe)))
	if err != nil || frames < len(lines) {
		t.Errorf("annotated MP4 has %q frames, want at least the %d captioned", strings.TrimSpace(string(probe)), len(lines))
	}
	t.Logf("interrupted after %d captions: exit 130, %d-frame playable MP4; stderr: %s", len(lines), frames, strings.TrimSpace(stderr))
}

// TestE2ESourcesRefusesBrowsers posts to /sources as a web page could (a
// simple request: text/plain or a form, with a foreign Origin; a DNS-rebound
// Host) and gets 4xx with nothing added; a file that does not exist is
// refused with 400; a script's JSON POST still works.
func TestE2ESourcesRefusesBrowsers(t *testing.T) {
	dir := t.TempDir()
	cfg, httpAddr := e2eServiceConfig(t, dir, "", "info", `sources:
  - {id: base, uri: "synth://surveillance?seed=1&fps=5&size=160x90", every: 1s}
sinks:
  jsonl: {path: `+filepath.Join(dir, "out.jsonl")+`}
`)
	p := e2eStartLookout(t, dir, "run", "--config", cfg)
	base := "http://" + httpAddr
	e2eWaitHTTP(t, p, base+"/readyz", 60*time.Second)
	post := func(body string, hdr map[string]string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, base+"/sources", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	src := `{"id": "evil", "uri": "synth://driving?seed=2&fps=5&size=160x90"}`
	for _, c := range []struct {
		name string
		body string
		hdr  map[string]string
		want int
	}{
		{"text/plain, foreign Origin", src, map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"text/plain, no Origin", src, map[string]string{"Content-Type": "text/plain"}, http.StatusUnsupportedMediaType},
		{"form", "id=evil&uri=synth://driving", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"}, http.StatusForbidden},
		{"form, no Origin", "id=evil&uri=synth://driving", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"JSON, foreign Origin", src, map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, http.StatusForbidden},
		{"JSON, DNS-rebound Host", src, map[string]string{"Content-Type": "application/json", "Host": "evil.example:" + strings.Split(httpAddr, ":")[1]}, http.StatusForbidden},
		{"missing file", `{"id": "gone", "uri": "` + filepath.Join(dir, "gone.mp4") + `"}`, map[string]string{"Content-Type": "application/json"}, http.StatusBadRequest},
	} {
		code, body := post(c.body, c.hdr)
		if code != c.want {
			t.Errorf("%s: status %d (%s), want %d", c.name, code, body, c.want)
		}
		t.Logf("%s: %d %s", c.name, code, body)
	}
	_, list, _, err := e2eHttpGet(base+"/sources", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(list, "evil") || strings.Contains(list, "gone") {
		t.Fatalf("a refused source was added: %s", list)
	}
	if code, body := post(src, map[string]string{"Content-Type": "application/json"}); code != http.StatusCreated {
		t.Fatalf("a script's JSON POST: status %d (%s), want 201", code, body)
	}
	p.stop(os.Interrupt, 30*time.Second)
}

// TestE2ETrustExitCodes: bad usage exits 2 with one line naming the thing,
// whichever command meets it (issue 16, item 8; item 4 for files).
func TestE2ETrustExitCodes(t *testing.T) {
	dir := t.TempDir()
	model := e2eTinyModel()
	video := e2eSmallClip(t)
	out := filepath.Join(dir, "out.jsonl")
	config := func(name, body string) string {
		return e2eWriteFile(t, filepath.Join(dir, name+".yaml"), fmt.Sprintf("data_dir: %s/data\nhttp: {listen: \"\"}\n%s\nsinks:\n  jsonl: {path: %s}\n", dir, body, out))
	}
	synth := "sources:\n  - {id: a, uri: \"synth://driving?seed=1&fps=5&size=160x90\"}"
	cases := []e2eBadInput{
		{"caption without input", []string{"caption"}, 2, []string{"caption", "give at least one input"}, 0},
		{"version with an argument", []string{"version", "extra"}, 2, []string{"version", "extra"}, 0},
		{"--num-beams 100", []string{"caption", video, "--model", model, "--num-beams", "100"}, 2, []string{"--num-beams", "100", "1 and 64"}, 0},
		{"--num-beams -1", []string{"caption", video, "--model", model, "--num-beams", "-1"}, 2, []string{"--num-beams", "-1"}, 0},
		{"--every 0s", []string{"caption", video, "--model", model, "--every", "0s"}, 2, []string{"--every", "0s"}, 0},
		{"--every and --fps", []string{"caption", video, "--model", model, "--every", "1s", "--fps", "2"}, 2, []string{"--every", "--fps"}, 0},
		{"--out in a missing folder", []string{"caption", video, "--model", model, "--out", filepath.Join(dir, "no", "x.jsonl")}, 2, []string{"--out", "does not exist"}, 0},
		{"caption: missing model folder", []string{"caption", video, "--model", filepath.Join(dir, "no-model")}, 2, []string{"no-model"}, 0},
		{"run: missing model folder", []string{"run", "--config", config("nomodel", "model: {dir: "+filepath.Join(dir, "no-model")+"}\n"+synth)}, 2, []string{"no-model"}, 0},
		{"run: file source that does not exist", []string{"run", "--config", config("nofile", "model: {dir: "+model+"}\nsources:\n  - {id: a, uri: "+filepath.Join(dir, "gone.mp4")+"}")}, 2, []string{"sources[0].uri", "gone.mp4", "does not exist"}, 0},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			code, stdout, stderr, _ := e2eRunLookout(t, dir, time.Minute, c.args...)
			e2eCheckOneLineError(t, c, code, stdout, stderr)
			t.Logf("TABLE | %s | `lookout %s` | %d | %s", c.name, e2eShortArgs(c.args, dir), code, strings.TrimSpace(strings.ReplaceAll(stderr, dir, "$TMP")))
		})
	}
}

// e2ePartialPath is where `caption --out` writes until it succeeds, as the
// README documents it: captions.jsonl -> captions.partial.jsonl.
func e2ePartialPath(path string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + ".partial" + ext
}
