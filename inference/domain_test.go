package inference

import (
	"bufio"
	"context"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"lookout/synth"
)

func demoDir(t testing.TB) string {
	d := filepath.Join(repoRoot(t), "models", "demo")
	if _, err := os.Stat(filepath.Join(d, fileDomain)); err != nil {
		t.Fatalf("demo model's %s missing: %v", fileDomain, err)
	}
	return d
}

// realDataDir is OpenCV's sample data from Debian's opencv-doc (scripts/realdata.sh).
func realDataDir(t testing.TB) string {
	d := os.Getenv("LOOKOUT_REALDATA")
	if d == "" {
		d = filepath.Join(repoRoot(t), ".state", "realdata")
	}
	if _, err := os.Stat(filepath.Join(d, "vtest.avi")); err != nil {
		t.Fatalf("real footage missing (%s/vtest.avi): run scripts/realdata.sh from the repo root", d)
	}
	return d
}

// domainScores captions images in batches of 16 and returns their scores.
func domainScoresOf(t *testing.T, m *Model, imgs []gocv.Mat) []DomainScore {
	t.Helper()
	var out []DomainScore
	for i := 0; i < len(imgs); i += 16 {
		rs, err := m.Caption(context.Background(), imgs[i:min(i+16, len(imgs))])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Domain == nil {
				t.Fatal("demo model result without a domain score")
			}
			out = append(out, *r.Domain)
		}
	}
	return out
}

func share(ss []DomainScore, in bool) (float64, float64) {
	k, maxD := 0, 0.0
	for _, s := range ss {
		if s.InDomain == in {
			k++
		}
		maxD = max(maxD, s.Distance)
	}
	return float64(k) / float64(len(ss)), maxD
}

// Synthetic frames the model never saw (seeds unused by training and by the
// profile's calibration; no H.264, 1280x720, 640x360 and 320x180) are in
// domain >= 99% of the time.
func TestDomainSyntheticInDomain(t *testing.T) {
	m := loadShared(t, demoDir(t))
	rng := rand.New(rand.NewSource(77))
	const n = 600
	sizes := [][2]int{{1280, 720}, {640, 360}, {320, 180}}
	imgs := make([]gocv.Mat, n)
	for i := range imgs {
		imgs[i] = gocv.NewMat()
		defer imgs[i].Close()
		sz := sizes[(i/2)%len(sizes)]
		synth.RenderSample(synth.Domains[i%2], rng, &imgs[i], sz[0], sz[1])
	}
	ss := domainScoresOf(t, m, imgs)
	in, maxD := share(ss, true)
	t.Logf("synthetic: %d frames, in domain %.1f%%, max distance %.4f (threshold %.4f)", n, 100*in, maxD, m.domain.Threshold)
	if in < 0.99 {
		t.Errorf("synthetic frames in domain %.1f%%, want >= 99%%", 100*in)
	}
}

// Real photos and frames of a real pedestrian video are out of domain >= 95%
// of the time.
func TestDomainRealOutOfDomain(t *testing.T) {
	m := loadShared(t, demoDir(t))
	dir := realDataDir(t)
	var imgs []gocv.Mat
	defer func() {
		for _, im := range imgs {
			im.Close()
		}
	}()
	photos, _ := filepath.Glob(filepath.Join(dir, "*.jpg"))
	pngs, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	for _, p := range append(photos, pngs...) {
		im := gocv.IMRead(p, gocv.IMReadColor)
		if im.Empty() {
			t.Fatalf("%s: unreadable", p)
		}
		imgs = append(imgs, im)
	}
	nPhotos := len(imgs)
	vc, err := gocv.VideoCaptureFile(filepath.Join(dir, "vtest.avi"))
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	for i := 0; ; i++ {
		f := gocv.NewMat()
		if !vc.Read(&f) || f.Empty() {
			f.Close()
			break
		}
		if i%10 != 0 {
			f.Close()
			continue
		}
		imgs = append(imgs, f)
	}
	if nPhotos < 50 || len(imgs)-nPhotos < 50 {
		t.Fatalf("%d photos and %d video frames in %s; want >= 50 of each (rerun scripts/realdata.sh)", nPhotos, len(imgs)-nPhotos, dir)
	}
	ss := domainScoresOf(t, m, imgs)
	pOut, _ := share(ss[:nPhotos], false)
	vOut, _ := share(ss[nPhotos:], false)
	all, _ := share(ss, false)
	t.Logf("real: %d photos out of domain %.1f%%, %d vtest.avi frames %.1f%%, all %.1f%%", nPhotos, 100*pOut, len(ss)-nPhotos, 100*vOut, 100*all)
	if pOut < 0.95 || vOut < 0.95 {
		t.Errorf("out of domain: photos %.1f%%, video frames %.1f%%; want >= 95%% each", 100*pOut, 100*vOut)
	}
}

// The engine's distances equal the Python toolchain's (python -m
// lookout_train domain score, written to testdata/golden/domain.tsv by
// scripts/golden.sh's domain step; training/tests checks the same file).
func TestDomainMatchesPython(t *testing.T) {
	m := loadShared(t, demoDir(t))
	root := repoRoot(t)
	f, err := os.Open(filepath.Join(root, "testdata", "golden", "domain.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 3 {
			t.Fatalf("domain.tsv: bad line %q", sc.Text())
		}
		want, err := strconv.ParseFloat(fields[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		img := gocv.IMRead(filepath.Join(root, fields[0]), gocv.IMReadColor)
		if img.Empty() {
			t.Fatalf("%s: unreadable", fields[0])
		}
		rs, err := m.Caption(context.Background(), []gocv.Mat{img})
		img.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := rs[0].Domain
		if math.Abs(got.Distance-want) > 2e-6 || strconv.FormatBool(got.InDomain) != fields[2] {
			t.Errorf("%s: Go distance %.6f in_domain %v, Python %s %s", fields[0], got.Distance, got.InDomain, fields[1], fields[2])
		}
		n++
	}
	if n < 4 {
		t.Fatalf("domain.tsv has %d lines, want >= 4", n)
	}
}

// A model without a profile gives no score; a bad profile fails Load with
// a line naming the file and the field.
func TestDomainProfileOptionalAndChecked(t *testing.T) {
	m := loadShared(t, tinyDir(t))
	if _, ok := m.Domain(); ok {
		t.Fatal("tiny fixture has no profile but Domain() says it has")
	}
	img := gocv.NewMatWithSize(40, 60, gocv.MatTypeCV8UC3)
	defer img.Close()
	rs, err := m.Caption(context.Background(), []gocv.Mat{img})
	if err != nil || rs[0].Domain != nil {
		t.Fatalf("tiny fixture: err %v, domain %+v; want no score", err, rs[0].Domain)
	}
	good, err := os.ReadFile(filepath.Join(demoDir(t), fileDomain))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		edit func(string) string
		want string
	}{
		"wrong dims":    {func(s string) string { return strings.Replace(s, `"mean": [`, `"mean": [0.5, `, 1) }, "does not belong to this model"},
		"no trained_on": {func(s string) string { return strings.Replace(s, `"trained_on": "`, `"trained_on": "", "x": "`, 1) }, "trained_on"},
		"bad threshold": {func(s string) string { return strings.Replace(s, `"threshold": `, `"threshold": -`, 1) }, "threshold"},
		"not json":      {func(s string) string { return s[:len(s)/2] }, "JSON"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := copyModelDir(t, demoDir(t))
			if err := os.WriteFile(filepath.Join(dir, fileDomain), []byte(c.edit(string(good))), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir, Options{IntraOpThreads: 1})
			if err == nil || !strings.Contains(err.Error(), fileDomain) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Load with %s: %v; want one line naming %s and %q", name, err, fileDomain, c.want)
			}
		})
	}
}

// copyModelDir symlinks a model folder's files, all but the domain
// profile, into a temporary folder.
func copyModelDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == fileDomain {
			continue // written by the caller; a link would write through to the source
		}
		if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// BenchmarkDomainScore is the engine's extra work per image: pooling the
// encoder output and projecting it on the profile (no model run).
func BenchmarkDomainScore(b *testing.B) {
	m := loadShared(b, demoDir(b))
	enc := make([]float32, 8*m.encSeq*m.hidden)
	for i := range enc {
		enc[i] = float32(i%97) / 97
	}
	b.ResetTimer()
	for range b.N {
		m.domainScores(enc, 8)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(8*b.N), "ns/image")
}
