package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// e2eBrowser is a headless Chromium (Debian's chromium package) driven over
// the DevTools protocol, recording console errors and uncaught exceptions.
type e2eBrowser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

// e2eNewBrowser starts headless Chromium with a w x h window; the test's
// cleanup closes it. A missing chromium fails the test with one line.
func e2eNewBrowser(t *testing.T, w, h int) *e2eBrowser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found on PATH: run scripts/deps-apt.sh (installs Debian's chromium package)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.WindowSize(w, h),
		chromedp.NoSandbox, // tests may run as root (CI containers)
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-device-scale-factor", "1"),
		chromedp.Flag("hide-scrollbars", true),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	b := &e2eBrowser{ctx: ctx}
	start := time.Now()
	// The first Run starts the browser; it must not carry a timeout.
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("starting chromium %s: %v", path, err)
	}
	err = chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value))
				}
				msg = "console.error: " + strings.Join(parts, " ")
			}
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				msg = "log: " + ev.Entry.Text + " " + ev.Entry.URL
			}
		}
		if msg != "" {
			b.mu.Lock()
			b.errors = append(b.errors, msg)
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("chromium: listening to the page's console: %v", err)
	}
	t.Logf("chromium started in %.1fs", time.Since(start).Seconds())
	return b
}

// do runs actions with a timeout.
func (b *e2eBrowser) do(t *testing.T, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("chromium: %v", err)
	}
}

// e2eEval evaluates a JavaScript expression in b's page.
func e2eEval[T any](t *testing.T, b *e2eBrowser, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("chromium: evaluating %s: %v", js, err)
	}
	return v
}

// waitJS polls a JavaScript expression until it is true, or fails the test
// with what describe (another expression) says.
func (b *e2eBrowser) waitJS(t *testing.T, timeout time.Duration, cond, describe string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !e2eEval[bool](t, b, cond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still not %s: %s", timeout, cond, e2eEval[string](t, b, describe))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// consoleErrors returns what the page logged as errors so far.
func (b *e2eBrowser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// screenshot captures the viewport, saves it as name under the test's temp
// dir (and under $LOOKOUT_SCREENSHOTS when set) and returns it decoded.
func (b *e2eBrowser) screenshot(t *testing.T, dir, name string) image.Image {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dirs := []string{dir}
	if d := os.Getenv("LOOKOUT_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatalf("saving screenshot: %v", err)
		}
		t.Logf("screenshot %s", p)
	}
	return img
}

// e2eRect is a DOM element's box in CSS pixels.
type e2eRect struct{ X, Y, W, H float64 }

// e2eVariance is the variance of the grey levels of img inside r.
func e2eVariance(img image.Image, r e2eRect) (float64, error) {
	box := image.Rect(int(r.X), int(r.Y), int(r.X+r.W), int(r.Y+r.H)).Intersect(img.Bounds())
	if box.Dx() < 8 || box.Dy() < 8 {
		return 0, fmt.Errorf("region %v is outside the screenshot %v", box, img.Bounds())
	}
	var sum, sq, n float64
	for y := box.Min.Y; y < box.Max.Y; y++ {
		for x := box.Min.X; x < box.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			v := (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b)) / 257
			sum += v
			sq += v * v
			n++
		}
	}
	mean := sum / n
	return sq/n - mean*mean, nil
}
