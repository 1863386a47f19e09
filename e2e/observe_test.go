package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestServerObservability runs `sluice server --log-format json` with a
// source and a pipeline and reads what an operator's tools read: /readyz
// answers 200 once everything is connected, /metrics has live per-table
// series, SIGTERM stops it cleanly, and every log line is a JSON object,
// with the source or pipeline on the lines of one, and neither the
// password of a DSN nor row contents anywhere. Go's profiles are served
// on --debug-listen, and only there.
func TestServerObservability(t *testing.T) {
	ctx := t.Context()
	const password, rowValue = "pw-e2e-secret-2b9f", "row-value-e2e-7c1d"
	withPassword := func(dsn string) string {
		return strings.Replace(dsn, "postgres@", "postgres:"+password+"@", 1) // trust auth ignores it
	}
	src, err := testPG.CreateDatabase(ctx, "observe_src")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := testPG.CreateDatabase(ctx, "observe_dst")
	if err != nil {
		t.Fatal(err)
	}
	if err := testPG.Exec(ctx, "observe_src", "CREATE TABLE patients (id int PRIMARY KEY, name text); "+
		"INSERT INTO patients SELECT g, '"+rowValue+"' FROM generate_series(1, 100) g"); err != nil {
		t.Fatal(err)
	}
	srv, _ := newServer(t, "observe", `kind: Source
name: clinic
postgres: {dsn: "${env:SRC_DSN}", tables: [patients]}
---
kind: Pipeline
name: copy
from: {source: clinic}
sink: {postgres: {dsn: "${env:DST_DSN}"}, create_tables: true}
`, "SRC_DSN="+withPassword(src), "DST_DSN="+withPassword(dst))
	debugAddr := freeAddr(t)
	srv.args = append(srv.args, "--log-format", "json", "--debug-listen", debugAddr)
	srv.start()
	base := "http://" + srv.listen
	waitHTTP(t, base+"/readyz")
	if heap := httpGet(t, "http://"+debugAddr+"/debug/pprof/heap?debug=1"); !strings.HasPrefix(heap, "heap profile:") {
		t.Errorf("heap profile on --debug-listen: %.200s", heap)
	}
	if g := httpGet(t, "http://"+debugAddr+"/debug/pprof/goroutine?debug=1"); !strings.Contains(g, "pipelines/apply.(*Runner)") {
		t.Errorf("goroutine profile on --debug-listen shows no pipeline runner:\n%.2000s", g)
	}
	if resp, err := http.Get(base + "/debug/pprof/heap"); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/heap on --listen: %s, want 404: profiles are only on --debug-listen", resp.Status)
	}

	if err := testPG.Exec(ctx, "observe_src", "INSERT INTO patients VALUES (101, '"+rowValue+"')"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the new row in the destination", func() bool {
		conn, err := pgx.Connect(ctx, dst)
		if err != nil {
			return false
		}
		defer conn.Close(ctx)
		var n int
		return conn.QueryRow(ctx, "SELECT count(*) FROM patients").Scan(&n) == nil && n == 101
	})
	metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{
		`sluice_source_events_total{op="r",source="clinic",table="public.patients"} 100`,
		`sluice_pipeline_applied_records_total{op="c",pipeline="copy",table="public.patients"} 1`,
		`sluice_pipeline_state{pipeline="copy",state="running"} 1`,
		`sluice_kafka_reachable 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if ready := httpGet(t, base+"/readyz"); strings.TrimSpace(ready) != "ready" {
		t.Errorf("/readyz = %q", ready)
	}
	srv.stop()

	b, err := os.ReadFile(srv.logPath)
	if err != nil {
		t.Fatal(err)
	}
	unitLines := map[string]string{ // message -> the attribute naming its unit
		"capturing": "source", "streaming": "source", "snapshot started": "source", "created replication slot": "source",
		"pipeline consuming": "pipeline", "postgres sink open": "pipeline", "source stopped": "source", "pipeline stopped": "pipeline",
		"profiling endpoints listening": "addr",
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.Contains(line, password) || strings.Contains(line, rowValue) {
			t.Errorf("log line shows a password or row contents: %s", line)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %s", line)
			continue
		}
		msg, _ := rec["msg"].(string)
		if attr, ok := unitLines[msg]; ok {
			seen[msg] = true
			if rec[attr] == nil {
				t.Errorf("log line %q has no %s attribute: %s", msg, attr, line)
			}
		}
	}
	for msg := range unitLines {
		if !seen[msg] {
			t.Errorf("no log line %q", msg)
		}
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
