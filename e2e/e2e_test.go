package e2e

// End-to-end tests: TestMain builds the real lookout binary once and the
// TestE2E* tests drive it as a subprocess against real parts: the Kafka
// broker of scripts/kafka.sh, the GStreamer RTSP server of
// scripts/rtsp-server, ONNX Runtime and the model folders. A part that
// cannot start fails the test with the script's output; nothing is skipped.
//
// Run them with:
//
//	LOOKOUT_ORT_LIB=$PWD/.state/ort/libonnxruntime.so go test -count=1 -run TestE2E -v ./e2e/
//
// Ports (overridable for parallel sessions): Kafka LOOKOUT_E2E_KAFKA_PORT
// (default 19592, controller on the next port), RTSP LOOKOUT_E2E_RTSP_PORT
// (default 18554). The figures they measure are in docs/RELIABILITY.md.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"lookout/internal/recordschema"
	"lookout/sink"
)

// e2e is the state TestMain prepares for the TestE2E* tests.
var e2e struct {
	root    string // repository root (holds go.mod)
	tmp     string // scratch folder shared by the tests, removed at exit
	bin     string // the built lookout binary; "" when not built
	buildMu sync.Mutex
	// kafkaUsed is set once a test started the broker; TestMain stops it.
	kafkaUsed bool
	// rtspUsed is set once a test started the RTSP server.
	rtspUsed bool

	clipsMu sync.Mutex
	clips   map[string]string
}

func TestMain(m *testing.M) { os.Exit(e2eMain(m)) }

func e2eMain(m *testing.M) int {
	flag.Parse()
	root, err := e2eFindRepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	e2e.root = root
	e2e.clips = map[string]string{}
	if e2e.tmp, err = os.MkdirTemp("", "lookout-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: scratch folder:", err)
		return 1
	}
	defer os.RemoveAll(e2e.tmp)
	// Build only when a test that runs the binary may run (the tail tests
	// use the Kafka broker only).
	if run := flag.Lookup("test.run").Value.String(); run == "" || strings.Contains(run, "E2E") {
		bin := filepath.Join(e2e.tmp, "lookout")
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/lookout")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build -o %s lookout/cmd/lookout failed: %v\n%s", bin, err, out)
			return 1
		}
		e2e.bin = bin
		fmt.Fprintf(os.Stderr, "e2e: built %s in %.1fs\n", bin, time.Since(start).Seconds())
	}
	code := m.Run()
	if e2e.kafkaUsed {
		if out, err := exec.Command(filepath.Join(root, "scripts", "kafka.sh"), "stop", "--port", e2eKafkaPort()).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: stopping Kafka: %v\n%s", err, out)
		}
	}
	if e2e.rtspUsed {
		_ = exec.Command(filepath.Join(root, "scripts", "rtsp-server"), "stop", "--port", e2eRtspPort()).Run()
	}
	return code
}

// e2eFindRepoRoot walks up from the working directory to the folder with go.mod.
func e2eFindRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run the tests inside the lookout repository")
		}
		dir = parent
	}
}

// e2eEnvOr is $name, or def when it is unset or empty.
func e2eEnvOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func e2eKafkaPort() string { return e2eEnvOr("LOOKOUT_E2E_KAFKA_PORT", "19592") }
func e2eRtspPort() string  { return e2eEnvOr("LOOKOUT_E2E_RTSP_PORT", "18554") }
func e2eKafkaAddr() string { return "127.0.0.1:" + e2eKafkaPort() }

// e2eOrtLib is the ONNX Runtime library the binary is pointed at.
func e2eOrtLib() string {
	return e2eEnvOr("LOOKOUT_ORT_LIB", filepath.Join(e2e.root, ".state", "ort", "libonnxruntime.so"))
}

// e2eTinyModel is the small test export: nonsense captions, real graphs.
func e2eTinyModel() string { return filepath.Join(e2e.root, "testdata", "models", "tiny-vit-gpt2") }

// e2eDemoModel is the trained demo model, or "" when it is not committed yet.
func e2eDemoModel() string {
	dir := filepath.Join(e2e.root, "models", "demo")
	if _, err := os.Stat(filepath.Join(dir, "encoder_model.onnx")); err != nil {
		return ""
	}
	return dir
}

// e2eNeedBinary fails the test when TestMain did not build lookout.
func e2eNeedBinary(t *testing.T) string {
	t.Helper()
	if e2e.bin == "" {
		t.Fatal("the lookout binary was not built: run with -run 'TestE2E...' so that TestMain builds it")
	}
	if _, err := os.Stat(e2eOrtLib()); err != nil {
		t.Fatalf("ONNX Runtime library %s: %v; run scripts/ort.sh or set LOOKOUT_ORT_LIB", e2eOrtLib(), err)
	}
	return e2e.bin
}

// e2eLockedBuffer collects a subprocess's output while the test reads it.
type e2eLockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *e2eLockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *e2eLockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// e2eProc is a running lookout.
type e2eProc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr *e2eLockedBuffer
	done           chan struct{}
	started        time.Time
}

func e2eLookoutCmd(t *testing.T, dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(e2eNeedBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LOOKOUT_ORT_LIB="+e2eOrtLib())
	return cmd
}

// e2eStartLookout starts lookout in dir; the test's cleanup kills it if the
// test did not wait for it.
func e2eStartLookout(t *testing.T, dir string, args ...string) *e2eProc {
	t.Helper()
	p := &e2eProc{t: t, cmd: e2eLookoutCmd(t, dir, args...), stdout: &e2eLockedBuffer{}, stderr: &e2eLockedBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting lookout %s: %v", strings.Join(args, " "), err)
	}
	p.started = time.Now()
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Logf("lookout %s was still running at the end of the test; killed. stderr tail:\n%s", strings.Join(args, " "), e2eTail(p.stderr.String(), 20))
		}
	})
	return p
}

func (p *e2eProc) pid() int { return p.cmd.Process.Pid }

func (p *e2eProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the process to exit and returns its exit
// code; on timeout it kills it and fails the test.
func (p *e2eProc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("lookout did not exit within %s; killed it. stderr tail:\n%s", timeout, e2eTail(p.stderr.String(), 30))
	}
	return p.cmd.ProcessState.ExitCode()
}

// stop sends sig and waits up to timeout for the exit code.
func (p *e2eProc) stop(sig os.Signal, timeout time.Duration) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !p.exited() {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
	return p.wait(timeout)
}

// e2eRunLookout runs lookout to completion with a deadline.
func e2eRunLookout(t *testing.T, dir string, timeout time.Duration, args ...string) (code int, stdout, stderr string, took time.Duration) {
	t.Helper()
	p := e2eStartLookout(t, dir, args...)
	code = p.wait(timeout)
	return code, p.stdout.String(), p.stderr.String(), time.Since(p.started)
}

func e2eTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// e2eScript runs a repo script and fails the test with its output on error.
func e2eScript(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e2e.root, "scripts", name), args...)
	cmd.Dir = e2e.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/%s %s failed: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// e2eStartKafka starts (or checks) the test broker and returns its address.
func e2eStartKafka(t *testing.T) string {
	t.Helper()
	e2e.kafkaUsed = true
	start := time.Now()
	out := e2eScript(t, 150*time.Second, "kafka.sh", "start", "--port", e2eKafkaPort())
	t.Logf("Kafka on %s ready after %.1fs (%s)", e2eKafkaAddr(), time.Since(start).Seconds(), strings.TrimSpace(e2eTail(out, 1)))
	return e2eKafkaAddr()
}

func e2eStopKafka(t *testing.T) {
	t.Helper()
	start := time.Now()
	e2eScript(t, 60*time.Second, "kafka.sh", "stop", "--port", e2eKafkaPort())
	t.Logf("Kafka stopped in %.1fs", time.Since(start).Seconds())
}

// e2eCreateTopic makes a one-partition topic up front (so that a test reads
// from a known single partition) and waits until it has a leader; lookout itself
// creates missing topics with the broker's defaults.
func e2eCreateTopic(t *testing.T, addr, topic string) {
	t.Helper()
	conn, err := kafka.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial Kafka %s: %v", addr, err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		t.Fatalf("Kafka controller: %v", err)
	}
	cc, err := kafka.Dial("tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		t.Fatalf("dial Kafka controller: %v", err)
	}
	defer cc.Close()
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		parts, err := conn.ReadPartitions(topic)
		if err == nil && len(parts) == 1 && parts[0].Leader.Host != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s has no leader after 20s: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// e2eUniqueTopic names a fresh topic, so runs never read each other's records.
func e2eUniqueTopic(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

// e2eKafkaRecord is one message read back from the topic.
type e2eKafkaRecord struct {
	Offset int64
	Key    string
	Raw    []byte
	Rec    sink.Record
}

// e2eReadTopic reads every message of partition 0 of topic, from the first
// offset to the end, with a kafka-go Reader independent of lookout.
func e2eReadTopic(t *testing.T, addr, topic string) []e2eKafkaRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", addr, topic, 0)
	if err != nil {
		t.Fatalf("dial the leader of %s: %v", topic, err)
	}
	first, last, err := conn.ReadOffsets()
	conn.Close()
	if err != nil {
		t.Fatalf("offsets of %s: %v", topic, err)
	}
	if last <= first {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: 0, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		t.Fatal(err)
	}
	var out []e2eKafkaRecord
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading %s at %d of [%d,%d): %v", topic, len(out), first, last, err)
		}
		kr := e2eKafkaRecord{Offset: m.Offset, Key: string(m.Key), Raw: m.Value}
		if err := json.Unmarshal(m.Value, &kr.Rec); err != nil {
			t.Fatalf("%s offset %d is not a record: %v: %s", topic, m.Offset, err, m.Value)
		}
		out = append(out, kr)
		if m.Offset >= last-1 {
			return out
		}
	}
}

// e2eRecordSchema compiles docs/record.schema.json.
func e2eRecordSchema(t *testing.T) *recordschema.Schema {
	t.Helper()
	sch, err := recordschema.Load(filepath.Join(e2e.root, "docs", "record.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// e2eSchemaCheck validates records and reports the first few failures
// and their count, so one systematic fault does not flood the log.
type e2eSchemaCheck struct {
	t   *testing.T
	sch *recordschema.Schema
	bad int
}

func newE2ESchemaCheck(t *testing.T) *e2eSchemaCheck {
	return &e2eSchemaCheck{t: t, sch: e2eRecordSchema(t)}
}

func (c *e2eSchemaCheck) check(where string, raw []byte) {
	c.t.Helper()
	if err := c.sch.Validate(raw); err != nil {
		c.bad++
		if c.bad <= 3 {
			c.t.Errorf("%s does not match docs/record.schema.json: %s\n%s", where, strings.Join(strings.Fields(err.Error()), " "), raw)
		}
	}
}

// done reports how many records failed in all.
func (c *e2eSchemaCheck) done(total int) {
	c.t.Helper()
	if c.bad > 0 {
		c.t.Errorf("%d of %d records do not match docs/record.schema.json (first 3 shown above)", c.bad, total)
	}
}

// e2eJsonlRecord is one line of a JSONL sink file.
type e2eJsonlRecord struct {
	Raw []byte
	Rec sink.Record
}

// e2eReadJSONL reads complete lines of a JSONL sink file (a partial last line
// of a running writer is ignored). A missing file reads as empty.
func e2eReadJSONL(t *testing.T, path string) []e2eJsonlRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []e2eJsonlRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		var r sink.Record
		if err := json.Unmarshal(line, &r); err != nil {
			if !bytes.HasSuffix(b, []byte("\n")) && bytes.HasSuffix(b, line) {
				break // partial line being written
			}
			t.Fatalf("%s: not a record: %v: %s", path, err, line)
		}
		out = append(out, e2eJsonlRecord{Raw: line, Rec: r})
	}
	return out
}

// e2eClip makes (once per test binary run) a synthetic scene clip with
// `lookout scenes video` and returns its path; the truth file lies next to
// it as <name>.truth.jsonl.
func e2eClip(t *testing.T, name string, args ...string) string {
	t.Helper()
	e2e.clipsMu.Lock()
	defer e2e.clipsMu.Unlock()
	if p, ok := e2e.clips[name]; ok {
		return p
	}
	out := filepath.Join(e2e.tmp, name+".mp4")
	full := append([]string{"scenes", "video", "--out", out}, args...)
	code, _, stderr, took := e2eRunLookout(t, e2e.tmp, 3*time.Minute, full...)
	if code != 0 {
		t.Fatalf("lookout %s: exit %d\n%s", strings.Join(full, " "), code, stderr)
	}
	t.Logf("made %s (%s) in %.1fs", name, strings.Join(args, " "), took.Seconds())
	e2e.clips[name] = out
	return out
}

// e2eSmallClip is a 40 s surveillance clip (320x180, 10 fps): cheap to render
// and decode, 40 sampled frames at every: 1s (pts 0..39000).
func e2eSmallClip(t *testing.T) string {
	return e2eClip(t, "surv40", "--domain", "surveillance", "--seed", "21", "--duration", "40s", "--size", "320x180", "--fps", "10")
}

// e2eFreeAddr returns a loopback host:port nobody listens on right now.
func e2eFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func e2eWriteFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// e2eServiceConfig writes dir/cfg.yaml for `lookout run`: the settings every service test shares
// (data_dir, JSON logs at level, the ops server on a free loopback address, the tiny model) followed
// by body (sources, sinks, ...). dataDir "" means dir/data. It returns the config's path and the
// ops server's address.
func e2eServiceConfig(t *testing.T, dir, dataDir, level, body string) (cfg, httpAddr string) {
	t.Helper()
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	httpAddr = e2eFreeAddr(t)
	head := fmt.Sprintf("data_dir: %s\nlog: {level: %s, format: json}\nhttp: {listen: \"%s\"}\nmodel: {dir: %s}\n",
		dataDir, level, httpAddr, e2eTinyModel())
	return e2eWriteFile(t, filepath.Join(dir, "cfg.yaml"), head+body), httpAddr
}

// e2eHttpGet fetches url with a timeout and returns status, body and latency.
func e2eHttpGet(url string, timeout time.Duration) (int, string, time.Duration, error) {
	c := http.Client{Timeout: timeout}
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", time.Since(start), err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), time.Since(start), err
}

// e2eWaitHTTP waits until GET url answers 200, or fails the test; it gives up
// early when the process exited.
func e2eWaitHTTP(t *testing.T, p *e2eProc, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if code, _, _, err := e2eHttpGet(url, time.Second); err == nil && code == 200 {
			return
		}
		if p.exited() {
			t.Fatalf("lookout exited (code %d) before %s answered; stderr:\n%s", p.cmd.ProcessState.ExitCode(), url, e2eTail(p.stderr.String(), 30))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within %s; stderr:\n%s", url, timeout, e2eTail(p.stderr.String(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// e2eMetrics scrapes a Prometheus text page into series -> value, where a
// series is the name with its labels as printed ("name{a=\"b\"}").
func e2eMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	code, body, _, err := e2eHttpGet("http://"+addr+"/metrics", 5*time.Second)
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	return e2eParseMetrics(body)
}

func e2eParseMetrics(body string) map[string]float64 {
	m := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// e2eMetricSum adds every series of metric name (all label values).
func e2eMetricSum(m map[string]float64, name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}

// e2eMetricFor is the value of name for one source label.
func e2eMetricFor(m map[string]float64, name, source string) float64 {
	var s float64
	for k, v := range m {
		if strings.HasPrefix(k, name+"{") && strings.Contains(k, `source="`+source+`"`) {
			s += v
		}
	}
	return s
}

// e2eBySource groups records by source id, keeping their order.
func e2eBySource[T any](recs []T, src func(T) sink.Record) map[string][]T {
	m := map[string][]T{}
	for _, r := range recs {
		id := src(r).SourceID
		m[id] = append(m[id], r)
	}
	return m
}

func e2eSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// e2eReadCheckpoint returns the pts of a replay's checkpoint, -1 when absent.
func e2eReadCheckpoint(dataDir, source string) int64 {
	b, err := os.ReadFile(filepath.Join(dataDir, "checkpoints", source+".json"))
	if err != nil {
		return -1
	}
	var cp struct {
		PTS int64 `json:"pts_ms"`
	}
	if json.Unmarshal(b, &cp) != nil {
		return -1
	}
	return cp.PTS
}

// e2eRssBytes reads VmRSS of pid from /proc.
func e2eRssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS line")
}
