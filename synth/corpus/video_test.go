package corpus

import (
	"bytes"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"lookout/synth"
)

func TestWriteVideoRoundTrip(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "clip.mp4")
	n, err := WriteVideo(VideoOptions{Domain: synth.Driving, Seed: 11, Duration: 2 * time.Second, Width: 320, Height: 180, FPS: 30, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if n != 60 {
		t.Fatalf("wrote %d frames, want 60", n)
	}
	truth, err := ReadTruthFile(filepath.Join(dir, "clip.truth.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(truth) != 60 {
		t.Fatalf("%d truth lines, want 60", len(truth))
	}
	scene, _ := synth.NewScene(synth.Driving, 11)
	for i, l := range truth {
		if l.Frame != i || l.PTSMs != int64(math.Round(float64(i)*1000/30)) {
			t.Fatalf("truth line %d: frame %d pts %d", i, l.Frame, l.PTSMs)
		}
		if want := scene.SlotsAt(time.Duration(float64(i) / 30 * float64(time.Second))); !l.Slots.Equal(want) {
			t.Fatalf("truth line %d: slots %s, scene says %s", i, l.Slots, want)
		}
	}

	vc, err := gocv.VideoCaptureFileWithAPI(out, gocv.VideoCaptureFFmpeg)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	if fourcc := vc.CodecString(); !strings.EqualFold(fourcc, "avc1") && !strings.EqualFold(fourcc, "h264") {
		t.Errorf("codec %q, want H.264", fourcc)
	}
	frame, want, diff := gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer frame.Close()
	defer want.Close()
	defer diff.Close()
	count := 0
	for vc.Read(&frame) && !frame.Empty() {
		if frame.Cols() != 320 || frame.Rows() != 180 {
			t.Fatalf("frame %d is %dx%d", count, frame.Cols(), frame.Rows())
		}
		if count == 45 {
			// The decoded frame is the rendered one, up to codec loss.
			scene.Render(time.Duration(float64(count)/30*float64(time.Second)), &want, 320, 180)
			gocv.AbsDiff(frame, want, &diff)
			if m := diff.Mean(); m.Val1+m.Val2+m.Val3 > 3*8 {
				t.Errorf("frame 45 differs from its render by %.1f per channel", (m.Val1+m.Val2+m.Val3)/3)
			}
		}
		count++
	}
	if count != 60 {
		t.Errorf("read back %d frames, want 60", count)
	}

	// Equal options give an identical truth file.
	out2 := filepath.Join(dir, "again.mp4")
	if _, err := WriteVideo(VideoOptions{Domain: synth.Driving, Seed: 11, Duration: 2 * time.Second, Width: 320, Height: 180, FPS: 30, Out: out2}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "clip.truth.jsonl"))
	b, _ := os.ReadFile(filepath.Join(dir, "again.truth.jsonl"))
	if !bytes.Equal(a, b) {
		t.Error("equal options gave different truth files")
	}
}

func TestWriteVideoRejects(t *testing.T) {
	good := VideoOptions{Domain: synth.Surveillance, Seed: 1, Duration: time.Second, Width: 64, Height: 36, FPS: 10, Out: filepath.Join(t.TempDir(), "x.mp4")}
	bad := map[string]func(o *VideoOptions){
		"domain":   func(o *VideoOptions) { o.Domain = "space" },
		"duration": func(o *VideoOptions) { o.Duration = 0 },
		"fps":      func(o *VideoOptions) { o.FPS = -1 },
		"size":     func(o *VideoOptions) { o.Width = 0 },
		"odd size": func(o *VideoOptions) { o.Width = 65 },
		"out":      func(o *VideoOptions) { o.Out = "" },
		"unwritable": func(o *VideoOptions) {
			o.Out = filepath.Join(t.TempDir(), "missing", "dir", "x.mp4")
		},
	}
	for name, mod := range bad {
		o := good
		mod(&o)
		if _, err := WriteVideo(o); err == nil {
			t.Errorf("%s: WriteVideo accepted %+v", name, o)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: multi-line error %q", name, err)
		}
	}
	if got := TruthPath("a/b.c/clip.mp4"); got != "a/b.c/clip.truth.jsonl" {
		t.Errorf("TruthPath = %q", got)
	}
}

func TestWriteDataset(t *testing.T) {
	dir := t.TempDir()
	opts := DatasetOptions{Domains: synth.Domains, N: 6, Seed: 3, Width: 160, Height: 90, StoreWidth: 64, StoreHeight: 64, H264: true, Out: filepath.Join(dir, "a")}
	if err := WriteDataset(opts); err != nil {
		t.Fatal(err)
	}
	caps, err := os.ReadFile(filepath.Join(opts.Out, "captions.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(caps)), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d caption lines, want 6", len(lines))
	}
	for i, l := range lines {
		wantDomain := synth.Domains[i%2]
		if !strings.Contains(l, `"image":"images/`+string(wantDomain)+"_3_00000") || !strings.Contains(l, `"domain":"`+string(wantDomain)+`"`) {
			t.Errorf("line %d: %s", i, l)
		}
	}
	img := gocv.IMRead(filepath.Join(opts.Out, "images", "surveillance_3_000001.png"), gocv.IMReadColor)
	if img.Cols() != 64 || img.Rows() != 64 {
		t.Errorf("stored image is %dx%d, want 64x64", img.Cols(), img.Rows())
	}
	img.Close()
	schema, err := os.ReadFile(filepath.Join(opts.Out, "schema.json"))
	if err != nil || !strings.Contains(string(schema), `"surveillance"`) || !strings.Contains(string(schema), `"vehicle_color"`) {
		t.Errorf("schema.json: %v %s", err, schema)
	}
	// Equal options, equal captions; the codec round trip leaves no temporary files.
	opts.Out = filepath.Join(dir, "b")
	if err := WriteDataset(opts); err != nil {
		t.Fatal(err)
	}
	caps2, _ := os.ReadFile(filepath.Join(opts.Out, "captions.jsonl"))
	if !bytes.Equal(caps, caps2) {
		t.Error("equal options gave different captions")
	}
	entries, _ := os.ReadDir(opts.Out)
	if len(entries) != 3 {
		t.Errorf("dataset folder holds %d entries, want images, captions.jsonl, schema.json", len(entries))
	}
	// Without the codec, the stored image is exactly the render.
	opts = DatasetOptions{Domains: []synth.Domain{synth.Driving}, N: 2, Seed: 3, Width: 33, Height: 21, Out: filepath.Join(dir, "c")}
	if err := WriteDataset(opts); err != nil {
		t.Fatal(err)
	}
	got := gocv.IMRead(filepath.Join(opts.Out, "images", "driving_3_000001.png"), gocv.IMReadColor)
	defer got.Close()
	want := gocv.NewMat()
	defer want.Close()
	rng := rand.New(rand.NewSource(3))
	synth.RenderSample(synth.Driving, rng, &want, 33, 21)
	synth.RenderSample(synth.Driving, rng, &want, 33, 21)
	gb, err := got.DataPtrUint8()
	if err != nil {
		t.Fatal(err)
	}
	wb, err := want.DataPtrUint8()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gb, wb) {
		t.Error("stored PNG differs from synth.RenderSample's frame")
	}
	for _, bad := range []DatasetOptions{
		{Domains: []synth.Domain{"x"}, N: 1, Width: 8, Height: 8, Out: dir},
		{Domains: synth.Domains, N: 0, Width: 8, Height: 8, Out: dir},
		{Domains: synth.Domains, N: 1, Width: 9, Height: 8, H264: true, Out: dir},
		{Domains: synth.Domains, N: 1, Width: 8, Height: 8, StoreWidth: 4, Out: dir},
	} {
		if err := WriteDataset(bad); err == nil {
			t.Errorf("WriteDataset accepted %+v", bad)
		}
	}
}
