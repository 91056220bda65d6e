package main

// End-to-end tests of what a new user trusts lookout with (issue 16): ids,
// the ops API's safety, inputs that cannot open, interrupted commands and
// exit codes.

import (
	"fmt"
	"os"
	"path/filepath"
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
