// Package kafkatest gives package tests the repository's real test broker:
// scripts/kafka.sh on a port of the package's own (LOOKOUT_TEST_KAFKA_PORT,
// default 19392, plus an offset per package), started once per test binary
// and stopped by Close unless LOOKOUT_TEST_KAFKA_KEEP is set. Tests that
// need it fail with the script's output when it cannot start: they never
// skip.
package kafkatest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// DefaultPort is the first test broker's port when LOOKOUT_TEST_KAFKA_PORT is unset.
const DefaultPort = 19392

// Broker is one test broker.
type Broker struct {
	Port int

	once    sync.Once
	err     error
	started bool
}

// New is the broker on LOOKOUT_TEST_KAFKA_PORT (else DefaultPort) plus
// offset; packages that stop or restart their broker take an offset no
// other package uses.
func New(offset int) *Broker {
	base := DefaultPort
	if p, err := strconv.Atoi(os.Getenv("LOOKOUT_TEST_KAFKA_PORT")); err == nil && p > 0 {
		base = p
	}
	return &Broker{Port: base + offset}
}

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.Port) }

// Start starts the broker once for the test binary, or fails t.
func (b *Broker) Start(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		t0 := time.Now()
		out, err := b.script("start")
		if err != nil {
			b.err = fmt.Errorf("scripts/kafka.sh start --port %d failed (needs java 17+, mvn for the first fetch, kcat): %v\n%s", b.Port, err, out)
			return
		}
		b.started = true
		fmt.Fprintf(os.Stderr, "test broker on %s ready in %s\n", b.Addr(), time.Since(t0).Round(time.Millisecond))
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.Addr()
}

// Restart starts the broker again after Stop or Kill.
func (b *Broker) Restart(t testing.TB) { b.must(t, "restart", "start") }

// Stop stops the broker cleanly.
func (b *Broker) Stop(t testing.TB) { b.must(t, "stop", "stop") }

// Kill kills the broker (SIGKILL).
func (b *Broker) Kill(t testing.TB) { b.must(t, "kill", "stop", "--kill") }

// Close stops a broker Start started, unless LOOKOUT_TEST_KAFKA_KEEP is
// set; call it from TestMain after m.Run.
func (b *Broker) Close() {
	if !b.started || os.Getenv("LOOKOUT_TEST_KAFKA_KEEP") != "" {
		return
	}
	if out, err := b.script("stop"); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the test broker: %v\n%s", err, out)
	}
}

func (b *Broker) must(t testing.TB, what string, args ...string) {
	t.Helper()
	if out, err := b.script(args...); err != nil {
		t.Fatalf("%s the test broker: %v\n%s", what, err, out)
	}
}

// script runs scripts/kafka.sh, found from the working directory upwards
// (go test runs in the package's folder).
func (b *Broker) script(args ...string) (string, error) {
	path, err := findScript()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(path, append(args, "--port", strconv.Itoa(b.Port))...).CombinedOutput()
	return string(out), err
}

func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "scripts", "kafka.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("scripts/kafka.sh not found above the test's folder")
		}
		dir = parent
	}
}
