package observe_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The files under deploy/ that the Prometheus test checks: alert rules,
// Grafana dashboards and their datasource provisioning.

// ruleFiles returns deploy/prometheus's rule files (those with groups).
func ruleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir, "prometheus", "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("groups:")) {
			abs, err := filepath.Abs(f)
			if err != nil {
				t.Fatal(err)
			}
			rules = append(rules, abs)
		}
	}
	if len(rules) == 0 {
		t.Fatal("no alert rule files in deploy/prometheus")
	}
	return rules
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// loadAlerts reads every alerting rule and checks that it tells the
// operator what is wrong and what to do.
func loadAlerts(t *testing.T, files []string) []alertRule {
	t.Helper()
	var all []alertRule
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []struct {
				Rules []alertRule `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				if r.Annotations["summary"] == "" || len(r.Annotations["description"]) < 80 || r.Labels["severity"] == "" {
					t.Errorf("alert %s needs a severity, a summary and a description that says what to do", r.Alert)
				}
				all = append(all, r)
			}
		}
	}
	// The alerts the issue asks for, by what they watch.
	for _, want := range []string{`state="failed"`, `state="paused"`, "consumer_lag", "end_to_end_latency",
		"retained_wal", "dead_letters", "source_connected"} {
		if !slices.ContainsFunc(all, func(r alertRule) bool { return strings.Contains(r.Expr, want) }) {
			t.Errorf("no alert watches %s", want)
		}
	}
	return all
}

// dashQuery is one query of a dashboard panel.
type dashQuery struct {
	where string // dashboard and panel title
	expr  string
}

// loadDashboards reads every Grafana dashboard under deploy/grafana and
// returns its panel queries, and the queries of its variables as the
// series they list.
func loadDashboards(t *testing.T) []dashQuery {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join(deployDir, "grafana"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("want an overview and a drill-down dashboard in deploy/grafana, found %v", files)
	}
	dsUID := datasourceUID(t)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	var qs []dashQuery
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Title  string `json:"title"`
			Panels []struct {
				Title      string `json:"title"`
				Type       string `json:"type"`
				Datasource struct {
					UID string `json:"uid"`
				} `json:"datasource"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
			Templating struct {
				List []struct {
					Name       string `json:"name"`
					Definition string `json:"definition"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		panels := 0
		for _, p := range d.Panels {
			if p.Type == "row" {
				continue
			}
			panels++
			if p.Datasource.UID != dsUID {
				t.Errorf("%s: panel %q uses datasource %q, the provisioned one is %q", d.Title, p.Title, p.Datasource.UID, dsUID)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", d.Title, p.Title)
			}
			for _, tg := range p.Targets {
				qs = append(qs, dashQuery{where: d.Title + ": " + p.Title, expr: tg.Expr})
			}
		}
		if panels < 6 {
			t.Errorf("%s: only %d panels", d.Title, panels)
		}
		for _, v := range d.Templating.List {
			m := labelValues.FindStringSubmatch(v.Definition)
			if m == nil {
				t.Errorf("%s: variable %s: %q is not label_values(series, label)", d.Title, v.Name, v.Definition)
				continue
			}
			qs = append(qs, dashQuery{where: d.Title + ": variable " + v.Name, expr: fmt.Sprintf("group by (%s) (%s)", m[2], m[1])})
		}
	}
	return qs
}

// datasourceUID returns the uid of the provisioned Prometheus datasource.
func datasourceUID(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "grafana", "provisioning", "datasources", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil || len(doc.Datasources) != 1 || doc.Datasources[0].Type != "prometheus" {
		t.Fatalf("datasource provisioning: want one prometheus datasource (err %v)", err)
	}
	return doc.Datasources[0].UID
}

var (
	metricName      = regexp.MustCompile(`\bsluice_[a-z0-9_]+`)
	histogramSuffix = regexp.MustCompile(`_(bucket|sum|count)$`)
)

// checkNames fails when expr uses a sluice_* metric that is not exported.
func checkNames(t *testing.T, where, expr string, exported map[string]bool) {
	t.Helper()
	for _, name := range metricName.FindAllString(expr, -1) {
		base := histogramSuffix.ReplaceAllString(name, "")
		if !exported[name] && !exported[base+"_count"] && !exported[base] {
			t.Errorf("%s: %s is not exported", where, name)
		}
	}
}
