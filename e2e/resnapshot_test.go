package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// startTwoTables creates a source database with tables a (rows rows) and b
// (2000 rows) and an empty destination, and starts a server (instance
// name) whose source captures both, chunkRows rows per snapshot query, and
// whose pipeline copies them; it returns the two DSNs, the server and its
// broker address.
func startTwoTables(t *testing.T, name string, rows, chunkRows int) (src, dst string, srv *server, addr string) {
	t.Helper()
	ctx := t.Context()
	srcDB := name + "_src"
	src, err := testPG.CreateDatabase(ctx, srcDB)
	if err != nil {
		t.Fatal(err)
	}
	if dst, err = testPG.CreateDatabase(ctx, name+"_dst"); err != nil {
		t.Fatal(err)
	}
	if err := testPG.Exec(ctx, srcDB, fmt.Sprintf(`
		CREATE TABLE a (id bigint PRIMARY KEY, ver int NOT NULL, pad text);
		INSERT INTO a SELECT g, 0, repeat('a', 100) FROM generate_series(1, %d) g;
		CREATE TABLE b (id bigint PRIMARY KEY, ver int NOT NULL, pad text);
		INSERT INTO b SELECT g, 0, 'b' FROM generate_series(1, 2000) g;`, rows)); err != nil {
		t.Fatal(err)
	}
	specs := fmt.Sprintf(`kind: Source
name: src
postgres: {dsn: "${env:SRC_DSN}", tables: [a, b], snapshot_chunk_rows: %d, heartbeat_interval: 1s}
---
kind: Pipeline
name: copy
from: {source: src}
sink: {postgres: {dsn: "${env:DST_DSN}"}, create_tables: true}
`, chunkRows)
	srv, addr = newServer(t, name, specs, "SRC_DSN="+src, "DST_DSN="+dst, "SLUICE_TOKENS=admin:e2e-admin-token")
	srv.start()
	return src, dst, srv, addr
}

// TestResnapshotSurvivesSIGKILL damages a pipeline's destination table,
// asks the running source (with the CLI) to read that table again under a
// live load on it and on another table, and SIGKILLs the server while the
// source is at it. After a restart the stored request is carried out
// again: the destination equals the source for both tables, the table was
// read again and the other was not, and the old replication slot is gone.
func TestResnapshotSurvivesSIGKILL(t *testing.T) {
	ctx := t.Context()
	const srcDB = "resnap_src"
	src, dst, srv, addr := startTwoTables(t, "resnap", 40000, 500)
	waitHTTP(t, "http://"+srv.listen+"/healthz")
	const cols = "id::text, ver::text, pad"
	waitSame(t, 90*time.Second, src, "a", dst, "a", cols)
	waitSame(t, 30*time.Second, src, "b", dst, "b", cols)

	// Rows lost and damaged downstream: only reading a again repairs them.
	dstPool, err := pgxpool.New(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer dstPool.Close()
	if _, err := dstPool.Exec(ctx, `DELETE FROM a WHERE id % 10 = 0; UPDATE a SET pad = 'damaged' WHERE id % 10 = 1`); err != nil {
		t.Fatal(err)
	}

	pool, err := pgxpool.New(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var loadErr error
	wg.Go(func() { loadErr = twoTableLoad(loadCtx, pool) })

	// Kill the server while the source reads a again: once its second
	// slot exists. Should the resnapshot be over before the kill, ask again.
	killed := false
	for attempt := 1; attempt <= 3 && !killed; attempt++ {
		out := cli(t, srv, "source", "resnapshot", "src", "--tables", "public.a")
		if want := fmt.Sprintf("source/src: resnapshot %d of public.a accepted", attempt); !strings.Contains(out, want) {
			t.Fatalf("resnapshot: %q, want %q", out, want)
		}
		waitFor(t, 60*time.Second, "the source's second slot", func() bool { return slotCount(t, src, srcDB) == 2 })
		srv.kill()
		killed = slotCount(t, src, srcDB) == 2
		t.Logf("SIGKILL during resnapshot %d: it was still going on: %v", attempt, killed)
		srv.start()
		waitFor(t, 60*time.Second, "the API after the restart", func() bool { return sourceStatus(t, srv, "src").State != "" })
		if !killed {
			// Asking for the same tables before the source reports the
			// request done would be the same request.
			waitFor(t, 60*time.Second, "the source to report the request done", func() bool {
				st := sourceStatus(t, srv, "src")
				return st.Resnapshot != nil && st.Resnapshot.State == "done"
			})
		}
	}
	if !killed {
		t.Fatal("every resnapshot was over before the SIGKILL")
	}
	waitFor(t, 90*time.Second, "the resnapshot to complete after the restart", func() bool {
		st := sourceStatus(t, srv, "src")
		return st.Resnapshot != nil && st.Resnapshot.State == "done"
	})
	time.Sleep(500 * time.Millisecond) // some load after it too
	stopLoad()
	wg.Wait()
	if loadErr != nil {
		t.Fatal(loadErr)
	}

	waitSame(t, 90*time.Second, src, "a", dst, "a", cols)
	waitSame(t, 60*time.Second, src, "b", dst, "b", cols)
	waitFor(t, 30*time.Second, "the old slot to be dropped", func() bool { return slotCount(t, src, srcDB) == 1 })
	reads := func(topic string) int {
		n := 0
		for _, e := range readTopic(t, addr, topic) {
			if e.op == "r" {
				n++
			}
		}
		return n
	}
	if n := reads("resnap.src.public.a"); n < 2*40000 {
		t.Errorf("a: %d snapshot reads on Kafka, want the initial 40000 and at least one full resnapshot", n)
	}
	if n := reads("resnap.src.public.b"); n != 2000 {
		t.Errorf("b: %d snapshot reads on Kafka, want only the initial 2000", n)
	}
	if out := cli(t, srv, "status"); !strings.Contains(out, "source/src: resnapshot") || !strings.Contains(out, "public.a: done") {
		t.Errorf("status does not show the completed resnapshot:\n%s", out)
	}
	srv.stop()
}

// twoTableLoad changes a and b in small transactions until ctx ends.
func twoTableLoad(ctx context.Context, pool *pgxpool.Pool) error {
	next := 1000000
	return loadUntilDone(ctx, pool, 10*time.Millisecond, func(tx pgx.Tx) error {
		for range 5 {
			if _, err := tx.Exec(ctx, "UPDATE a SET ver = ver + 1 WHERE id = $1", 1+rand.IntN(40000)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "UPDATE b SET ver = ver + 1 WHERE id = $1", 1+rand.IntN(2000)); err != nil {
				return err
			}
		}
		next++
		for _, q := range []string{"INSERT INTO a VALUES ($1, 0, 'new')", "INSERT INTO b VALUES ($1, 0, 'new')"} {
			if _, err := tx.Exec(ctx, q, next); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "DELETE FROM a WHERE id = $1", 1+rand.IntN(40000)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM b WHERE id = $1", 1+rand.IntN(2000))
		return err
	})
}

// slotCount counts the replication slots of database db.
func slotCount(t *testing.T, dsn, db string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_replication_slots WHERE database = $1", db).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// sourceStatus is GET /v1/sources/NAME/status (zero while the server does
// not answer).
func sourceStatus(t *testing.T, srv *server, name string) (st struct {
	State      string `json:"state"`
	Resnapshot *struct {
		ID    int64  `json:"id"`
		State string `json:"state"`
	} `json:"resnapshot"`
}) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+srv.listen+"/v1/sources/"+name+"/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer e2e-admin-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &st)
	return st
}

// TestResnapshotCancel cancels, with the CLI, a resnapshot while the source
// reads the table again: the source drops the slot it created for it and
// streams on, the destination still follows the source, and asking again
// for the same tables before it is done answers the same request.
func TestResnapshotCancel(t *testing.T) {
	ctx := t.Context()
	const srcDB = "resnapc_src"
	src, dst, srv, _ := startTwoTables(t, "resnapc", 60000, 200)
	defer srv.stop()
	waitHTTP(t, "http://"+srv.listen+"/healthz")
	const cols = "id::text, ver::text, pad"
	waitSame(t, 90*time.Second, src, "a", dst, "a", cols)
	waitSame(t, 30*time.Second, src, "b", dst, "b", cols)

	pool, err := pgxpool.New(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var loadErr error
	wg.Go(func() { loadErr = twoTableLoad(loadCtx, pool) })

	cancelled := false
	var id int64
	for attempt := 1; attempt <= 3 && !cancelled; attempt++ {
		out := cli(t, srv, "source", "resnapshot", "src", "--tables", "public.a")
		id = int64(attempt)
		if want := fmt.Sprintf("source/src: resnapshot %d of public.a accepted", id); !strings.Contains(out, want) {
			t.Fatalf("resnapshot: %q, want %q", out, want)
		}
		waitFor(t, 60*time.Second, "the source's second slot", func() bool {
			st := sourceStatus(t, srv, "src")
			return slotCount(t, src, srcDB) == 2 || (st.Resnapshot != nil && st.Resnapshot.State == "done")
		})
		// A client retrying: the same request, the source goes on.
		if out := cli(t, srv, "source", "resnapshot", "src", "--tables", "a"); !strings.Contains(out, fmt.Sprintf("resnapshot %d of public.a accepted (the same request", id)) &&
			!strings.Contains(out, fmt.Sprintf("resnapshot %d of public.a accepted", id+1)) {
			t.Fatalf("resnapshot again: %q", out)
		} else if !strings.Contains(out, "the same request") {
			id++ // it was done already: a new request
		}
		out, err := cliErr(srv, "source", "resnapshot", "src", "--cancel")
		switch {
		case err == nil && strings.Contains(out, fmt.Sprintf("source/src: resnapshot %d of public.a cancelled", id)):
			cancelled = true
		case err != nil && strings.Contains(out, "is done"):
			t.Logf("resnapshot %d was done before it was cancelled", id)
			waitFor(t, 60*time.Second, "the old slot to be dropped", func() bool { return slotCount(t, src, srcDB) == 1 })
		default:
			t.Fatalf("resnapshot --cancel: %v\n%s", err, out)
		}
	}
	if !cancelled {
		t.Fatal("every resnapshot was done before it was cancelled")
	}
	waitFor(t, 60*time.Second, "the slot of the cancelled resnapshot to be dropped", func() bool { return slotCount(t, src, srcDB) == 1 })
	if st := sourceStatus(t, srv, "src"); st.Resnapshot == nil || st.Resnapshot.ID != id || st.Resnapshot.State != "cancelled" {
		t.Fatalf("status after the cancellation: %+v", st)
	}
	if out := cli(t, srv, "source", "resnapshot", "src", "--cancel"); !strings.Contains(out, "cancelled") {
		t.Fatalf("cancelling again: %q", out)
	}
	time.Sleep(500 * time.Millisecond) // the source streams on
	stopLoad()
	wg.Wait()
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	waitSame(t, 90*time.Second, src, "a", dst, "a", cols)
	waitSame(t, 60*time.Second, src, "b", dst, "b", cols)
	if out := cli(t, srv, "status"); !strings.Contains(out, fmt.Sprintf("resnapshot %d of public.a: cancelled", id)) {
		t.Errorf("status does not show the cancelled resnapshot:\n%s", out)
	}
	if st := sourceStatus(t, srv, "src"); st.State != "running" {
		t.Errorf("source state %q, want running", st.State)
	}
}

// cliErr runs a client command of the sluice binary and returns its
// output and error.
func cliErr(srv *server, args ...string) (string, error) {
	cmd := exec.Command(sluiceBin, append(args, "--server", "http://"+srv.listen)...)
	cmd.Env = append(os.Environ(), "SLUICE_TOKEN=e2e-admin-token")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
