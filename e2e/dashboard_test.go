package e2e

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// e2eCheckDashboard parses every PromQL expression of the Grafana dashboard
// (Grafana's variables replaced by values) and checks that each metric it
// names is in a scrape of the running service's /metrics. The fleet row's
// metrics (lookout_cluster_*) exist only in cluster mode: with fleet false
// they are left out, with fleet true only they are checked (TestE2EFleet).
func e2eCheckDashboard(t *testing.T, addr string, fleet bool) {
	code, body, _, err := e2eHttpGet("http://"+addr+"/metrics", 5*time.Second)
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	families, err := tp.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	exposed := map[string]bool{}
	for name, f := range families {
		exposed[name] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				exposed[name+s] = true
			}
		}
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", "$source", ".*")
	names := map[string]bool{}
	exprs := e2eDashboard(t)
	promql := parser.NewParser(parser.Options{})
	for _, e := range exprs {
		expr, err := promql.ParseExpr(vars.Replace(e))
		if err != nil {
			t.Errorf("dashboard expression %q: %v", e, err)
			continue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && strings.HasPrefix(vs.Name, "lookout_cluster_") == fleet {
				names[vs.Name] = true
			}
			return nil
		})
	}
	var missing, all []string
	for n := range names {
		all = append(all, n)
		if !exposed[n] {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	sort.Strings(all)
	if want := map[bool]int{false: 15, true: 5}[fleet]; len(names) < want {
		t.Errorf("the dashboard names only %d metrics: %v", len(names), all)
	}
	if len(missing) > 0 {
		t.Errorf("the dashboard names metrics /metrics does not expose: %v", missing)
	}
	t.Logf("%d dashboard expressions name %d metrics, all exposed: %v", len(exprs), len(names), all)
}
