package observe_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-cdc/sluice/broker"
	"github.com/sluice-cdc/sluice/internal/throwaway"
	"github.com/sluice-cdc/sluice/observe"
	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/pipelines/worker"
)

// testPG is the throwaway PostgreSQL server of this package's tests; each
// test gets its own databases.
var testPG *throwaway.Postgres

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	pg, err := throwaway.StartPostgres(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "observe tests need a PostgreSQL server:", err)
		os.Exit(1)
	}
	testPG = pg
	code := m.Run()
	_ = pg.Stop(context.Background())
	os.Exit(code)
}

// running is a Sluice worker running in this test process: one source
// capturing table items of database <name>_src and one pipeline applying it
// to <name>_dst, with its metrics, /healthz and /readyz served over HTTP.
type running struct {
	name           string
	url            string // of the observe handler
	srcDSN, dstDSN string
	logPath        string
}

// startSluice starts the worker against the Kafka broker at brokerAddr;
// it stops when the test ends.
func startSluice(t *testing.T, name, brokerAddr string) *running {
	t.Helper()
	ctx := t.Context()
	r := &running{name: name, logPath: filepath.Join(t.TempDir(), "sluice.log")}
	var err error
	if r.srcDSN, err = testPG.CreateDatabase(ctx, name+"_src"); err != nil {
		t.Fatal(err)
	}
	if r.dstDSN, err = testPG.CreateDatabase(ctx, name+"_dst"); err != nil {
		t.Fatal(err)
	}
	if err := testPG.Exec(ctx, name+"_src", `CREATE TABLE items (id int PRIMARY KEY, v text, note text);
		INSERT INTO items SELECT g, 'v' || g, 'n' FROM generate_series(1, 500) g`); err != nil {
		t.Fatal(err)
	}
	specs, err := spec.Parse([]byte(fmt.Sprintf(`kind: Source
name: src
postgres: {dsn: %q, tables: [public.items]}
---
kind: Pipeline
name: copy
from: {source: src}
stages: [{drop: [note]}]
sink:
  postgres: {dsn: %q}
  create_tables: true
`, r.srcDSN, r.dstDSN)), "specs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	m := observe.New("test")
	w := &worker.Worker{
		Instance: name,
		Kafka:    broker.Config{Brokers: []string{brokerAddr}, ClientID: "sluice-" + name},
		Logger:   slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:  m,
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() {
		done <- w.Run(wctx, []*spec.Source{specs[0].(*spec.Source)}, []*spec.Pipeline{specs[1].(*spec.Pipeline)})
	}()
	srv := httptest.NewServer(observe.Handler(m))
	r.url = srv.URL
	t.Cleanup(func() {
		srv.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("worker did not stop within 30s")
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(r.logPath)
			lines := strings.Split(string(b), "\n")
			t.Logf("last lines of the sluice log:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	return r
}

// traffic inserts, updates and deletes rows of items every 50ms until the
// test ends.
func (r *running) traffic(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	conn, err := pgx.Connect(ctx, r.srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		conn.Close(context.Background())
	})
	wg.Go(func() {
		for id := 1000; ctx.Err() == nil; id++ {
			for _, q := range []string{
				"INSERT INTO items VALUES ($1, 'new', 'n')",
				"UPDATE items SET v = v || 'x' WHERE id = $1 - 500",
				"DELETE FROM items WHERE id = $1 - 700",
			} {
				if _, err := conn.Exec(ctx, q, id); err != nil {
					// The test sees missing data; a goroutine must not
					// fail it.
					return
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

// get fetches path of the observe handler.
func (r *running) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(r.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// waitReady polls /readyz until it answers want (and a body containing
// every string of contains) or timeout passes.
func (r *running) waitReady(t *testing.T, want int, timeout time.Duration, contains ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var code int
	var body string
	for time.Now().Before(deadline) {
		code, body = r.get(t, "/readyz")
		ok := code == want
		for _, c := range contains {
			ok = ok && strings.Contains(body, c)
		}
		if ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("/readyz did not answer %d (with %q) within %v; last: %d %q", want, contains, timeout, code, body)
}

// count returns the rows of items in the destination (0 while the table
// does not exist yet).
func (r *running) count(t *testing.T, where string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), r.dstDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM items WHERE "+where).Scan(&n); err != nil {
		return 0
	}
	return n
}
