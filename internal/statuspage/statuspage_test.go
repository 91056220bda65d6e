package statuspage

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"lookout/internal/now"
	"lookout/pipeline"
)

func server(t *testing.T, token string) *httptest.Server {
	t.Helper()
	v := now.New("h", func() []pipeline.SourceState { return []pipeline.SourceState{{ID: "cam1", State: "running"}} })
	mux := http.NewServeMux()
	Register(mux, Config{View: v, Token: token, Interval: 50 * time.Millisecond, MinInterval: 10 * time.Millisecond,
		Header: func() Header { return Header{Model: "m", MaxBatch: 8, Workers: 2} }})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, c *http.Client, u, host, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if host != "" {
		req.Host = host
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestNoTokenLoopbackOnly(t *testing.T) {
	s := server(t, "")
	c := s.Client()
	if code, body := get(t, c, s.URL+"/", "", ""); code != 200 || !strings.Contains(body, "/status/assets/app.js") {
		t.Errorf("GET / on loopback: %d", code)
	}
	for _, p := range []string{"/", "/status/snapshot", "/status/thumbnail/cam1.jpg", "/status/assets/app.js"} {
		if code, _ := get(t, c, s.URL+p, "rebound.example:9464", ""); code != http.StatusForbidden {
			t.Errorf("GET %s with a foreign Host: %d, want 403", p, code)
		}
	}
	if code, _ := get(t, c, s.URL+"/status/thumbnail/cam1.jpg", "", ""); code != http.StatusNotFound {
		t.Errorf("thumbnail before any caption: %d, want 404", code)
	}
}

func TestTokenHeaderOrCookie(t *testing.T) {
	s := server(t, "tok")
	c := s.Client()
	for _, auth := range []string{"", "Bearer nope", "tok"} {
		for _, p := range []string{"/", "/status/snapshot", "/status/events", "/status/thumbnail/cam1.jpg", "/status/assets/app.js"} {
			code, body := get(t, c, s.URL+p, "", auth)
			if code != http.StatusUnauthorized || strings.Contains(body, "cam1") {
				t.Errorf("GET %s with %q: %d %q, want 401 without data", p, auth, code, body)
			}
		}
	}
	code, body := get(t, c, s.URL+"/status/snapshot", "", "Bearer tok")
	var snap Snapshot
	if code != 200 || json.Unmarshal([]byte(body), &snap) != nil || len(snap.Sources) != 1 || snap.Header.Model != "m" {
		t.Fatalf("snapshot with the token: %d %s", code, body)
	}

	// The form login sets an HttpOnly, SameSite=Strict cookie that opens the page.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.PostForm(s.URL+"/login", url.Values{"token": {"wrong"}})
	if err != nil || resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("login with a wrong token: %v %v", resp, err)
	}
	resp, err = c.PostForm(s.URL+"/login", url.Values{"token": {"tok"}})
	if err != nil || resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("login: %v %v", resp, err)
	}
	ck := resp.Cookies()[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || strings.Contains(ck.Value, "tok") {
		t.Errorf("cookie %+v", ck)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/", nil)
	req.AddCookie(ck)
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("GET / with the cookie: %v %v", resp, err)
	}
}

func TestEventsStreamSnapshots(t *testing.T) {
	s := server(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/status/events", nil)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	n := 0
	for sc.Scan() && n < 3 {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var snap Snapshot
		if err := json.Unmarshal([]byte(line), &snap); err != nil || len(snap.Sources) != 1 || snap.Sources[0].ID != "cam1" {
			t.Fatalf("event %q: %v", line, err)
		}
		n++
	}
	if n < 3 {
		t.Fatalf("%d events within 5 s, want 3 (one per Interval at least)", n)
	}
}

// With nothing captioned, a stream sends its first snapshot and then one
// per Interval, not one per MinInterval.
func TestEventsIdleStreamIsQuiet(t *testing.T) {
	v := now.New("h", func() []pipeline.SourceState { return nil })
	mux := http.NewServeMux()
	Register(mux, Config{View: v, Interval: time.Second, MinInterval: 10 * time.Millisecond, Header: func() Header { return Header{} }})
	s := httptest.NewServer(mux)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/status/events", nil)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if n := strings.Count(string(b), "data: "); n != 1 {
		t.Errorf("%d messages in 700 ms of an idle stream, want 1", n)
	}
}
