package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// e2eStatusSources are the four synthetic cameras of the status page tests.
const e2eStatusSources = `sources:
  - {id: road-1, uri: "synth://driving?seed=101&fps=10&size=320x180", every: 1s}
  - {id: road-2, uri: "synth://driving?seed=102&fps=10&size=320x180", every: 1s}
  - {id: lot-1, uri: "synth://surveillance?seed=303&fps=10&size=320x180", every: 1s, gate: {threshold: 3}}
  - {id: lot-2, uri: "synth://surveillance?seed=304&fps=10&size=320x180", every: 1s}
`

// e2eStatusIDs are e2eStatusSources' ids, sorted.
var e2eStatusIDs = []string{"lot-1", "lot-2", "road-1", "road-2"}

// e2eTile is what a tile of the status page shows, read from the DOM.
type e2eTile struct {
	ID      string `json:"id"`
	Caption string `json:"caption"`
	Record  string `json:"record"`
	State   string `json:"state"`
	Thumb   bool   `json:"thumb"`
}

const e2eTilesJS = `Array.from(document.querySelectorAll('.tile')).map(el => ({
  id: el.dataset.source, caption: el.querySelector('.caption').textContent,
  record: el.querySelector('.caption').dataset.id || '', state: el.dataset.state || '',
  thumb: (() => { const i = el.querySelector('img'); return !!(i && i.complete && i.naturalWidth > 0); })()}))`

// TestE2EStatusPage opens the status page of `lookout run` (four synthetic
// cameras, Kafka and JSONL sinks) in headless Chromium: every tile shows the
// caption of the latest record in the JSONL file and a thumbnail that is not
// blank; the page fits a phone-width window; a source deleted over HTTP
// disappears; the page logs no error. With the service still running, the
// Grafana dashboard's PromQL is checked against its /metrics.
func TestE2EStatusPage(t *testing.T) {
	start := time.Now()
	kafka := e2eStartKafka(t)
	topic := e2eUniqueTopic("status")
	dir := t.TempDir()
	jsonl := filepath.Join(dir, "out.jsonl")
	// The demo model when it is there: its captions make a screenshot worth showing.
	model := e2eDemoModel()
	if model == "" {
		model = e2eTinyModel()
	}
	addr := e2eFreeAddr(t)
	cfg := e2eWriteFile(t, filepath.Join(dir, "cfg.yaml"), fmt.Sprintf(`data_dir: %s
log: {level: info, format: json}
http: {listen: "%s"}
model: {dir: %s}
pipeline: {max_batch: 4}
sinks:
  jsonl: {path: %s}
  kafka: {enabled: true, brokers: [%s], topic: %s}
`, filepath.Join(dir, "data"), addr, model, jsonl, kafka, topic)+e2eStatusSources)
	p := e2eStartLookout(t, dir, "run", "--config", cfg)
	e2eWaitHTTP(t, p, "http://"+addr+"/readyz", 60*time.Second)

	b := e2eNewBrowser(t, 1280, 800)
	b.do(t, 20*time.Second, chromedp.Navigate("http://"+addr+"/"))
	b.waitJS(t, 45*time.Second, `(() => { const t = `+e2eTilesJS+`; return t.length === 4 && t.every(x => x.record !== '' && x.thumb); })()`,
		`JSON.stringify(`+e2eTilesJS+`)`)
	e2eTilesMatchJSONL(t, b, jsonl, e2eStatusIDs)

	img := b.screenshot(t, dir, "status-page.png")
	for _, id := range e2eStatusIDs {
		r := e2eEval[e2eRect](t, b, `(() => { const r = document.querySelector('.tile[data-source="`+id+`"] img').getBoundingClientRect();
			return {X: r.x, Y: r.y, W: r.width, H: r.height}; })()`)
		v, err := e2eVariance(img, r)
		if err != nil || v < 20 {
			t.Errorf("tile %s: thumbnail region %+v of the screenshot has grey variance %.1f (%v); want a picture, not a blank", id, r, v, err)
		}
	}
	// A phone-width window: one column, nothing wider than the screen.
	b.do(t, 10*time.Second, chromedp.EmulateViewport(390, 844))
	b.waitJS(t, 5*time.Second, `document.documentElement.scrollWidth <= 390 &&
		Array.from(document.querySelectorAll('.tile')).every(el => el.getBoundingClientRect().width >= 300 && el.getBoundingClientRect().right <= 390)`,
		`'scrollWidth ' + document.documentElement.scrollWidth`)
	b.screenshot(t, dir, "status-page-phone.png")
	b.do(t, 10*time.Second, chromedp.EmulateViewport(1280, 800))

	t.Run("dashboard", func(t *testing.T) { e2eCheckDashboard(t, addr, false) })

	req, _ := http.NewRequest(http.MethodDelete, "http://"+addr+"/sources?id=lot-2", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE /sources?id=lot-2: %v %v", resp, err)
	}
	resp.Body.Close()
	b.waitJS(t, 10*time.Second, `document.querySelectorAll('.tile').length === 3 && !document.querySelector('.tile[data-source="lot-2"]')`,
		`JSON.stringify(`+e2eTilesJS+`.map(x => x.id))`)
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("the status page logged errors:\n%s", strings.Join(errs, "\n"))
	}
	stopStart := time.Now()
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("lookout exit %d; stderr:\n%s", code, e2eTail(p.stderr.String(), 20))
	}
	t.Logf("lookout stopped in %.1fs with the page open", time.Since(stopStart).Seconds())
	t.Logf("status page test took %.1fs", time.Since(start).Seconds())
}

// e2eTilesMatchJSONL checks that each tile's caption is the caption of its
// source's latest record in the JSONL file. Both move once a second, so it
// reads the DOM, then the file, until they agree or 15 s pass.
func e2eTilesMatchJSONL(t *testing.T, b *e2eBrowser, jsonl string, ids []string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		tiles := e2eEval[[]e2eTile](t, b, e2eTilesJS)
		latest := map[string]string{}
		latestID := map[string]string{}
		for _, r := range e2eReadJSONL(t, jsonl) {
			if r.Rec.Kind == "caption" {
				latest[r.Rec.SourceID], latestID[r.Rec.SourceID] = r.Rec.Caption, r.Rec.ID
			}
		}
		var got []string
		var diffs []string
		for _, tl := range tiles {
			got = append(got, tl.ID)
			if tl.Caption != latest[tl.ID] || tl.Record != latestID[tl.ID] {
				diffs = append(diffs, fmt.Sprintf("%s: page %q (%s), JSONL %q (%s)", tl.ID, tl.Caption, tl.Record, latest[tl.ID], latestID[tl.ID]))
			}
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Fatalf("tiles %v, want %v", got, ids)
		}
		if len(diffs) == 0 {
			t.Logf("every tile shows its source's latest JSONL record (%d sources)", len(tiles))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tiles do not show the latest records:\n%s", strings.Join(diffs, "\n"))
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// e2eDashboard reads the Grafana dashboard's PromQL expressions (panel
// targets and templating queries).
func e2eDashboard(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(e2e.root, "deploy", "grafana", "dashboards", "lookout.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("deploy/grafana/dashboards/lookout.json: %v", err)
	}
	var exprs []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		// label_values(METRIC, label) names a metric too.
		if m, ok := strings.CutPrefix(v.Definition, "label_values("); ok {
			metric, _, _ := strings.Cut(m, ",")
			exprs = append(exprs, strings.TrimSpace(metric))
		}
	}
	return exprs
}
