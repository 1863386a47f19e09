package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluice-cdc/sluice/internal/throwaway"
)

// tableDigest is a table's row count and an md5 of the text of the given
// columns, row by row in id order.
func tableDigest(t *testing.T, dsn, table, cols string) string {
	return tableDigestBy(t, dsn, table, cols, "id")
}

// tableDigestBy is tableDigest with rows in order of the order column.
func tableDigestBy(t *testing.T, dsn, table, cols, order string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		return "connect: " + err.Error()
	}
	defer conn.Close(context.Background())
	var n int64
	var h string
	err = conn.QueryRow(t.Context(), fmt.Sprintf(
		`SELECT count(*), coalesce(md5(string_agg(concat_ws('|', %s), E'\n' ORDER BY %s)), '') FROM %s`, cols, order, table)).Scan(&n, &h)
	if err != nil {
		return "query: " + err.Error()
	}
	return fmt.Sprintf("%d rows, md5 %s", n, h)
}

// waitSame waits until a source and a destination table digest equal.
func waitSame(t *testing.T, d time.Duration, srcDSN, srcTable, dstDSN, dstTable, cols string) {
	t.Helper()
	waitSameBy(t, d, srcDSN, srcTable, dstDSN, dstTable, cols, "id")
}

// waitSameBy is waitSame with rows in order of the order column.
func waitSameBy(t *testing.T, d time.Duration, srcDSN, srcTable, dstDSN, dstTable, cols, order string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		a, b := tableDigestBy(t, srcDSN, srcTable, cols, order), tableDigestBy(t, dstDSN, dstTable, cols, order)
		if a == b {
			t.Logf("%s == %s: %s", srcTable, dstTable, a)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("destination %s did not converge to source %s within %s: source %s, destination %s", dstTable, srcTable, d, a, b)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestApplyExactlyOnceUnderSIGKILL runs a source and two pipelines of the
// same table (upsert and history) under a live load and SIGKILLs the whole
// server 12 times: during the snapshot, while the pipelines apply it, and
// while changes stream. At the end the upsert table equals the source row
// for row, and the history table holds every change exactly once: no
// change twice, and no version of any row missing.
func TestApplyExactlyOnceUnderSIGKILL(t *testing.T) {
	ctx := t.Context()
	src, err := testPG.CreateDatabase(ctx, "applykill")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := testPG.CreateDatabase(ctx, "applykill_dst")
	if err != nil {
		t.Fatal(err)
	}
	if err := testPG.Exec(ctx, "applykill", `CREATE TABLE items (id bigint PRIMARY KEY, ver int NOT NULL, v text, n numeric(20,6), j jsonb);
		INSERT INTO items SELECT g, 0, 'row ' || g, g / 7.0, jsonb_build_object('g', g) FROM generate_series(1, 30000) g;`); err != nil {
		t.Fatal(err)
	}
	specs := `kind: Source
name: src
postgres:
  dsn: ${env:SRC_DSN}
  tables: [items]
  snapshot_chunk_rows: 1000
  heartbeat_interval: 1s
---
kind: Pipeline
name: copy
from: {source: src}
sink:
  postgres: {dsn: "${env:DST_DSN}"}
  create_tables: true
  batch_rows: 700
---
kind: Pipeline
name: hist
from: {source: src, tables: [items]}
stages:
  - rename: {table: public.items_history}
sink:
  postgres: {dsn: "${env:DST_DSN}"}
  mode: history
  create_tables: true
  batch_rows: 300
`
	srv, addr := newServer(t, "akill", specs, "SRC_DSN="+src, "DST_DSN="+dst)
	srv.start()
	// Kill 1: as soon as the first snapshot rows are applied.
	waitFor(t, 60*time.Second, "first rows in the destination", func() bool {
		return !strings.HasPrefix(tableDigest(t, dst, "items", "id"), "query") &&
			!strings.HasPrefix(tableDigest(t, dst, "items", "id"), "0 rows")
	})
	srv.kill()
	t.Logf("SIGKILL 1 during snapshot/apply: destination has %s", tableDigest(t, dst, "items", "id"))

	pool, err := pgxpool.New(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var loadErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		loadErr = applyLoad(loadCtx, pool)
	}()
	for i := range 11 {
		srv.start()
		time.Sleep(time.Duration(300+rand.IntN(2200)) * time.Millisecond) // a random moment to crash at
		srv.kill()
		t.Logf("SIGKILL %d under load", i+2)
	}
	srv.start()
	time.Sleep(time.Second)
	stopLoad()
	wg.Wait()
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	const cols = "id::text, ver::text, quote_nullable(v), n::text, j::text"
	waitSame(t, 120*time.Second, src, "items", dst, "items", cols)

	// Every change once: a streamed change is identified by its row, its
	// operation and its source position.
	conn, err := pgx.Connect(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var doubled int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM items_history
		GROUP BY id, __op, __position HAVING count(*) > 1) d`).Scan(&doubled); err != nil {
		t.Fatal(err)
	}
	if doubled > 0 {
		t.Errorf("%d changes are in the history table more than once", doubled)
	}
	// No change missing, none added: the history table holds exactly the
	// changes on Kafka (which, capture being at least once, may hold some
	// twice: those count once).
	onKafka := map[string]bool{}
	for _, e := range readTopic(t, addr, "akill.src.public.items") {
		if e.op != "" {
			onKafka[fmt.Sprintf("%s|%s|%X/%X", e.key, e.op, uint64(e.lsn)>>32, uint32(e.lsn))] = true
		}
	}
	inHistory := map[string]bool{}
	rows, err := conn.Query(ctx, "SELECT id::text || '|' || __op || '|' || __position FROM items_history")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		inHistory[k] = true
	}
	var missing, extra []string
	for k := range onKafka {
		if !inHistory[k] {
			missing = append(missing, k)
		}
	}
	for k := range inHistory {
		if !onKafka[k] {
			extra = append(extra, k)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("history table vs Kafka: %d changes missing (e.g. %v), %d not on Kafka (e.g. %v)",
			len(missing), missing[:min(5, len(missing))], len(extra), extra[:min(5, len(extra))])
	}
	t.Logf("history table: %d distinct changes, as on Kafka", len(inHistory))
	// And the stream itself has no gap: every update bumps ver by one, so
	// a streamed version is at most one above the one before it (a
	// snapshot read taken again may jump: it folds the updates meanwhile).
	var gaps int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (
		SELECT __op, ver, lag(ver) OVER (PARTITION BY id ORDER BY ver) AS prev FROM items_history WHERE __op IN ('r', 'c', 'u')
		) h WHERE prev IS NOT NULL AND ver > prev + 1 AND __op <> 'r'`).Scan(&gaps); err != nil {
		t.Fatal(err)
	}
	if gaps > 0 {
		t.Errorf("%d streamed row versions are missing from the history table", gaps)
	}
	srv.stop()
}

// applyLoad updates, inserts and deletes rows of items in small
// transactions until ctx ends; every update bumps ver by one.
func applyLoad(ctx context.Context, pool *pgxpool.Pool) error {
	next := 1000000
	return loadUntilDone(ctx, pool, 5*time.Millisecond, func(tx pgx.Tx) error {
		for range 10 {
			if _, err := tx.Exec(ctx, "UPDATE items SET ver = ver + 1, v = v || '+', n = n + 0.5 WHERE id = $1", 1+rand.IntN(30000)); err != nil {
				return err
			}
		}
		next++
		if _, err := tx.Exec(ctx, "INSERT INTO items VALUES ($1, 0, 'new', 1.25, '{\"new\": true}')", next); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM items WHERE id = $1", 1+rand.IntN(30000))
		return err
	})
}

// TestApplyDestinationOutage stops the destination server while changes
// flow, and checks that the pipeline waits, retries, and catches up by
// itself once the destination is back, while the source keeps capturing.
func TestApplyDestinationOutage(t *testing.T) {
	ctx := t.Context()
	src, err := testPG.CreateDatabase(ctx, "outage")
	if err != nil {
		t.Fatal(err)
	}
	if err := testPG.Exec(ctx, "outage", `CREATE TABLE items (id bigint PRIMARY KEY, ver int NOT NULL, v text);
		INSERT INTO items SELECT g, 0, 'row ' || g FROM generate_series(1, 2000) g;`); err != nil {
		t.Fatal(err)
	}
	dpg, err := throwaway.StartPostgres(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer dpg.Stop(context.Background())
	dst, err := dpg.CreateDatabase(ctx, "outage_dst")
	if err != nil {
		t.Fatal(err)
	}
	specs := `kind: Source
name: src
postgres: {dsn: "${env:SRC_DSN}", tables: [items], heartbeat_interval: 1s}
---
kind: Pipeline
name: copy
from: {source: src}
sink: {postgres: {dsn: "${env:DST_DSN}"}, create_tables: true}
`
	srv, _ := newServer(t, "outage", specs, "SRC_DSN="+src, "DST_DSN="+dst)
	srv.start()
	const cols = "id::text, ver::text, v"
	waitSame(t, 60*time.Second, src, "items", dst, "items", cols)

	dpg.Kill()
	if err := testPG.Exec(ctx, "outage", `UPDATE items SET ver = ver + 1 WHERE id % 3 = 0;
		INSERT INTO items SELECT g, 0, 'late' FROM generate_series(2001, 3000) g; DELETE FROM items WHERE id % 10 = 0;`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // the pipeline fails and retries meanwhile
	if err := dpg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitSame(t, 90*time.Second, src, "items", dst, "items", cols)
	if srv.cmd == nil || srv.cmd.ProcessState != nil {
		t.Fatal("the server exited during the outage")
	}
	b, _ := os.ReadFile(srv.logPath)
	if !strings.Contains(string(b), "retrying") && !strings.Contains(string(b), "restarting") {
		t.Error("the log does not say that the pipeline retried")
	}
	srv.stop()
}

// TestApplyTypesAndOddNames sends every column type through the whole path
// (source, Kafka, pipeline, sink) into a table created by the sink, with
// odd schema, table and column names, and checks every value's text in
// the destination against the source. It also checks that an update that
// leaves a large TOASTed column unchanged keeps it in the destination.
func TestApplyTypesAndOddNames(t *testing.T) {
	ctx := t.Context()
	src, err := testPG.CreateDatabase(ctx, "types_src")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := testPG.CreateDatabase(ctx, "types_dst")
	if err != nil {
		t.Fatal(err)
	}
	const ddl = `CREATE SCHEMA "Odd Schema";
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ü');
CREATE TABLE "Odd Schema"."Tab'le ü" (
  "select" int PRIMARY KEY, "a b" text, "Größe" numeric(38,12), n2 numeric, ts timestamptz, tsl timestamp, d date,
  tm time, iv interval, u uuid, jb jsonb, js json, by bytea, ia int[], ta text[], m mood, b boolean,
  f8 float8, f4 real, big text, i2 smallint, i8 bigint, vc varchar(20), ch char(3));
INSERT INTO "Odd Schema"."Tab'le ü" VALUES
 (1, 'plain', 123456.789012345678, 1e-20, '2024-02-29 23:59:59.123456+05:30', '0044-03-15 12:00:00 BC', 'infinity',
  '23:59:59.999999', '1 year 2 mons -3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": [1, 2.50, null], "a": "ü"}',
  '{"keep":   "spacing"}', '\x00ff10', '{{1,2},{3,NULL}}', '{"a,b","",NULL,"q\"uote"}', 'happy ü', true,
  'NaN', '-Infinity', repeat(md5('x'), 800), -32768, 9223372036854775807, 'varchar', 'ab'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, E'tab\tnew\nline\\back', -0.000000000001, 'NaN', '-infinity', 'infinity', '4713-01-01 BC', '00:00', '-178000000 years',
  '00000000-0000-0000-0000-000000000000', '[]', 'null', '\x', '{}', '{}', 'sad', false, 1.5e308, 3.4e38, '', 0, -1, '', '');`
	if err := testPG.Exec(ctx, "types_src", ddl); err != nil {
		t.Fatal(err)
	}
	specs := `kind: Source
name: src
postgres: {dsn: "${env:SRC_DSN}", tables: ["Odd Schema.Tab'le ü"], heartbeat_interval: 1s}
---
kind: Pipeline
name: types
from: {source: src}
sink: {postgres: {dsn: "${env:DST_DSN}"}, create_tables: true}
`
	srv, _ := newServer(t, "types", specs, "SRC_DSN="+src, "DST_DSN="+dst)
	srv.start()
	const table = `"Odd Schema"."Tab'le ü"`
	cols := `"select"::text, quote_nullable("a b"), quote_nullable("Größe"::text), quote_nullable(n2::text), quote_nullable(ts::text),
		quote_nullable(tsl::text), quote_nullable(d::text), quote_nullable(tm::text), quote_nullable(iv::text), quote_nullable(u::text),
		quote_nullable(jb::text), quote_nullable(js::text), quote_nullable(by::text), quote_nullable(ia::text), quote_nullable(ta::text),
		quote_nullable(m::text), quote_nullable(b::text), quote_nullable(f8::text), quote_nullable(f4::text), quote_nullable(md5(big)),
		quote_nullable(i2::text), quote_nullable(i8::text), quote_nullable(vc::text), quote_nullable(ch::text)`
	waitSameBy(t, 60*time.Second, src, table, dst, table, cols, `"select"`)

	// A streamed insert and an update that does not touch the TOASTed
	// column: PostgreSQL does not send it, and the destination keeps it.
	if err := testPG.Exec(ctx, "types_src", `INSERT INTO "Odd Schema"."Tab'le ü" ("select", "a b", big)
		SELECT 4, 'streamed', string_agg(md5(g::text), '') FROM generate_series(1, 1000) g;
		UPDATE "Odd Schema"."Tab'le ü" SET "a b" = 'changed' WHERE "select" IN (1, 4);`); err != nil {
		t.Fatal(err)
	}
	waitSameBy(t, 60*time.Second, src, table, dst, table, cols, `"select"`)
	var types string
	conn, err := pgx.Connect(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, `SELECT string_agg(format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute
		WHERE attrelid = '"Odd Schema"."Tab''le ü"'::regclass AND attnum > 0`).Scan(&types); err != nil {
		t.Fatal(err)
	}
	t.Logf("destination column types: %s", types)
	if !strings.Contains(types, "numeric(38,12)") || !strings.Contains(types, "timestamp with time zone") {
		t.Errorf("created column types do not follow the source: %s", types)
	}
	srv.stop()
}
