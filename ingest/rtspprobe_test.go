package ingest

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRTSP is a TCP listener that answers each request with what answer
// returns; it records the requests.
type fakeRTSP struct {
	ln   net.Listener
	mu   sync.Mutex
	reqs []string // request line + headers, as received
}

func startFakeRTSP(t *testing.T, answer func(line string, hdr textproto.MIMEHeader) string) *fakeRTSP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRTSP{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := textproto.NewReader(bufio.NewReader(c))
				for {
					line, err := r.ReadLine()
					if err != nil {
						return
					}
					hdr, _ := r.ReadMIMEHeader()
					f.mu.Lock()
					f.reqs = append(f.reqs, fmt.Sprintf("%s %v", line, hdr))
					f.mu.Unlock()
					resp := answer(line, hdr)
					if resp == "" {
						time.Sleep(5 * time.Second) // silent
						return
					}
					if _, err := c.Write([]byte(resp)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return f
}

func (f *fakeRTSP) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

func (f *fakeRTSP) requests() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.reqs, "\n")
}

func status(code int, reason string, hdrs ...string) string {
	return fmt.Sprintf("RTSP/1.0 %d %s\r\nCSeq: 1\r\n%sContent-Length: 0\r\n\r\n", code, reason, strings.Join(hdrs, ""))
}

func md5hex(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }

// digestServer asks for Digest credentials and answers 200 only for
// viewer:testPassword (without qop, as many cameras do).
func digestServer(line string, hdr textproto.MIMEHeader) string {
	const realm, nonce = "cam", "n0nc3"
	auth := hdr.Get("Authorization")
	if auth == "" {
		return status(401, "Unauthorized", fmt.Sprintf("WWW-Authenticate: Digest realm=%q, nonce=%q\r\n", realm, nonce))
	}
	uri := strings.Fields(line)[1]
	want := md5hex(md5hex("viewer:"+realm+":"+testPassword) + ":" + nonce + ":" + md5hex("DESCRIBE:"+uri))
	if authParams(strings.TrimPrefix(auth, "Digest "))["response"] != want {
		return status(401, "Unauthorized", fmt.Sprintf("WWW-Authenticate: Digest realm=%q, nonce=%q\r\n", realm, nonce))
	}
	return status(200, "OK")
}

func TestProbeRTSP(t *testing.T) {
	closed := freePort(t)
	tests := []struct {
		name   string
		answer func(string, textproto.MIMEHeader) string // nil: nobody listens
		url    string                                    // %d is the port
		want   string                                    // %d is the port
		found  bool
	}{
		{"nobody listens", nil, "rtsp://127.0.0.1:%d/cam",
			"cannot connect to 127.0.0.1:%d: connection refused", false},
		{"wrong path", func(string, textproto.MIMEHeader) string { return status(404, "Not Found") },
			"rtsp://127.0.0.1:%d/nope?token=abc",
			"rtsp server at 127.0.0.1:%d answered 404 Not Found for path /nope: check the path", false},
		{"needs credentials", digestServer, "rtsp://127.0.0.1:%d/cam",
			"rtsp server at 127.0.0.1:%d answered 401 Unauthorized for path /cam: the stream needs a user name and password: put them in the URL (rtsp://user:pass@host/path)", false},
		{"wrong password", digestServer, "rtsp://viewer:wrong@127.0.0.1:%d/cam",
			"rtsp server at 127.0.0.1:%d answered 401 Unauthorized for path /cam: check the user name and password", false},
		{"right password", digestServer, "rtsp://viewer:" + testPassword + "@127.0.0.1:%d/cam",
			"rtsp server at 127.0.0.1:%d answered 200 OK for path /cam, but FFmpeg could not open the stream: check that it carries H.264 or H.265 video (or try ?transport=udp)", true},
		{"basic auth", func(_ string, hdr textproto.MIMEHeader) string {
			if hdr.Get("Authorization") == "Basic "+basicAuth("viewer", testPassword) {
				return status(200, "OK")
			}
			return status(401, "Unauthorized", "WWW-Authenticate: Basic realm=\"cam\"\r\n")
		}, "rtsp://viewer:" + testPassword + "@127.0.0.1:%d/cam", "127.0.0.1:%d answered 200 OK for path /cam", true},
		{"not rtsp", func(string, textproto.MIMEHeader) string { return "HTTP/1.1 400 Bad Request\r\n\r\n" },
			"rtsp://127.0.0.1:%d/cam",
			"127.0.0.1:%d accepted the connection but answered something that is not RTSP: check the port", false},
		{"silent", func(string, textproto.MIMEHeader) string { return "" }, "rtsp://127.0.0.1:%d/cam",
			"127.0.0.1:%d accepted the connection but gave no RTSP answer within 300ms: check the port", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := closed
			var srv *fakeRTSP
			if tc.answer != nil {
				srv = startFakeRTSP(t, tc.answer)
				port = srv.port()
			}
			p, ok := probeRTSP(context.Background(), fmt.Sprintf(tc.url, port), 300*time.Millisecond)
			got := p.String()
			if !ok || !strings.Contains(got, fmt.Sprintf(tc.want, port)) || p.found() != tc.found {
				t.Errorf("probe = %q (found %v), want %q (found %v)", got, p.found(), fmt.Sprintf(tc.want, port), tc.found)
			}
			if strings.Contains(got, testPassword) || strings.Contains(got, "token") {
				t.Errorf("probe message %q leaks a secret", got)
			}
			if srv == nil {
				return
			}
			reqs := srv.requests()
			if !strings.HasPrefix(reqs, fmt.Sprintf("DESCRIBE rtsp://127.0.0.1:%d/", port)) || !strings.Contains(reqs, "Cseq:[1]") {
				t.Errorf("requests %q: want a DESCRIBE with CSeq 1 first", reqs)
			}
			if strings.Contains(reqs, testPassword) || strings.Contains(reqs, "@127.0.0.1") {
				t.Errorf("requests %q carry the password in clear or the user in the URL", reqs)
			}
		})
	}
}

func TestProbeRTSPDefaultPortAndContext(t *testing.T) {
	_, addr, path, _, _, err := rtspTarget("rtsp://a:b@cam.local/x/y?z=1")
	if err != nil || addr != "cam.local:554" || path != "/x/y" {
		t.Errorf("rtspTarget = %q %q %v, want cam.local:554 /x/y", addr, path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	probeRTSP(ctx, "rtsp://10.255.255.1/x", 5*time.Second)
	if d := time.Since(start); d > time.Second {
		t.Errorf("a cancelled probe took %s", d)
	}
}

// A wrong path on the real GStreamer server: the open fails with a
// transient error that says 404 and names the path, without the password.
func TestRTSPWrongPathSays404(t *testing.T) {
	srv := startRTSPServer(t, clip(t, 2, 10, false))
	uri := fmt.Sprintf("rtsp://viewer:%s@127.0.0.1:%d/wrong", testPassword, srv.port)
	src, err := Open(context.Background(), SourceSpec{URI: uri, OpenTimeout: 5 * time.Second})
	if err == nil {
		src.Close()
		t.Fatal("opened a path the server does not have")
	}
	want := fmt.Sprintf("rtsp server at 127.0.0.1:%d answered 404 Not Found for path /wrong: check the path", srv.port)
	if msg := err.Error(); !strings.Contains(msg, want) || strings.Contains(msg, testPassword) || !errors.Is(err, ErrTransient) {
		t.Errorf("error %q: want a transient error holding %q, without the password", msg, want)
	}
}

// FuzzRTSPAnswer feeds arbitrary server answers to the probe's parser and
// its answer to an authentication challenge: a camera (or anything at that
// port) controls these bytes. The reason that reaches logs stays one short
// line; an Authorization answer is one header line, never a second one.
func FuzzRTSPAnswer(f *testing.F) {
	f.Add("RTSP/1.0 404 Not Found\r\nCSeq: 1\r\n\r\n")
	f.Add("RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"abc\", qop=\"auth,auth-int\", opaque=\"o\"\r\n\r\n")
	f.Add("RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nWWW-Authenticate: Digest realm=\"\r\n\r\n")
	f.Add("HTTP/1.1 200 OK\r\n\r\n")
	f.Add("RTSP/1.0 200\r\n")
	f.Fuzz(func(t *testing.T, answer string) {
		var p rtspProbe
		hdr, err := readRTSPAnswer(textproto.NewReader(bufio.NewReader(strings.NewReader(answer))), &p)
		if err != nil {
			return
		}
		if p.status < 100 || p.status > 999 || len(p.reason) > 60 || strings.ContainsAny(p.reason, "\r\n") {
			t.Fatalf("status %d reason %q from %q", p.status, p.reason, answer)
		}
		a := authorization(hdr.Values("WWW-Authenticate"), "rtsp://h/cam", "user", "pass")
		if a != "" && (!strings.HasPrefix(a, "Authorization: ") || strings.Count(a, "\r\n") != 1 || !strings.HasSuffix(a, "\r\n")) {
			t.Fatalf("authorization answer %q from %q", a, answer)
		}
	})
}
