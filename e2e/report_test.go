package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestE2EReport replays a 60 s synthetic clip with `caption --report
// --truth` and opens the HTML in headless Chromium: 60 captions, each with
// a thumbnail that loaded, no console error, and as many captions marked as
// differing from the truth as `scenes score` counts. It does so with the
// demo model (when committed: few mismatches) and the tiny test model
// (nonsense captions: all 60 differ), so the count is checked at both ends.
func TestE2EReport(t *testing.T) {
	start := time.Now()
	clip := e2eClip(t, "surv60", "--domain", "surveillance", "--seed", "3", "--duration", "60s", "--size", "320x180", "--fps", "10")
	truth := strings.TrimSuffix(clip, ".mp4") + ".truth.jsonl"
	models := map[string]string{"tiny": e2eTinyModel()}
	if d := e2eDemoModel(); d != "" {
		models["demo"] = d
	}
	b := e2eNewBrowser(t, 1280, 800)
	for name, model := range models {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			out, html := filepath.Join(dir, "captions.jsonl"), filepath.Join(dir, "report.html")
			code, _, stderr, took := e2eRunLookout(t, dir, 3*time.Minute, "caption", clip, "--every", "1s", "--model", model,
				"--out", out, "--report", html, "--truth", truth)
			if code != 0 {
				t.Fatalf("caption --report: exit %d\n%s", code, stderr)
			}
			t.Logf("caption --report took %.1fs: %s", took.Seconds(), strings.TrimSpace(e2eTail(stderr, 1)))
			code, score, stderr, _ := e2eRunLookout(t, dir, time.Minute, "scenes", "score", "--truth", truth, "--captions", out)
			if code != 0 {
				t.Fatalf("scenes score: exit %d\n%s", code, stderr)
			}
			m := regexp.MustCompile(`(?m)^mismatched=(\d+)`).FindStringSubmatch(score)
			if m == nil {
				t.Fatalf("scenes score printed no mismatched= line:\n%s", score)
			}
			want, _ := strconv.Atoi(m[1])

			b.do(t, 20*time.Second, chromedp.Navigate("file://"+html))
			b.waitJS(t, 10*time.Second, `document.readyState === 'complete'`, `document.readyState`)
			type counts struct{ Captions, Images, Loaded, Mismatches int }
			got := e2eEval[counts](t, b, `({
				Captions: document.querySelectorAll('.entry.caption .caption').length,
				Images: document.querySelectorAll('.entry.caption img').length,
				Loaded: Array.from(document.querySelectorAll('.entry.caption img')).filter(i => i.complete && i.naturalWidth > 0).length,
				Mismatches: document.querySelectorAll('.entry.mismatch').length})`)
			if got.Captions != 60 || got.Images != 60 || got.Loaded != 60 {
				t.Errorf("report: %d captions, %d thumbnails, %d loaded; want 60 each", got.Captions, got.Images, got.Loaded)
			}
			if got.Mismatches != want {
				t.Errorf("report marks %d captions as differing from the truth; scenes score counts %d", got.Mismatches, want)
			}
			if errs := b.consoleErrors(); len(errs) > 0 {
				t.Errorf("the report logged errors:\n%s", strings.Join(errs, "\n"))
			}
			raw, err := os.ReadFile(html)
			if err != nil {
				t.Fatal(err)
			}
			if regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).Match(raw) {
				t.Errorf("the report links to something outside itself")
			}
			t.Logf("%s model: 60 captions and thumbnails, %d marked mismatches = scenes score's, %d KiB", name, want, len(raw)/1024)
			if name == "demo" {
				// Show a marked mismatch, if any, with its neighbours.
				e2eEval[bool](t, b, `(() => { const m = document.querySelector('.entry.mismatch');
					if (m) { m.scrollIntoView({block: 'center'}); window.scrollBy(0, 0); } return true; })()`)
				b.screenshot(t, dir, "report.png")
			}
		})
	}
	// Mistakes are one line and exit 2.
	for _, args := range [][]string{{"--truth", truth}, {"--report", "/nonexistent-dir/r.html"}, {"--report", "r.html", "--truth", "/nonexistent.jsonl"}} {
		code, _, stderr, _ := e2eRunLookout(t, t.TempDir(), time.Minute, append([]string{"caption", clip, "--model", e2eTinyModel()}, args...)...)
		if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") > 0 || !strings.Contains(stderr, "--") {
			t.Errorf("caption %v: exit %d, stderr %q; want exit 2 and one line naming the flag", args, code, stderr)
		}
	}
	t.Logf("report test took %.1fs", time.Since(start).Seconds())
}
