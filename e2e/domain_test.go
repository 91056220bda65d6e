package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lookout/sink"
)

// e2eRealVideo is vtest.avi (people walking, 768x576, 10 fps, 79 s) from
// Debian's opencv-doc, fetched by scripts/realdata.sh.
func e2eRealVideo(t *testing.T) string {
	t.Helper()
	dir := e2eEnvOr("LOOKOUT_REALDATA", filepath.Join(e2e.root, ".state", "realdata"))
	p := filepath.Join(dir, "vtest.avi")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("real footage missing (%s): run scripts/realdata.sh from the repo root", p)
	}
	return p
}

// domainWarning is the start of the message internal/service logs once per
// source whose frames are mostly out of the model's domain.
const e2eDomainWarning = "most frames are unlike what model"

// TestE2EOutOfDomain captions real footage and a synthetic clip with the demo
// model: the real video's records are out of domain (>= 95%) and its source
// gets exactly one warning naming what the model was trained on; the
// synthetic clip's records are in domain and it gets none.
func TestE2EOutOfDomain(t *testing.T) {
	model := e2eDemoModel()
	if model == "" {
		t.Fatal("models/demo missing: the demo model is committed; check out the repo with its model files")
	}
	e2eNeedBinary(t)
	cases := []struct {
		name, input string
		real        bool
	}{
		{"real", e2eRealVideo(t), true},
		{"synthetic", e2eSmallClip(t), false},
	}
	check := newE2ESchemaCheck(t)
	total := 0
	for _, c := range cases {
		dir := t.TempDir()
		out := filepath.Join(dir, "caps.jsonl")
		code, _, stderr, took := e2eRunLookout(t, dir, 4*time.Minute, "caption", c.input, "--model", model,
			"--every", "1s", "--no-progress", "--log-level", "warn", "--out", out)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.name, code, e2eTail(stderr, 10))
		}
		recs := e2eReadJSONL(t, out)
		out0, n := 0, 0
		for _, r := range recs {
			check.check(c.name, r.Raw)
			if r.Rec.Kind != sink.KindCaption {
				continue
			}
			n++
			if r.Rec.InDomain == nil || r.Rec.DomainDistance == nil {
				t.Fatalf("%s: record without in_domain/domain_distance: %s", c.name, r.Raw)
			}
			if !*r.Rec.InDomain {
				out0++
			}
		}
		total += len(recs)
		warns := strings.Count(stderr, e2eDomainWarning)
		t.Logf("%s: %d records in %.1fs, %d out of domain (%.1f%%), %d warning(s)", c.name, n, took.Seconds(), out0, 100*float64(out0)/float64(max(n, 1)), warns)
		if n < 30 {
			t.Fatalf("%s: %d caption records, want >= 30", c.name, n)
		}
		share := float64(out0) / float64(n)
		if c.real {
			if share < 0.95 || warns != 1 || !strings.Contains(stderr, "synthetic") {
				t.Errorf("real footage: %.1f%% out of domain (want >= 95%%), %d warnings (want 1 naming the synthetic training scenes); stderr:\n%s", 100*share, warns, e2eTail(stderr, 10))
			}
		} else if share > 0.01 || warns != 0 {
			t.Errorf("synthetic clip: %.1f%% out of domain (want <= 1%%), %d warnings (want 0); stderr:\n%s", 100*share, warns, e2eTail(stderr, 10))
		}
	}
	check.done(total)
}
