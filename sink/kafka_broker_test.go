package sink

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"lookout/internal/kafkatest"
)

// The integration tests run their own broker, started by scripts/kafka.sh
// on a dedicated port (LOOKOUT_TEST_KAFKA_PORT, default 19392) so that they
// can stop and restart it without disturbing other brokers. TestMain stops
// it afterwards if a test started it.

var broker = kafkatest.New(0)

func needBroker(t *testing.T) string { return broker.Start(t) }
func restartBroker(t *testing.T)     { broker.Restart(t) }
func stopBroker(t *testing.T)        { broker.Stop(t) }
func killBroker(t *testing.T)        { broker.Kill(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	broker.Close()
	os.Exit(code)
}

// createTopic makes a fresh topic with n partitions.
func createTopic(t *testing.T, addr, name string, partitions int) string {
	t.Helper()
	topic := fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	conn, err := kafka.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := kafka.Dial("tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	createTopicWait(t, addr, topic, partitions)
	return topic
}

// createTopicWait waits until the broker serves metadata with a leader for
// every partition of a new topic, so that writers do not cache a half-made
// topic.
func createTopicWait(t *testing.T, addr, topic string, partitions int) {
	t.Helper()
	conn, err := kafka.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		parts, err := conn.ReadPartitions(topic)
		ready := err == nil && len(parts) == partitions
		for _, p := range parts {
			ready = ready && p.Leader.Host != ""
		}
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s has no leaders after 15s: %v", topic, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readAll reads every partition of topic from the beginning until want
// messages arrived or the timeout passed; messages keep their per-partition
// order.
func readAll(t *testing.T, addr, topic string, want int, timeout time.Duration) []kafka.Message {
	t.Helper()
	return readUntil(t, addr, topic, func(ms []kafka.Message) bool { return len(ms) >= want }, timeout)
}

// readUntil reads like readAll until done says so.
func readUntil(t *testing.T, addr, topic string, done func([]kafka.Message) bool, timeout time.Duration) []kafka.Message {
	t.Helper()
	conn, err := kafka.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var mu sync.Mutex
	var out []kafka.Message
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				out = append(out, m)
				finished := done(out)
				mu.Unlock()
				if finished {
					cancel()
					return
				}
			}
		}(p.ID)
	}
	wg.Wait()
	return out
}
