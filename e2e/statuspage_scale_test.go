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

	"github.com/chromedp/chromedp"
)

// e2eManySources is a sources: block of n small synthetic cameras.
func e2eManySources(n int, fps string) string {
	var b strings.Builder
	b.WriteString("sources:\n")
	for i := range n {
		domain := "driving"
		if i%2 == 1 {
			domain = "surveillance"
		}
		fmt.Fprintf(&b, "  - {id: cam-%02d, uri: \"synth://%s?seed=%d&fps=%s&size=160x90\", every: 1s}\n", i+1, domain, 500+i, fps)
	}
	return b.String()
}

// TestE2EStatusPageScale opens the page of 64 sources: tiles shrink
// (compact) and paginate, 24 to a page, and the last page holds the rest.
func TestE2EStatusPageScale(t *testing.T) {
	start := time.Now()
	dir := t.TempDir()
	cfg, addr := e2eServiceConfig(t, dir, "", "warn", fmt.Sprintf("sinks: {jsonl: {path: %s}}\n", filepath.Join(dir, "out.jsonl"))+e2eManySources(64, "2"))
	p := e2eStartLookout(t, dir, "run", "--config", cfg)
	e2eWaitHTTP(t, p, "http://"+addr+"/healthz", 60*time.Second)
	b := e2eNewBrowser(t, 1280, 800)
	b.do(t, 20*time.Second, chromedp.Navigate("http://"+addr+"/"))
	b.waitJS(t, 30*time.Second, `document.querySelectorAll('.tile').length === 24 && !document.getElementById('pager').hidden &&
		document.getElementById('tiles').classList.contains('compact') && document.getElementById('page-label').textContent.includes('of 3 (64 sources)')`,
		`document.querySelectorAll('.tile').length + ' tiles, ' + document.getElementById('page-label').textContent`)
	b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#next`)), chromedp.Click(chromedp.CSS(`#next`)))
	b.waitJS(t, 10*time.Second, `document.querySelectorAll('.tile').length === 16 && document.querySelector('.tile').dataset.source === 'cam-49'`,
		`document.querySelectorAll('.tile').length + ' tiles from ' + (document.querySelector('.tile') || {dataset: {}}).dataset.source`)
	// On the first page, a 1280x800 window shows at least 8 whole tiles.
	b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#prev`)), chromedp.Click(chromedp.CSS(`#prev`)))
	b.waitJS(t, 20*time.Second, `Array.from(document.querySelectorAll('.tile')).filter(el => el.getBoundingClientRect().bottom <= innerHeight).length >= 8`,
		`Array.from(document.querySelectorAll('.tile')).map(el => Math.round(el.getBoundingClientRect().bottom)).join(',')`)
	b.screenshot(t, dir, "status-page-64.png")
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("lookout exit %d; stderr:\n%s", code, e2eTail(p.stderr.String(), 20))
	}
	t.Logf("64-source page test took %.1fs", time.Since(start).Seconds())
}

// e2eCPUSeconds is the user+system CPU time of a process so far.
func e2eCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

// TestE2EStatusPageCost measures what the page costs lookout: its CPU with
// 16 sources, page closed, then open in Chromium, then closed again. Set
// LOOKOUT_PAGE_COST=1 to run it (about 2 minutes); docs/STATUS.md has the
// figures. LOOKOUT_PAGE_COST_SECONDS sets each window (default 30).
func TestE2EStatusPageCost(t *testing.T) {
	if os.Getenv("LOOKOUT_PAGE_COST") == "" {
		t.Skip("set LOOKOUT_PAGE_COST=1 to measure the status page's CPU cost (make page-cost)")
	}
	window := 30 * time.Second
	if s, err := strconv.Atoi(os.Getenv("LOOKOUT_PAGE_COST_SECONDS")); err == nil && s > 0 {
		window = time.Duration(s) * time.Second
	}
	dir := t.TempDir()
	srcs := strings.ReplaceAll(e2eManySources(16, "10"), "160x90", "640x360")
	cfg, addr := e2eServiceConfig(t, dir, "", "warn", fmt.Sprintf("sinks: {jsonl: {path: %s}}\n", filepath.Join(dir, "out.jsonl"))+srcs)
	p := e2eStartLookout(t, dir, "run", "--config", cfg)
	e2eWaitHTTP(t, p, "http://"+addr+"/readyz", 60*time.Second)
	time.Sleep(10 * time.Second) // warm up
	measure := func() float64 {
		c0, err := e2eCPUSeconds(p.pid())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(window)
		c1, err := e2eCPUSeconds(p.pid())
		if err != nil {
			t.Fatal(err)
		}
		return (c1 - c0) / window.Seconds() * 100
	}
	closed1 := measure()
	b := e2eNewBrowser(t, 1280, 800)
	b.do(t, 20*time.Second, chromedp.Navigate("http://"+addr+"/"))
	b.waitJS(t, 30*time.Second, `document.querySelectorAll('.tile img[src]').length === 16`, `document.querySelectorAll('.tile img[src]').length + ' thumbnails'`)
	open := measure()
	b.do(t, 10*time.Second, chromedp.Navigate("about:blank"))
	time.Sleep(2 * time.Second)
	closed2 := measure()
	t.Logf("lookout CPU, 16 sources (640x360, 1 caption/s each), %s windows: page closed %.1f%%, open %.1f%%, closed again %.1f%% of one core; the page costs %.1f points",
		window, closed1, open, closed2, open-(closed1+closed2)/2)
	p.stop(syscall.SIGTERM, 30*time.Second)
}
