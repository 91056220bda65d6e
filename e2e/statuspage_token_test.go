package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// e2eNonLoopbackIP is an address of this machine that is not loopback, or
// "" when it has none.
func e2eNonLoopbackIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

// e2eGet fetches url with an optional Authorization header.
func e2eGet(t *testing.T, url, auth string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	c := http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, b
}

// TestE2EStatusPageToken runs lookout with http.token on a non-loopback
// listener: without the token, or with a wrong one, the page, its event
// stream, snapshot and thumbnails answer 401 and serve no frame bytes; with
// the bearer token they serve; a browser logs in with the form and gets the
// live page through an HttpOnly cookie, with the token in no URL.
func TestE2EStatusPageToken(t *testing.T) {
	ip := e2eNonLoopbackIP()
	if ip == "" {
		t.Skip("this machine has no non-loopback IPv4 address to listen on")
	}
	start := time.Now()
	dir := t.TempDir()
	const token = "status-e2e-token-5d1f"
	port := strings.TrimPrefix(e2eFreeAddr(t), "127.0.0.1:")
	cfg := e2eWriteFile(t, filepath.Join(dir, "cfg.yaml"), fmt.Sprintf(`data_dir: %s
log: {level: info, format: json}
http: {listen: "0.0.0.0:%s", token: %s}
model: {dir: %s}
sinks: {jsonl: {path: %s}}
sources:
  - {id: cam1, uri: "synth://driving?seed=5&fps=10&size=320x180", every: 1s}
`, filepath.Join(dir, "data"), port, token, e2eTinyModel(), filepath.Join(dir, "out.jsonl")))
	p := e2eStartLookout(t, dir, "run", "--config", cfg)
	base := "http://" + net.JoinHostPort(ip, port)
	e2eWaitHTTP(t, p, base+"/healthz", 60*time.Second)

	// Someone watching (with the token) makes thumbnails exist.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e2eWatch(ctx, base+"/status/events", "Bearer "+token)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, h, body := e2eGet(t, base+"/status/thumbnail/cam1.jpg", "Bearer "+token)
		if code == 200 {
			if h.Get("Content-Type") != "image/jpeg" || !bytes.HasPrefix(body, []byte{0xff, 0xd8}) {
				t.Fatalf("thumbnail with the token: %s, %d bytes starting % x; want a JPEG", h.Get("Content-Type"), len(body), body[:min(4, len(body))])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no thumbnail with the token after 30 s: %d %s", code, body)
		}
		time.Sleep(300 * time.Millisecond)
	}

	for _, path := range []string{"/", "/status/events", "/status/snapshot", "/status/thumbnail/cam1.jpg", "/sources"} {
		for _, auth := range []string{"", "Bearer wrong-token", "Basic " + token, token} {
			code, _, body := e2eGet(t, base+path, auth)
			if code != http.StatusUnauthorized {
				t.Errorf("GET %s with Authorization %q: %d, want 401", path, auth, code)
			}
			if bytes.Contains(body, []byte{0xff, 0xd8, 0xff}) || bytes.Contains(body, []byte("caption")) {
				t.Errorf("GET %s with Authorization %q served frame or caption bytes:\n%.200q", path, auth, body)
			}
		}
	}

	// A browser: the login form, then the page over the session cookie.
	b := e2eNewBrowser(t, 1280, 800)
	b.do(t, 20*time.Second, chromedp.Navigate(base+"/"))
	if n := e2eEval[int](t, b, `document.querySelectorAll('.tile').length + document.querySelectorAll('img').length`); n != 0 {
		t.Errorf("the login page shows %d tiles or images", n)
	}
	b.do(t, 20*time.Second,
		chromedp.SendKeys(chromedp.CSS(`#token`), token),
		chromedp.Submit(chromedp.CSS(`#token`)))
	b.waitJS(t, 30*time.Second, `(() => { const t = `+e2eTilesJS+`; return t.length === 1 && t[0].record !== '' && t[0].thumb; })()`,
		`document.title + ' ' + JSON.stringify(`+e2eTilesJS+`)`)
	if c := e2eEval[string](t, b, `document.cookie`); c != "" {
		t.Errorf("the session cookie is readable by scripts: %q", c)
	}
	urls := e2eEval[[]string](t, b, `[location.href, ...performance.getEntriesByType('resource').map(e => e.name)]`)
	for _, u := range urls {
		if strings.Contains(u, token) {
			t.Errorf("the token is in a URL: %s", u)
		}
	}
	if errs := b.consoleErrors(); len(errs) > 0 {
		// The login page itself answers 401, which Chromium logs once.
		var other []string
		for _, e := range errs {
			if !strings.Contains(e, "401") {
				other = append(other, e)
			}
		}
		if len(other) > 0 {
			t.Errorf("the page logged errors:\n%s", strings.Join(other, "\n"))
		}
	}
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("lookout exit %d; stderr:\n%s", code, e2eTail(p.stderr.String(), 20))
	}
	t.Logf("token test took %.1fs (%d resources checked)", time.Since(start).Seconds(), len(urls))
}

// e2eWatch holds an event stream open until ctx ends.
func e2eWatch(ctx context.Context, url, auth string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
	}
}
