package service

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lookout/internal/config"
)

// TestFleetRefusal: cluster.allow bounds what a catalogue entry can make an
// instance open: schemes, files under the roots only (a symlink out of a
// root, or a ../ path, is refused), no per-source topic.
func TestFleetRefusal(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	in := filepath.Join(root, "a.mp4")
	out := filepath.Join(outside, "b.mp4")
	for _, p := range []string{in, out} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(root, "link.mp4")
	if err := os.Symlink(out, link); err != nil {
		t.Fatal(err)
	}
	f := &fleet{cfg: config.Cluster{Allow: config.Allow{Schemes: []string{"synth", "file"}, FileRoots: []string{root}}}}
	cases := []struct{ uri, topic, want string }{
		{"synth://driving?seed=1", "", ""},
		{in, "", ""},
		{"file://" + in, "", ""},
		{out, "", "is not under cluster.allow.file_roots"},
		{root + "/../" + filepath.Base(outside) + "/b.mp4", "", "is not under cluster.allow.file_roots"},
		{link, "", "is not under cluster.allow.file_roots"},
		{"rtsp://cam/x", "", "scheme rtsp is not in cluster.allow.schemes"},
		{"device://0", "", "scheme device is not in cluster.allow.schemes"},
		{"synth://driving", "other.topic", "per-source topic"},
	}
	for _, c := range cases {
		got := f.refusal(config.Source{ID: "s", URI: c.uri, Topic: c.topic})
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: refusal %q, want %q", c.uri, got, c.want)
		}
	}
}

func TestAdvertised(t *testing.T) {
	host, _ := os.Hostname()
	for in, want := range map[string]string{"127.0.0.1:9464": "127.0.0.1:9464", "0.0.0.0:9464": host + ":9464", "[::]:1": host + ":1"} {
		if got := advertised(in); got != want {
			t.Errorf("advertised(%s) = %s, want %s", in, got, want)
		}
	}
}
