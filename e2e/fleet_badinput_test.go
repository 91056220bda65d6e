package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestE2EFleetBadInput: what a person or a catalogue writer gets wrong.
//   - cluster mode without the Kafka sink: exit 2, one line naming the field;
//   - a catalogue record that is not JSON, or not a valid source: skipped,
//     logged once with key and offset, counted; nothing crashes;
//   - a source outside cluster.allow (a file outside file_roots, a device):
//     refused, logged once, counted; it does not run;
//   - an instance with another model joining: exits 2 with one line naming
//     both digests; the group keeps running.
func TestE2EFleetBadInput(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := e2eServiceConfig(t, dir, "", "info", "sinks: {jsonl: {path: out.jsonl}}\ncluster: {enabled: true, instance: a}\n")
	code, _, stderr, _ := e2eRunLookout(t, dir, time.Minute, "run", "--config", cfg)
	if code != 2 || !strings.Contains(stderr, "sinks.kafka.enabled: cluster.enabled needs the Kafka sink") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("cluster without Kafka: exit %d, want 2 and one line naming sinks.kafka.enabled:\n%s", code, stderr)
	}

	demo := e2eDemoModel()
	if demo == "" {
		t.Fatal("models/demo is missing: the digest check needs a second model")
	}
	kafka := e2eStartKafka(t)
	f := newE2EFleet(t, kafka)
	a := f.start("a")
	f.waitBalanced(0, 0, 0, 20*time.Second)
	// Bad records written with kcat: not JSON, and JSON that is not a source.
	outside := filepath.Join(t.TempDir(), "elsewhere.mp4")
	if err := os.WriteFile(outside, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kv := range []string{`broken|{"id":"broken","uri":`, `nouri|{"id":"nouri"}`} {
		e2eKcatProduce(t, kafka, f.catalogue, kv)
	}
	f.sources("put", "--id", "ok", "--uri", "synth://driving?seed=1&fps=2&size=320x180")
	f.sources("put", "--id", "outside", "--uri", outside)
	f.sources("put", "--id", "cam", "--uri", "device://0")
	f.waitBalanced(1, 1, 1, 10*time.Second) // only "ok" runs
	for args, want := range map[string]string{
		"put --id x":                            "sources put: give a FILE, or --id and --uri",
		"put --id bad/id --uri synth://driving": `source: line 1: id: "bad/id" must be non-empty`,
		"rm nosuch":                             `sources rm: "nosuch" is not in the catalogue`,
	} {
		full := append(strings.Fields(args), "--brokers", kafka, "--catalogue", f.catalogue)
		code, _, stderr, _ := e2eRunLookout(t, f.dir, time.Minute, append([]string{"sources"}, full...)...)
		if code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("lookout sources %s: exit %d, want 2 and %q:\n%s", args, code, want, stderr)
		}
	}
	time.Sleep(time.Second)
	m := e2eMetrics(t, a.http)
	if n := e2eMetricSum(m, "lookout_cluster_catalogue_bad_records_total"); n != 2 {
		t.Errorf("bad catalogue records counted %v, want 2", n)
	}
	if n := e2eMetricSum(m, "lookout_cluster_sources_refused_total"); n != 2 {
		t.Errorf("refused sources counted %v, want 2", n)
	}
	logs := a.p.stderr.String()
	for _, want := range []string{`"key":"broken"`, `"key":"nouri"`, `"source":"outside"`, `"source":"cam"`} {
		if c := strings.Count(logs, want); c != 1 {
			t.Errorf("%s logged %d times, want once", want, c)
		}
	}
	if !strings.Contains(logs, "is not under cluster.allow.file_roots") || !strings.Contains(logs, "scheme device is not in cluster.allow.schemes") {
		t.Errorf("refusals do not say why:\n%s", e2eTail(logs, 20))
	}

	f.model = demo
	b := f.start("b")
	code = b.p.wait(60 * time.Second)
	out := strings.TrimSpace(b.p.stderr.String())
	last := out[strings.LastIndex(out, "\n")+1:]
	digest := regexp.MustCompile(`"digest":"([^"]+)"`)
	da, db := digest.FindStringSubmatch(a.p.stderr.String()), digest.FindStringSubmatch(out)
	if da == nil || db == nil || da[1] == db[1] {
		t.Fatalf("model digests not logged or equal: %v %v", da, db)
	}
	if code != 2 || !strings.HasPrefix(last, "lookout: refused by the group: instance b runs model digest "+db[1]) || !strings.Contains(last, da[1]) {
		t.Errorf("another model: exit %d, last line %q; want 2 and both digests (%s, %s) named", code, last, db[1], da[1])
	}
	t.Logf("newcomer with another model: %s", last)
	if a.p.exited() {
		t.Fatal("the running instance died")
	}
	f.waitBalanced(1, 1, 1, 10*time.Second)
	e2eFleetStop(t, f)
}

// e2eKcatProduce writes key|value to topic with kcat, an independent client.
func e2eKcatProduce(t *testing.T, kafka, topic, kv string) {
	t.Helper()
	cmd := exec.Command("kcat", "-b", kafka, "-t", topic, "-P", "-K", "|")
	cmd.Stdin = strings.NewReader(kv + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce %q: %v\n%s", kv, err, out)
	}
}
