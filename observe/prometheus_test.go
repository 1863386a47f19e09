package observe_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-cdc/sluice/broker"
)

// deployDir holds the dashboards, alert rules and Prometheus config.
const deployDir = "../deploy"

// wantMetrics are the metric families the observability issue asks for
// (histograms by their base name). The MySQL binlog position lag is not
// there: Sluice has no MySQL source yet.
var wantMetrics = []string{
	// Per source and table.
	"sluice_source_events_total",                  // events captured, by op
	"sluice_source_bytes_total",                   // bytes
	"sluice_source_capture_lag_seconds",           // source commit -> Kafka ack
	"sluice_source_slot_retained_wal_bytes",       // PostgreSQL slot retained WAL
	"sluice_source_slot_confirmed_lag_bytes",      // confirmed LSN lag
	"sluice_source_snapshot_done_rows",            // snapshot progress: done
	"sluice_source_snapshot_estimated_rows",       // ... out of estimated
	"sluice_source_connected",                     // for "source disconnected"
	"sluice_source_state",                         // running/paused/failed/stopped
	"sluice_source_restarts_total",                // restarts
	"sluice_source_checkpoints_total",             // positions stored
	"sluice_pipeline_consumed_records_total",      // records in
	"sluice_pipeline_stage_in_records_total",      // per stage: in
	"sluice_pipeline_stage_out_records_total",     // out
	"sluice_pipeline_stage_dropped_records_total", // dropped
	"sluice_pipeline_dead_letters_total",          // dead-lettered
	"sluice_pipeline_applied_records_total",       // applied by op
	"sluice_pipeline_batch_size_records",          // batch size histogram
	"sluice_pipeline_apply_duration_seconds",      // apply duration histogram
	"sluice_pipeline_consumer_lag_records",        // consumer lag in records
	"sluice_pipeline_consumer_lag_seconds",        // ... and seconds
	"sluice_pipeline_end_to_end_latency_seconds",  // source commit -> destination commit
	"sluice_pipeline_state",                       // running/paused/failed/stopped
	"sluice_pipeline_restarts_total",              // restarts
	"sluice_pipeline_failures_total",              // failed sessions
	"sluice_pipeline_connected",                   // for readiness and alerts
	"sluice_pipeline_info",                        // pipeline -> source
	"sluice_kafka_reachable",
	"sluice_build_info",
	// Process and Go runtime.
	"process_resident_memory_bytes", "process_cpu_seconds_total", "go_goroutines", "go_memstats_heap_inuse_bytes",
}

// TestPrometheusDashboardsAndAlerts runs a real Prometheus scraping a
// Sluice with live traffic. Every metric the issue asks for must be
// exported; the alert rules must pass promtool and evaluate without
// errors; every query of the Grafana dashboards must evaluate and, with
// traffic flowing, return series.
func TestPrometheusDashboardsAndAlerts(t *testing.T) {
	t.Parallel()
	promBin, promtool := requireBinary(t, "prometheus"), requireBinary(t, "promtool")
	rules := ruleFiles(t)
	for _, f := range rules {
		if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
			t.Fatalf("promtool check rules %s: %v\n%s", f, err, out)
		}
	}
	if out, err := exec.Command(promtool, "check", "config", filepath.Join(deployDir, "prometheus", "prometheus.yml")).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	dashboards := loadDashboards(t)
	alerts := loadAlerts(t, rules)

	emb, err := broker.StartEmbedded(filepath.Join(t.TempDir(), "kafka"), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	r := startSluice(t, "obs_prom", emb.Addr())
	r.traffic(t)
	prom := startPrometheus(t, promBin, strings.TrimPrefix(r.url, "http://"), rules)

	// Wait until the traffic shows in Prometheus: a rate needs two
	// scrapes of changed counters.
	prom.waitSeries(t, `rate(sluice_pipeline_applied_records_total{op="c"}[10s]) > 0`, 40*time.Second)
	prom.waitSeries(t, `rate(sluice_pipeline_end_to_end_latency_seconds_count[10s]) > 0`, 20*time.Second)

	// Live values, not just series created at zero: the slot query, the
	// snapshot progress and the stage counts reach Prometheus.
	for _, expr := range []string{
		`sluice_source_slot_retained_wal_bytes{source="src"} > 0`,
		`sluice_source_snapshot_done_rows{source="src", table="public.items"} == 500`,
		`sluice_source_snapshot_estimated_rows{source="src", table="public.items"} >= 500`,
		`sluice_source_checkpoints_total{source="src"} > 0`,
		`sluice_pipeline_stage_in_records_total{pipeline="copy", stage="stages[0].drop"} > 0`,
		`sluice_pipeline_info{pipeline="copy", source="src"} == 1`,
	} {
		prom.waitSeries(t, expr, 25*time.Second)
	}

	exported := map[string]bool{}
	for _, s := range prom.query(t, `group by (__name__) ({__name__=~"sluice_.+|process_.+|go_.+"})`) {
		exported[s.Metric["__name__"]] = true
	}
	for _, name := range wantMetrics {
		if !exported[name] && !exported[name+"_count"] {
			t.Errorf("metric %s is not exported", name)
		}
	}

	vars := strings.NewReplacer("$__rate_interval", "10s", "$pipeline", "copy", "$source", "src")
	for _, q := range dashboards {
		expr := vars.Replace(q.expr)
		checkNames(t, q.where, expr, exported)
		series, err := prom.tryQuery(expr)
		switch {
		case err != nil:
			t.Errorf("%s: %s: %v", q.where, expr, err)
		case len(series) == 0:
			t.Errorf("%s: %s: no series while traffic flows", q.where, expr)
		}
	}
	for _, a := range alerts {
		checkNames(t, "alert "+a.Alert, a.Expr, exported)
		if _, err := prom.tryQuery(a.Expr); err != nil {
			t.Errorf("alert %s: %s: %v", a.Alert, a.Expr, err)
		}
	}
	prom.checkRuleHealth(t, len(alerts))
}

// requireBinary returns the path of a Prometheus tool, failing the test
// (never skipping) when it is not installed.
func requireBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: these tests run a real Prometheus. Install the Debian package prometheus "+
			"(`make deps`, or apt-get install prometheus): %v", name, err)
	}
	return p
}

// prometheus is a Prometheus server run by a test.
type prometheus struct {
	url string
}

// startPrometheus runs Prometheus scraping target every second and
// evaluating rules every second; it stops when the test ends.
func startPrometheus(t *testing.T, bin, target string, rules []string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	rulesYAML, err := yaml.Marshal(rules)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
%s
scrape_configs:
  - job_name: sluice
    static_configs:
      - targets: [%q]
`, indent(string(rulesYAML)), target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("prometheus log:\n%s", b)
		}
	})
	p := &prometheus{url: "http://" + addr}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 20s (err %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n  ")
}

type series struct {
	Metric map[string]string `json:"metric"`
}

// tryQuery evaluates expr now through the HTTP API.
func (p *prometheus) tryQuery(expr string) ([]series, error) {
	resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("decode answer (HTTP %d): %w", resp.StatusCode, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s", r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector", r.Data.ResultType)
	}
	var out []series
	if err := json.Unmarshal(r.Data.Result, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func (p *prometheus) query(t *testing.T, expr string) []series {
	t.Helper()
	s, err := p.tryQuery(expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return s
}

// waitSeries waits until expr returns a series.
func (p *prometheus) waitSeries(t *testing.T, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(p.query(t, expr)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no series for %s after %v", expr, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkRuleHealth waits until Prometheus evaluated every alert rule and
// fails for any it could not evaluate.
func (p *prometheus) checkRuleHealth(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(p.url + "/api/v1/rules?type=alert")
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name      string `json:"name"`
						Health    string `json:"health"`
						LastError string `json:"lastError"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		var n, ok int
		var bad []string
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				n++
				switch rule.Health {
				case "ok":
					ok++
				case "err":
					bad = append(bad, rule.Name+": "+rule.LastError)
				}
			}
		}
		if len(bad) > 0 {
			t.Fatalf("alert rules Prometheus cannot evaluate: %v", bad)
		}
		if n == want && ok == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus loaded %d alert rules (%d evaluated ok), want %d", n, ok, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
