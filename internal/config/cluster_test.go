package config

import (
	"strings"
	"testing"
)

func TestClusterValidation(t *testing.T) {
	env := func(string) string { return "" }
	cases := map[string]struct{ yaml, want string }{
		"no kafka sink": {"sinks: {jsonl: {path: '-'}}\ncluster: {enabled: true, instance: a}\n",
			"line 1: sinks.kafka.enabled: cluster.enabled needs the Kafka sink"},
		"sources in file": {"sinks: {kafka: {enabled: true}}\ncluster: {enabled: true, instance: a}\nsources: [{id: c, uri: 'synth://driving'}]\n",
			"sources: must be empty with cluster.enabled"},
		"heartbeat too slow": {"sinks: {kafka: {enabled: true}}\ncluster: {enabled: true, instance: a, session_timeout: 6s, heartbeat: 3s}\n",
			"cluster.heartbeat: must be > 0 and at most a third"},
		"bad scheme": {"sinks: {kafka: {enabled: true}}\ncluster: {enabled: true, instance: a, allow: {schemes: [http]}}\n",
			`cluster.allow.schemes: "http" is not one of`},
		"relative root": {"sinks: {kafka: {enabled: true}}\ncluster: {enabled: true, instance: a, allow: {file_roots: [recordings]}}\n",
			`cluster.allow.file_roots: "recordings" must be an absolute path`},
		"bad instance": {"sinks: {kafka: {enabled: true}}\ncluster: {enabled: true, instance: 'a b'}\n",
			`cluster.instance: "a b" must be non-empty`},
	}
	for name, c := range cases {
		_, err := Parse([]byte(c.yaml), env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", name, err, c.want)
		}
	}
	c, err := Parse([]byte("sinks: {kafka: {enabled: true}}\ncluster: {enabled: true}\n"), func(k string) string {
		if k == "LOOKOUT_INSTANCE" {
			return "pod-7"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Instance != "pod-7" || c.Cluster.Group != "lookout" || c.Cluster.Catalogue != "lookout.sources" ||
		c.Cluster.Checkpoints != "lookout.checkpoints" || c.Cluster.SessionTimeout.Seconds() != 10 {
		t.Fatalf("defaults: %+v", c.Cluster)
	}
}
