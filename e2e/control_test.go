package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// cli runs a client command of the sluice binary against srv's API.
func cli(t *testing.T, srv *server, args ...string) string {
	t.Helper()
	cmd := exec.Command(sluiceBin, append(args, "--server", "http://"+srv.listen)...)
	cmd.Env = append(os.Environ(), "SLUICE_TOKEN=e2e-admin-token")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	waitFor(t, 60*time.Second, url, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// TestClearAndReplayWithNewTransformation is the workflow an operator uses
// when a migration's mapping changes: run a pipeline, change one stage,
// replay it with clear in one call, and find in the destination exactly
// what the new transformation produces. It then restarts the server
// without spec files and checks that the new version still runs.
func TestClearAndReplayWithNewTransformation(t *testing.T) {
	ctx := t.Context()
	src, err := testPG.CreateDatabase(ctx, "replay_src")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := testPG.CreateDatabase(ctx, "replay_dst")
	if err != nil {
		t.Fatal(err)
	}
	if err := testPG.Exec(ctx, "replay_src", `CREATE TABLE products (id int PRIMARY KEY, name text, price numeric(10,2));
		INSERT INTO products SELECT g, 'product ' || g, g * 1.5 FROM generate_series(1, 500) g;`); err != nil {
		t.Fatal(err)
	}
	source := `kind: Source
name: src
postgres: {dsn: "${env:SRC_DSN}", tables: [products], heartbeat_interval: 1s}
`
	pipeline := func(stage string) string {
		return `kind: Pipeline
name: prod
from: {source: src}
stages:
  - ` + stage + `
sink: {postgres: {dsn: "${env:DST_DSN}"}, create_tables: true}
`
	}
	srv, _ := newServer(t, "replay", source+"---\n"+pipeline("rename: {table: v3.products, fields: {name: title}}"),
		"SRC_DSN="+src, "DST_DSN="+dst, "SLUICE_TOKENS=admin:e2e-admin-token")
	srv.start()
	waitHTTP(t, "http://"+srv.listen+"/healthz")
	want := tableDigestBy(t, src, "products", "id::text, name, price::text", "id")
	waitFor(t, 60*time.Second, "the first transformation's output", func() bool {
		return tableDigestBy(t, dst, "v3.products", "id::text, title, price::text", "id") == want
	})

	// The new transformation: the title comes from the name, but the
	// price is no longer migrated.
	dir := t.TempDir()
	newSpec := filepath.Join(dir, "prod.yaml")
	if err := os.WriteFile(newSpec, []byte(source+"---\n"+pipeline("keep: [name]\n  - rename: {table: v3.products, fields: {name: title}}")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := cli(t, srv, "apply", "-f", newSpec); !strings.Contains(out, "pipeline/prod: version 2") {
		t.Fatalf("apply: %s", out)
	}
	if out := cli(t, srv, "pipeline", "replay", "prod", "--clear"); !strings.Contains(out, "cleared v3.products") {
		t.Fatalf("replay: %s", out)
	}
	want = tableDigestBy(t, src, "products", "id::text, name, NULL::text", "id")
	waitFor(t, 60*time.Second, "the destination to hold the new transformation's output", func() bool {
		return tableDigestBy(t, dst, "v3.products", "id::text, title, price::text", "id") == want
	})
	if out := cli(t, srv, "status"); !strings.Contains(out, "prod") || !strings.Contains(out, "running") {
		t.Fatalf("status:\n%s", out)
	}

	// A restart without spec files runs what the control topic holds.
	srv.stop()
	srv.args = slices.DeleteFunc(srv.args, func(a string) bool { return a == "-f" || strings.HasSuffix(a, "specs.yaml") })
	srv.start()
	waitHTTP(t, "http://"+srv.listen+"/healthz")
	waitFor(t, 60*time.Second, "the API after a restart", func() bool {
		cmd := exec.CommandContext(context.Background(), sluiceBin, "get", "pipelines", "prod", "--server", "http://"+srv.listen)
		cmd.Env = append(os.Environ(), "SLUICE_TOKEN=e2e-admin-token")
		out, err := cmd.CombinedOutput()
		return err == nil && strings.Contains(string(out), `"version": 2`)
	})
	if err := testPG.Exec(ctx, "replay_src", `INSERT INTO products VALUES (501, 'after restart', 9.99)`); err != nil {
		t.Fatal(err)
	}
	want = tableDigestBy(t, src, "products", "id::text, name, NULL::text", "id")
	waitFor(t, 60*time.Second, "a change after the restart", func() bool {
		return tableDigestBy(t, dst, "v3.products", "id::text, title, price::text", "id") == want
	})
	srv.stop()
}
