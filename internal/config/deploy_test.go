package config

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestDeployManifests parses deploy/k8s/*.yaml, checks the ConfigMap's
// lookout config against the config schema (strict decoding and
// validation), and checks that the Deployment runs that file, names each
// instance after its pod and probes the ops server's port.
func TestDeployManifests(t *testing.T) {
	files, _ := filepath.Glob("../../deploy/k8s/*.yaml")
	if len(files) == 0 {
		t.Fatal("no manifests in deploy/k8s/")
	}
	configs := map[string]map[string]string{} // configmap -> key -> content
	var deployments []map[string]any
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			name, _ := dig(doc, "metadata", "name").(string)
			switch doc["kind"] {
			case "ConfigMap":
				configs[name] = map[string]string{}
				for k, v := range dig(doc, "data").(map[string]any) {
					configs[name][k] = v.(string)
				}
			case "Deployment":
				deployments = append(deployments, doc)
			}
		}
	}
	if len(deployments) != 1 {
		t.Fatalf("want one Deployment, found %d", len(deployments))
	}
	d := deployments[0]
	c := dig(d, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
	args := strings.Join(toStrings(c["args"]), " ")
	cfgMount := ""
	for _, m := range c["volumeMounts"].([]any) {
		if m.(map[string]any)["name"] == "config" {
			cfgMount = m.(map[string]any)["mountPath"].(string)
		}
	}
	var cmName string
	for _, v := range dig(d, "spec", "template", "spec", "volumes").([]any) {
		if v.(map[string]any)["name"] == "config" {
			cmName = dig(v.(map[string]any), "configMap", "name").(string)
		}
	}
	key := strings.TrimPrefix(strings.Fields(strings.SplitN(args, "--config", 2)[1])[0], cfgMount+"/")
	text, ok := configs[cmName][key]
	if !ok {
		t.Fatalf("the Deployment runs %q but ConfigMap %q has no key %q", args, cmName, key)
	}
	env := map[string]bool{}
	for _, e := range c["env"].([]any) {
		env[e.(map[string]any)["name"].(string)] = true
	}
	cfg, err := Parse([]byte(text), func(k string) string {
		if env[k] {
			return "from-env"
		}
		return ""
	})
	if err != nil {
		t.Fatalf("ConfigMap %s key %s: %v", cmName, key, err)
	}
	if !cfg.Cluster.Enabled || !env["LOOKOUT_INSTANCE"] {
		t.Fatalf("the fleet needs cluster.enabled and LOOKOUT_INSTANCE per pod: %+v, env %v", cfg.Cluster, env)
	}
	port := strings.Split(cfg.HTTP.Listen, ":")[1]
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		path := dig(c, probe, "httpGet", "path")
		if path != "/readyz" && path != "/healthz" {
			t.Errorf("%s probes %v", probe, path)
		}
	}
	if p, _ := strconv.Atoi(port); c["ports"].([]any)[0].(map[string]any)["containerPort"] != p {
		t.Errorf("containerPort %v but http.listen %s", p, cfg.HTTP.Listen)
	}
	t.Setenv("LOOKOUT_HTTP_TOKEN", "x")
	if _, err := Load("../../configs/cluster.yaml"); err != nil {
		t.Errorf("configs/cluster.yaml: %v", err)
	}
}

func dig(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
