package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"lookout/internal/cluster"
	"lookout/internal/config"
)

// sourcesOpts are the flags every `lookout sources` command shares: where
// the fleet's catalogue is.
type sourcesOpts struct {
	cfgPath   string
	brokers   []string
	catalogue string
	group     string
	timeout   time.Duration
}

func (o *sourcesOpts) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.cfgPath, "config", "c", "", "a cluster config: brokers, TLS, SASL, catalogue and group come from it")
	f.StringSliceVar(&o.brokers, "brokers", []string{"127.0.0.1:9092"}, "Kafka bootstrap brokers (without --config)")
	f.StringVar(&o.catalogue, "catalogue", "lookout.sources", "catalogue topic (without --config)")
	f.StringVar(&o.group, "group", "lookout", "the fleet's group, for ls (without --config)")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this long")
}

// resolve turns the flags into client options, catalogue topic and group.
func (o *sourcesOpts) resolve() ([]kgo.Opt, string, string, error) {
	k := config.Default().Sinks.Kafka
	k.Brokers = o.brokers
	catalogue, group := o.catalogue, o.group
	if o.cfgPath != "" {
		cfg, err := config.Load(o.cfgPath)
		if err != nil {
			return nil, "", "", usageError{err}
		}
		k, catalogue, group = cfg.Sinks.Kafka, cfg.Cluster.Catalogue, cfg.Cluster.Group
	}
	opts, err := cluster.ClientOptions(k)
	if err != nil {
		return nil, "", "", usageError{err}
	}
	return opts, catalogue, group, nil
}

func (o *sourcesOpts) open(ctx context.Context) (*cluster.Catalogue, string, []kgo.Opt, error) {
	opts, topic, group, err := o.resolve()
	if err != nil {
		return nil, "", nil, err
	}
	c, err := cluster.OpenCatalogue(ctx, opts, cluster.CatalogueConfig{Topic: topic, Logger: newLogger(os.Stderr, "warn", "auto")})
	if err != nil {
		return nil, "", nil, err
	}
	if err := c.WaitSynced(ctx); err != nil {
		c.Close()
		return nil, "", nil, err
	}
	return c, group, opts, nil
}

// withCatalogue opens the catalogue within --timeout, runs f on it (with
// the group and client options, for ls) and closes it.
func (o *sourcesOpts) withCatalogue(cmd *cobra.Command, f func(ctx context.Context, c *cluster.Catalogue, group string, opts []kgo.Opt) error) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	c, group, opts, err := o.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return f(ctx, c, group, opts)
}

// checkSource is what the catalogue's readers will do with s: encode it
// and parse it back (a valid source survives both).
func checkSource(s config.Source) error {
	b, err := cluster.EncodeSource(s)
	if err == nil {
		_, err = cluster.ParseSourceValue(s.ID, b)
	}
	return err
}

func newSourcesCmd() *cobra.Command {
	return groupCmd("sources", "Edit and list the fleet's source catalogue (cluster mode)",
		`The fleet's sources live in a compacted Kafka topic (cluster.catalogue,
default lookout.sources), keyed by source id; every instance with
cluster.enabled follows it and the group decides which instance runs which
source (docs/SCALING.md).`,
		newSourcesPutCmd(), newSourcesRmCmd(), newSourcesLsCmd())
}

func newSourcesPutCmd() *cobra.Command {
	var o sourcesOpts
	var src config.Source
	var labels []string
	cmd := &cobra.Command{
		Use:   "put [FILE]",
		Short: "Add or replace sources in the catalogue (a YAML file, or flags)",
		Long: `FILE holds one source (the fields of a config's sources[] entry), a list of
them, or a config-like document with sources:. Without FILE the source comes
from --id, --uri and the other flags. Each source is validated before it is
written; the owning instance starts or restarts it within about a second.`,
		Example: `  lookout sources put --brokers 127.0.0.1:9092 --id gate --uri rtsp://cam1/stream --every 1s
  lookout sources put --config configs/cluster.yaml cameras.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var srcs []config.Source
			var err error
			if len(args) == 1 {
				if srcs, err = readSourcesFile(args[0]); err != nil {
					return usageError{err}
				}
			} else {
				if src.ID == "" || src.URI == "" {
					return usagef("sources put: give a FILE, or --id and --uri")
				}
				if src.Labels, err = parseLabels(labels); err != nil {
					return err
				}
				srcs = []config.Source{src}
			}
			for _, s := range srcs {
				if err := checkSource(s); err != nil {
					return usageError{err}
				}
			}
			return o.withCatalogue(cmd, func(ctx context.Context, c *cluster.Catalogue, _ string, _ []kgo.Opt) error {
				for _, s := range srcs {
					if err := c.Put(ctx, s); err != nil {
						return fmt.Errorf("sources put %s: %w", s.ID, err)
					}
					fmt.Fprintln(cmd.OutOrStdout(), "put", s.ID)
				}
				return nil
			})
		},
	}
	o.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&src.ID, "id", "", "source id")
	f.StringVar(&src.URI, "uri", "", "source URI (rtsp://, synth://, or an absolute file path every instance can read)")
	f.DurationVar(&src.Every, "every", time.Second, "sampling interval")
	f.IntVar(&src.Weight, "weight", 0, "share of an instance (default 1; a 4K camera may count 4)")
	f.BoolVar(&src.Realtime, "realtime", false, "pace a file replay at native speed")
	f.StringSliceVar(&labels, "label", nil, "label key=value copied into records (repeatable)")
	return cmd
}

func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("sources put: --label %q is not key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}

// readSourcesFile reads one source, a list of sources, or a document with a
// sources: list; mistakes are reported with file, line and field, as in a
// config file.
func readSourcesFile(path string) ([]config.Source, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sources put: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil || len(doc.Content) == 0 {
		return nil, config.DecodeStrict(path, b, &struct{}{})
	}
	var out []config.Source
	switch n := doc.Content[0]; {
	case n.Kind == yaml.SequenceNode:
		err = config.DecodeStrict(path, b, &out)
	case n.Kind == yaml.MappingNode && hasKey(n, "sources"):
		var d struct {
			Sources []config.Source `yaml:"sources"`
		}
		err = config.DecodeStrict(path, b, &d)
		out = d.Sources
	default:
		var one config.Source
		err = config.DecodeStrict(path, b, &one)
		out = []config.Source{one}
	}
	if err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].Every == 0 && out[i].FPS == 0 {
			out[i].Every = time.Second
		}
		if err := checkSource(out[i]); err != nil {
			return nil, fmt.Errorf("%s: sources[%d] (%s): %w", path, i, out[i].ID, err)
		}
	}
	return out, nil
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

func newSourcesRmCmd() *cobra.Command {
	var o sourcesOpts
	cmd := &cobra.Command{
		Use:   "rm ID...",
		Short: "Remove sources from the catalogue (the owner stops them within about a second)",
		Args:  minArgs(1, "give the id of the source to remove"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCatalogue(cmd, func(ctx context.Context, c *cluster.Catalogue, _ string, _ []kgo.Opt) error {
				known := map[string]bool{}
				for _, s := range c.Sources() {
					known[s.ID] = true
				}
				for _, id := range args {
					if !known[id] {
						return usagef("sources rm: %q is not in the catalogue (lookout sources ls lists it)", id)
					}
					if err := c.Remove(ctx, id); err != nil {
						return fmt.Errorf("sources rm %s: %w", id, err)
					}
					fmt.Fprintln(cmd.OutOrStdout(), "removed", id)
				}
				return nil
			})
		},
	}
	o.flags(cmd)
	return cmd
}

func newSourcesLsCmd() *cobra.Command {
	var o sourcesOpts
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the catalogue with each source's owner instance and state",
		Long: `Lists every catalogue source, the instance the group assigned it to (from the
group coordinator) and its state on that instance (asked over the instance's
ops address: running, reconnecting, backoff, ...; "refused" when the owner's
cluster.allow refuses it; "unassigned" while no instance owns it).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withCatalogue(cmd, func(ctx context.Context, c *cluster.Catalogue, group string, opts []kgo.Opt) error {
				view, err := cluster.Describe(ctx, opts, group)
				if err != nil {
					return err
				}
				rows := listRows(ctx, c.Sources(), view)
				if asJSON {
					return json.NewEncoder(cmd.OutOrStdout()).Encode(rows)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tURI\tWEIGHT\tOWNER\tSTATE")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.ID, r.URI, r.Weight, r.Owner, r.State)
				}
				return tw.Flush()
			})
		},
	}
	o.flags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

type lsRow struct {
	ID     string `json:"id"`
	URI    string `json:"uri"`
	Weight int    `json:"weight"`
	Owner  string `json:"owner"`
	State  string `json:"state"`
}

func listRows(ctx context.Context, srcs []config.Source, view cluster.GroupView) []lsRow {
	states := map[string]map[string]string{} // http addr -> source -> state
	for _, m := range view.Members {
		if m.HTTP != "" {
			states[m.HTTP] = fetchStates(ctx, m.HTTP)
		}
	}
	var rows []lsRow
	for _, s := range srcs {
		r := lsRow{ID: s.ID, URI: redactURI(s.URI), Weight: max(s.Weight, 1), Owner: "-", State: "unassigned"}
		if o, ok := view.Owners[s.ID]; ok {
			r.Owner, r.State = o.Instance, "unknown"
			if st, ok := states[o.HTTP][s.ID]; ok {
				r.State = st
			} else if states[o.HTTP] != nil {
				r.State = "refused"
			}
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
	return rows
}

// fetchStates asks an instance's GET /sources for its sources' states; nil
// when it does not answer.
func fetchStates(ctx context.Context, addr string) map[string]string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/sources", nil)
	if err != nil {
		return nil
	}
	if tok := os.Getenv("LOOKOUT_HTTP_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct {
		States map[string]string `json:"states"`
	}
	if b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20)); err != nil || json.Unmarshal(b, &body) != nil {
		return nil
	}
	return body.States
}

// redactURI hides a password in a URI.
func redactURI(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if at := strings.Index(u[i+3:], "@"); at >= 0 {
			if c := strings.Index(u[i+3:i+3+at], ":"); c >= 0 {
				return u[:i+3+c+1] + "xxxxx" + u[i+3+at:]
			}
		}
	}
	return u
}
