package ingest

import (
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	good := []struct {
		in   string
		want Location
	}{
		{"clips/a.mp4", Location{Kind: KindFile, Path: "clips/a.mp4"}},
		{"  /data/a b.mp4 ", Location{Kind: KindFile, Path: "/data/a b.mp4"}},
		{"file:///data/a%20b.mp4", Location{Kind: KindFile, Path: "/data/a b.mp4"}},
		{"file://localhost/x.mkv", Location{Kind: KindFile, Path: "/x.mkv"}},
		{"rtsp://cam.local/live", Location{Kind: KindRTSP, URL: "rtsp://cam.local/live", Transport: "tcp"}},
		{"rtsp://u:p@10.0.0.2:8554/cam?transport=udp", Location{Kind: KindRTSP, URL: "rtsp://u:p@10.0.0.2:8554/cam", Transport: "udp"}},
		{"RTSP://h/cam/realmonitor?channel=1&transport=TCP&subtype=0",
			Location{Kind: KindRTSP, URL: "rtsp://h/cam/realmonitor?channel=1&subtype=0", Transport: "tcp"}},
		{"rtsps://h:322/s", Location{Kind: KindRTSP, URL: "rtsps://h:322/s", Transport: "tcp"}},
		{"device://0", Location{Kind: KindDevice, Device: 0}},
		{"device://3", Location{Kind: KindDevice, Device: 3}},
		{"/dev/video2", Location{Kind: KindDevice, Device: 2}},
		{"synth://driving", Location{Kind: KindSynth, Domain: "driving", Seed: 1, FPS: 30, Width: 1280, Height: 720}},
		{"synth://surveillance?seed=3&fps=12.5&size=320x240",
			Location{Kind: KindSynth, Domain: "surveillance", Seed: 3, FPS: 12.5, Width: 320, Height: 240}},
	}
	for _, tc := range good {
		got, err := ParseURI(tc.in)
		if err != nil {
			t.Errorf("ParseURI(%q): unexpected error %v", tc.in, err)
			continue
		}
		got.Redacted = ""
		if got != tc.want {
			t.Errorf("ParseURI(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}

	bad := []struct{ in, wantMsg string }{
		{"", "empty source URI"},
		{"   ", "empty source URI"},
		{"http://cam/x", `unsupported scheme "http"`},
		{"file://host/x.mp4", "three slashes"},
		{"file://", "absolute path"},
		{"file:///x.mp4?loop=1", "no ?query"},
		{"rtsp://", "no valid host"},
		{"rtsp:///path", "no valid host"},
		{"rtsp://h:99999/x", "port"},
		{"rtsp://h:abc/x", "no valid host"},
		{"rtsp://h/x?transport=quic", "transport must be tcp or udp"},
		{"rtsp://admin:pa/ss@h/x", "percent-encode"},
		{"device://-1", "index 0-63"},
		{"device://cam", "index 0-63"},
		{"device://64", "index 0-63"},
		{"synth://city", `unknown synthetic domain "city"`},
		{"synth://driving?fps=0", "fps"},
		{"synth://driving?fps=abc", "fps"},
		{"synth://driving?size=10x10", "size"},
		{"synth://driving?size=big", "WIDTHxHEIGHT"},
		{"synth://driving?seed=x", "seed"},
		{"synth://driving?color=red", `unknown parameter "color"`},
		{"a\nb.mp4", "line break"},
	}
	for _, tc := range bad {
		_, err := ParseURI(tc.in)
		if err == nil {
			t.Errorf("ParseURI(%q): no error, want one containing %q", tc.in, tc.wantMsg)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.wantMsg) {
			t.Errorf("ParseURI(%q) error %q does not contain %q", tc.in, msg, tc.wantMsg)
		}
		if strings.ContainsAny(msg, "\n\r") {
			t.Errorf("ParseURI(%q) error spans lines: %q", tc.in, msg)
		}
		if strings.TrimSpace(tc.in) != "" && !strings.Contains(msg, "source ") {
			t.Errorf("ParseURI(%q) error %q does not name the source", tc.in, msg)
		}
	}
}

func TestRedact(t *testing.T) {
	cases := []struct{ in, want string }{
		{"rtsp://admin:hunter2@cam:554/live", "rtsp://admin:xxxxx@cam:554/live"},
		{"rtsp://admin:p@ss:w0rd@cam/live", "rtsp://admin:xxxxx@cam/live"},
		{"rtsp://admin:pa/ss@cam/live", "rtsp://admin:xxxxx@cam/live"},
		{"rtsp://admin@cam/live", "rtsp://admin@cam/live"},
		{"rtsp://cam:554/live", "rtsp://cam:554/live"},
		{"/plain/path.mp4", "/plain/path.mp4"},
		{"rtsp://:secret@cam/", "rtsp://:xxxxx@cam/"},
		{"not a uri :x@y", "not a uri :x@y"},
	}
	for _, tc := range cases {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := Redact(Redact(tc.in)); got != tc.want {
			t.Errorf("Redact is not idempotent on %q: %q", tc.in, got)
		}
	}
}

// The password must not reach any error ParseURI gives, nor the Redacted form.
func TestParseURINeverLeaksPassword(t *testing.T) {
	const pw = "S3cr3t-Pw"
	for _, uri := range []string{
		"rtsp://admin:" + pw + "@cam/live?transport=sctp",
		"rtsp://admin:" + pw + "@cam:0/live",
		"rtsp://admin:" + pw + "@/live",
		"rtsp://admin:" + pw + "/x@cam/live",
		"rtsp://admin:" + pw + "?x@cam/live",
		"rtsp://admin:" + pw + "@cam:99999999/",
		"ftp://admin:" + pw + "@cam/live",
		"rtsp://admin:" + pw + "@cam/live",
	} {
		loc, err := ParseURI(uri)
		if strings.Contains(loc.Redacted, pw) {
			t.Errorf("Redacted %q holds the password", loc.Redacted)
		}
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("ParseURI(%q) error holds the password: %v", Redact(uri), err)
		}
		if err == nil && !strings.Contains(loc.URL, pw) {
			t.Errorf("ParseURI(%q) lost the password from the URL handed to FFmpeg: %q", Redact(uri), Redact(loc.URL))
		}
	}
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"clip.mp4", "file:///tmp/a.mp4", "rtsp://u:p@h:554/p?transport=udp&ch=1", "device://0",
		"/dev/video1", "synth://driving?seed=3&fps=30&size=1280x720", "rtsp://a:b/c@d/e", "synth://x?%zz",
		"file://%", "rtsp://[::1]:8554/cam",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := ParseURI(s)
		if err != nil {
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("error spans lines: %q", msg)
			}
			if pw := password(s); len(pw) >= 6 && strings.Count(s, pw) == 1 && strings.Contains(msg, pw) {
				t.Fatalf("error %q leaks password %q", msg, pw)
			}
			return
		}
		if loc.Kind < KindFile || loc.Kind > KindSynth {
			t.Fatalf("no kind for %q: %+v", s, loc)
		}
		if p := password(loc.Redacted); p != "" && p != "xxxxx" {
			t.Fatalf("Redacted %q keeps password %q", loc.Redacted, p)
		}
		switch loc.Kind {
		case KindFile:
			if loc.Path == "" {
				t.Fatalf("file %q without a path", s)
			}
		case KindRTSP:
			if loc.Transport != "tcp" && loc.Transport != "udp" {
				t.Fatalf("rtsp %q with transport %q", s, loc.Transport)
			}
		case KindSynth:
			if !(loc.FPS > 0) || loc.Width < 16 || loc.Height < 16 {
				t.Fatalf("synth %q with bad fps/size: %+v", s, loc)
			}
		}
	})
}
