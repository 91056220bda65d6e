package config

import (
	"fmt"
	"path/filepath"
	"time"
)

// Cluster makes the instance a member of a fleet: the sources come from a
// compacted catalogue topic in Kafka and Kafka's group coordinator decides
// which member runs which (docs/SCALING.md). Needs sinks.kafka (the same
// brokers, TLS and SASL are used).
type Cluster struct {
	// Enabled turns cluster mode on. sources[] must then be empty: the
	// catalogue holds them (lookout sources put). Default false.
	Enabled bool `yaml:"enabled"`
	// Group is the Kafka group every instance of the fleet joins.
	// Default "lookout".
	Group string `yaml:"group"`
	// Instance names this instance in records (the instance field), logs,
	// metrics and `lookout sources ls`. Default: $LOOKOUT_INSTANCE, else the
	// host name.
	Instance string `yaml:"instance"`
	// Catalogue is the compacted topic of source definitions, created
	// compacted when missing. Default "lookout.sources".
	Catalogue string `yaml:"catalogue"`
	// Checkpoints is the compacted topic of replay checkpoints, so a replay
	// resumes on whichever instance owns it next. Default
	// "lookout.checkpoints".
	Checkpoints string `yaml:"checkpoints"`
	// SessionTimeout is how long the group waits for a silent instance
	// (SIGKILL, network loss) before its sources move. The broker's
	// group.min.session.timeout.ms (default 6s) is the floor. Default 10s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// Heartbeat is how often an instance tells the group it is alive, and
	// so how fast it notices a rebalance. Default 500ms.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// Allow lists what a catalogue source may open on this instance:
	// whoever can write the catalogue could otherwise make every instance
	// open any URI.
	Allow Allow `yaml:"allow"`
}

// Allow is the set of URIs a catalogue source may name.
type Allow struct {
	// Schemes are the source kinds allowed: rtsp, synth, device, file.
	// Default [rtsp, synth].
	Schemes []string `yaml:"schemes"`
	// FileRoots are the folders file sources must lie under (with file in
	// Schemes); absolute paths. Default none.
	FileRoots []string `yaml:"file_roots"`
}

func defaultCluster() Cluster {
	return Cluster{Group: "lookout", Catalogue: "lookout.sources", Checkpoints: "lookout.checkpoints",
		SessionTimeout: 10 * time.Second, Heartbeat: 500 * time.Millisecond,
		Allow: Allow{Schemes: []string{"rtsp", "synth"}}}
}

// clusterProblems checks the cluster section; with cluster mode off it
// checks nothing.
func (c Config) clusterProblems() []problem {
	cl := c.Cluster
	if !cl.Enabled {
		return nil
	}
	var ps []problem
	bad := func(field, format string, args ...any) {
		ps = append(ps, problem{field: field, msg: fmt.Sprintf(format, args...)})
	}
	if !c.Sinks.Kafka.Enabled {
		bad("sinks.kafka.enabled", "cluster.enabled needs the Kafka sink: the fleet coordinates through its brokers; set sinks.kafka.enabled: true")
	}
	if len(c.Sources) > 0 {
		bad("sources", "must be empty with cluster.enabled: the fleet's sources live in the catalogue topic (%s); add them with `lookout sources put`", cl.Catalogue)
	}
	if !sourceID.MatchString(cl.Group) {
		bad("cluster.group", "%q must be non-empty and use only letters, digits, '.', '_' and '-'", cl.Group)
	}
	if !sourceID.MatchString(cl.Instance) {
		bad("cluster.instance", "%q must be non-empty and use only letters, digits, '.', '_' and '-' (default: $LOOKOUT_INSTANCE or the host name)", cl.Instance)
	}
	for f, t := range map[string]string{"cluster.catalogue": cl.Catalogue, "cluster.checkpoints": cl.Checkpoints} {
		if !sourceID.MatchString(t) {
			bad(f, "%q is not a Kafka topic name", t)
		}
	}
	if cl.Catalogue == cl.Checkpoints {
		bad("cluster.checkpoints", "must differ from cluster.catalogue (%s)", cl.Catalogue)
	}
	if cl.SessionTimeout < time.Second {
		bad("cluster.session_timeout", "must be at least 1s (the broker's floor is group.min.session.timeout.ms, 6s by default), got %s", cl.SessionTimeout)
	}
	if cl.Heartbeat <= 0 || cl.Heartbeat*3 > cl.SessionTimeout {
		bad("cluster.heartbeat", "must be > 0 and at most a third of cluster.session_timeout (%s), got %s", cl.SessionTimeout, cl.Heartbeat)
	}
	for _, s := range cl.Allow.Schemes {
		switch s {
		case "rtsp", "synth", "device", "file":
		default:
			bad("cluster.allow.schemes", "%q is not one of rtsp, synth, device, file", s)
		}
	}
	for _, r := range cl.Allow.FileRoots {
		if !filepath.IsAbs(r) {
			bad("cluster.allow.file_roots", "%q must be an absolute path", r)
		}
	}
	return ps
}
