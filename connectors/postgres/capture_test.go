package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

const mixedSchema = `
CREATE TABLE facilities (id int PRIMARY KEY, code text NOT NULL, name text, active bool, updated timestamptz DEFAULT now());
CREATE TABLE stock (facility int, product text, qty numeric(20,4), note text, PRIMARY KEY (facility, product));
CREATE TABLE "Odd Table" ("weird ""col""" int PRIMARY KEY, "select" text, "ünï" jsonb);
INSERT INTO facilities SELECT g, 'F' || g, 'Facility ' || g, g % 2 = 0 FROM generate_series(1, 250) g;
INSERT INTO stock SELECT 1 + g % 25, 'P' || g, g * 1.5, NULL FROM generate_series(1, 300) g;
INSERT INTO "Odd Table" VALUES (1, 'a', '{"k": [1, 2]}'), (2, NULL, 'null');
`

// TestSnapshotThenStream snapshots three tables (one with a composite key,
// one with odd identifiers), streams a mix of changes including a key
// change, and compares the latest image on Kafka with the source exactly.
func TestSnapshotThenStream(t *testing.T) {
	dsn, db := newDB(t, mixedSchema)
	emb := startBroker(t, t.TempDir(), "127.0.0.1:0")
	defer emb.Close()
	run := startCapture(t, emb.Addr(), testConfig(dsn, "facilities", "public.stock", `public.Odd Table`))

	exec(t, db, `
		INSERT INTO facilities SELECT g, 'F' || g, 'New ' || g, true FROM generate_series(251, 400) g;
		UPDATE facilities SET name = name || ' (renamed)', updated = now() WHERE id % 7 = 0;
		DELETE FROM facilities WHERE id % 11 = 0;
		UPDATE facilities SET id = 10000 + id WHERE id IN (1, 2, 3);
		BEGIN; UPDATE stock SET qty = qty + 0.0001, note = 'counted' WHERE facility = 3; DELETE FROM stock WHERE facility = 4; COMMIT;
		INSERT INTO "Odd Table" VALUES (3, 'ç', '{"ü": "∑"}');
		UPDATE "Odd Table" SET "select" = 'changed' WHERE "weird ""col""" = 1;
		DELETE FROM "Odd Table" WHERE "weird ""col""" = 2;`)

	recs := waitImage(t, emb.Addr(), dsn, "public.facilities", []string{"id"})
	waitImage(t, emb.Addr(), dsn, "public.stock", []string{"facility", "product"})
	waitImage(t, emb.Addr(), dsn, "public.Odd Table", []string{`weird "col"`})

	ops := map[cdc.Op]int{}
	for _, r := range recs {
		ops[r.Op]++
	}
	// 250 snapshot reads; 150 inserts + 3 re-keyed inserts; 400/7 updates;
	// 36 deletes + 3 re-keyed deletes, each followed by a tombstone.
	want := map[cdc.Op]int{cdc.OpRead: 250, cdc.OpCreate: 153, cdc.OpUpdate: 57, cdc.OpDelete: 39, cdc.OpUnknown: 39}
	for op, n := range want {
		if ops[op] != n {
			t.Errorf("facilities: %d records with op %q, want %d (all: %v)", ops[op], op, n, ops)
		}
	}
	for _, r := range recs {
		if r.Op == cdc.OpUpdate && (r.TxID == "" || r.Seq == 0 || r.CommitTime.IsZero()) {
			t.Fatalf("update without transaction metadata: %+v", r)
		}
	}
	if err := run.stop(t); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}

// TestResumeWithoutResnapshot stops the capture, changes the source while it
// is down, and checks that a restart streams exactly the missed changes
// (no second snapshot, no duplicates) and that the slot's confirmed LSN
// moved on.
func TestResumeWithoutResnapshot(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g;`)
	emb := startBroker(t, t.TempDir(), "127.0.0.1:0")
	defer emb.Close()
	cfg := testConfig(dsn, "t")
	run := startCapture(t, emb.Addr(), cfg)
	waitImage(t, emb.Addr(), dsn, "public.t", []string{"id"}) // the snapshot is on Kafka
	exec(t, db, `INSERT INTO t VALUES (51, 'live')`)
	waitImage(t, emb.Addr(), dsn, "public.t", []string{"id"})
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	lsn1 := confirmedLSN(t, dsn, cfg.Slot)
	exec(t, db, `INSERT INTO t VALUES (52, 'while down'); UPDATE t SET v = 'x' WHERE id = 1; DELETE FROM t WHERE id = 2;`)
	run = startCapture(t, emb.Addr(), cfg)
	recs := waitImage(t, emb.Addr(), dsn, "public.t", []string{"id"})
	reads, creates := 0, 0
	for _, r := range recs {
		switch r.Op {
		case cdc.OpRead:
			reads++
		case cdc.OpCreate:
			creates++
		}
	}
	if reads != 50 || creates != 2 {
		t.Fatalf("after resume: %d snapshot reads and %d inserts on Kafka, want 50 and 2 (no re-snapshot, no duplicates)", reads, creates)
	}
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	if lsn2 := confirmedLSN(t, dsn, cfg.Slot); lsn2 <= lsn1 {
		t.Fatalf("slot confirmed_flush_lsn did not advance: %s then %s", lsn1, lsn2)
	}
}

// TestBrokerRestartMidStream closes the embedded broker while changes keep
// coming and starts it again on the same port and data directory: the
// producer retries, and nothing is lost.
func TestBrokerRestartMidStream(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, 0 FROM generate_series(1, 100) g;`)
	dir := t.TempDir()
	emb := startBroker(t, dir, "127.0.0.1:0")
	addr := emb.Addr()
	startCapture(t, addr, testConfig(dsn, "t"))
	exec(t, db, `INSERT INTO t SELECT g, 1 FROM generate_series(101, 200) g`)
	waitImage(t, addr, dsn, "public.t", []string{"id"})

	emb.Close()
	exec(t, db, `INSERT INTO t SELECT g, 2 FROM generate_series(201, 300) g; UPDATE t SET v = v + 10 WHERE id % 3 = 0;`)
	time.Sleep(2 * time.Second) // the broker stays down for a while; nothing here waits on a condition
	emb = startBroker(t, dir, addr)
	defer emb.Close()
	exec(t, db, `DELETE FROM t WHERE id % 5 = 0`)
	waitImage(t, addr, dsn, "public.t", []string{"id"})
}

// TestSchemaChangeMidStream adds and drops columns while streaming; the
// following events carry the new shape.
func TestSchemaChangeMidStream(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE t (id int PRIMARY KEY, a text); INSERT INTO t VALUES (1, 'one');`)
	emb := startBroker(t, t.TempDir(), "127.0.0.1:0")
	defer emb.Close()
	startCapture(t, emb.Addr(), testConfig(dsn, "t"))
	exec(t, db, `INSERT INTO t VALUES (2, 'two');
		ALTER TABLE t ADD COLUMN b numeric(10,2) NOT NULL DEFAULT 1.5;
		INSERT INTO t VALUES (3, 'three', 2.25);
		ALTER TABLE t DROP COLUMN a;
		INSERT INTO t VALUES (4, 9.99);`)
	// ADD and DROP COLUMN emit no events for existing rows, so the latest
	// image legitimately differs from the table; look at the new events.
	byID := map[int32]cdc.Record{}
	waitFor(t, 30*time.Second, "insert 4 on Kafka", func() bool {
		for _, r := range kafkaRecords(t, emb.Addr(), "public.t") {
			if r.Op == cdc.OpCreate {
				byID[r.After["id"].(int32)] = r
			}
		}
		return byID[4].Schema != nil
	})
	cols := func(r cdc.Record) string {
		var names []string
		for _, c := range r.Schema.Columns {
			names = append(names, c.Name)
		}
		return strings.Join(names, ",")
	}
	for id, want := range map[int32]string{2: "id,a", 3: "id,a,b", 4: "id,b"} {
		if got := cols(byID[id]); got != want {
			t.Errorf("insert %d: schema columns %q, want %q", id, got, want)
		}
	}
	if c, _ := byID[3].Schema.Column("b"); c.Kind != cdc.KindDecimal || c.Scale != 2 || c.Nullable {
		t.Errorf("added column b: %+v, want a NOT NULL decimal with scale 2", c)
	}
}

// TestUnchangedToastIsAbsent updates a row without touching its large,
// TOASTed column: the update event leaves that column out (absent, not
// NULL), so a sink keeps the destination's value.
func TestUnchangedToastIsAbsent(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE t (id int PRIMARY KEY, big text, n int);
		ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL;
		INSERT INTO t SELECT 1, string_agg(md5(g::text), '') , 0 FROM generate_series(1, 2000) g;`)
	emb := startBroker(t, t.TempDir(), "127.0.0.1:0")
	defer emb.Close()
	startCapture(t, emb.Addr(), testConfig(dsn, "t"))
	exec(t, db, `UPDATE t SET n = 1 WHERE id = 1`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs := kafkaRecords(t, emb.Addr(), "public.t")
		for _, r := range recs {
			if r.Op != cdc.OpUpdate {
				continue
			}
			if _, ok := r.After["big"]; ok {
				t.Fatalf("update carries the unchanged TOASTed column big")
			}
			if r.After["n"] != int32(1) {
				t.Fatalf("update after = %v, want n = 1", r.After)
			}
			if len(recs[0].After["big"].(string)) != 64000 {
				t.Fatalf("snapshot value of big has %d chars, want 64000", len(recs[0].After["big"].(string)))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no update event on Kafka; records: %d", len(recs))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestHeartbeatAdvancesIdleSlot writes only to a table that is not
// captured; heartbeats must still move the slot so WAL is not retained.
func TestHeartbeatAdvancesIdleSlot(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE other (id serial PRIMARY KEY, pad text);`)
	emb := startBroker(t, t.TempDir(), "127.0.0.1:0")
	defer emb.Close()
	cfg := testConfig(dsn, "t")
	startCapture(t, emb.Addr(), cfg)
	waitImage(t, emb.Addr(), dsn, "public.t", []string{"id"})
	exec(t, db, `INSERT INTO other (pad) SELECT repeat('x', 500) FROM generate_series(1, 5000)`)
	var target string
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if err := conn.QueryRow(t.Context(), "SELECT pg_current_wal_lsn()::text").Scan(&target); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var behind bool
		if err := conn.QueryRow(t.Context(), "SELECT confirmed_flush_lsn < $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2",
			target, cfg.Slot).Scan(&behind); err != nil {
			t.Fatal(err)
		}
		if !behind {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot %s did not advance past %s on an idle captured table", cfg.Slot, target)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func confirmedLSN(t *testing.T, dsn, slot string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var lsn string
	if err := conn.QueryRow(t.Context(), "SELECT lpad(split_part(confirmed_flush_lsn::text, '/', 1), 8, '0') || lpad(split_part(confirmed_flush_lsn::text, '/', 2), 8, '0') FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	return lsn
}

// openErr opens a source and returns the error of Open.
func openErr(t *testing.T, cfg Config, from cdc.Position) error {
	t.Helper()
	s := New(cfg)
	err := s.Open(t.Context(), from)
	_ = s.Close(context.Background())
	return err
}

// TestClearErrors checks the messages an operator gets for setups that
// cannot work, and that they are marked permanent.
func TestClearErrors(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE nokey (a int, b text); CREATE TABLE ok (id int PRIMARY KEY);
		CREATE ROLE weak LOGIN; GRANT SELECT ON ok TO weak;`)
	tests := []struct {
		name   string
		cfg    Config
		wantIn []string
	}{
		{"table without key", testConfig(dsn, "nokey", "ok"), []string{"public.nokey", "no primary key", "REPLICA IDENTITY"}},
		{"missing table", testConfig(dsn, "nope"), []string{"public.nope does not exist"}},
		{"role without replication", testConfig(strings.Replace(dsn, "postgres@", "weak@", 1), "ok"), []string{`role "weak"`, "WITH REPLICATION"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := openErr(t, tt.cfg, nil)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			var pe *cdc.PermanentError
			if !errors.As(err, &pe) {
				t.Errorf("error is not permanent: %v", err)
			}
			for _, w := range tt.wantIn {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	_ = db
}

// TestSlotDroppedUnderneath resumes from a stored position whose slot is
// gone: with snapshot: initial that is a clear permanent error; with
// when_needed the source snapshots again.
func TestSlotDroppedUnderneath(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);`)
	emb := startBroker(t, t.TempDir(), "127.0.0.1:0")
	defer emb.Close()
	cfg := testConfig(dsn, "t")
	run := startCapture(t, emb.Addr(), cfg)
	waitImage(t, emb.Addr(), dsn, "public.t", []string{"id"})
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	exec(t, db, `SELECT pg_drop_replication_slot('`+cfg.Slot+`')`)
	err := openErr(t, cfg, encodeCheckpoint(cfg.Slot, 0x1000000, resnapID{}))
	var pe *cdc.PermanentError
	if err == nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), "dropped underneath") {
		t.Fatalf("Open after the slot was dropped = %v, want a permanent 'dropped underneath' error", err)
	}
	cfg.Snapshot = SnapshotWhenNeeded
	exec(t, db, `INSERT INTO t VALUES (3)`)
	startCapture(t, emb.Addr(), cfg)
	waitImage(t, emb.Addr(), dsn, "public.t", []string{"id"})
}

// TestWrongWalLevel needs its own server started with wal_level=replica.
func TestWrongWalLevel(t *testing.T) {
	pg := startServer(t, "wal_level", "replica")
	dsn, err := pg.CreateDatabase(t.Context(), "w")
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec(t.Context(), "w", "CREATE TABLE t (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	err = openErr(t, testConfig(dsn, "t"), nil)
	if err == nil || !strings.Contains(err.Error(), "wal_level") || !strings.Contains(err.Error(), "logical") {
		t.Fatalf("Open on wal_level=replica = %v, want an error naming wal_level = logical", err)
	}
}

// dyingSource fails its Read after a number of batches, as a crash would
// cut a snapshot short (the records already read do reach Kafka).
type dyingSource struct {
	*Source
	reads int
}

func (d *dyingSource) Read(ctx context.Context) (cdc.Batch, error) {
	if d.reads == 0 {
		return cdc.Batch{}, errors.New("simulated crash")
	}
	d.reads--
	return d.Source.Read(ctx)
}

// TestInterruptedSnapshotLeavesNoGhosts cuts a snapshot short after two
// chunks, deletes rows that are already on Kafka, and restarts: the
// deletes must reach Kafka (replayed from the old slot) so the topic's
// image equals the table, and the old slot must go away afterwards.
func TestInterruptedSnapshotLeavesNoGhosts(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, 0 FROM generate_series(1, 500) g;`)
	emb := startBroker(t, t.TempDir(), "127.0.0.1:0")
	defer emb.Close()
	cfg := testConfig(dsn, "t")
	first := startCaptureOf(t, emb.Addr(), &dyingSource{Source: New(cfg), reads: 2})
	<-first.done
	if first.err == nil || !strings.Contains(first.err.Error(), "simulated crash") {
		t.Fatalf("first run ended with %v, want the simulated crash", first.err)
	}
	if n := len(kafkaRecords(t, emb.Addr(), "public.t")); n != 200 {
		t.Fatalf("%d records on Kafka after the interrupted snapshot, want the 200 of two chunks", n)
	}
	exec(t, db, `DELETE FROM t WHERE id <= 50; UPDATE t SET v = 1 WHERE id BETWEEN 51 AND 60; INSERT INTO t VALUES (501, 0);
		UPDATE t SET id = 1000 WHERE id = 70;`)
	run := startCapture(t, emb.Addr(), cfg)
	waitImage(t, emb.Addr(), dsn, "public.t", []string{"id"})
	exec(t, db, `DELETE FROM t WHERE id = 100`)
	waitImage(t, emb.Addr(), dsn, "public.t", []string{"id"})
	waitFor(t, 20*time.Second, "the old slot to be dropped", func() bool {
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(t.Context())
		var n int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_replication_slots WHERE slot_name IN ($1, $2)",
			cfg.Slot, altSlotName(cfg.Slot)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
}

// TestPartitionedTable captures a partitioned table through its root:
// the snapshot reads every partition and changes arrive under the root.
func TestPartitionedTable(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE m (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
		CREATE TABLE m_north PARTITION OF m FOR VALUES IN ('north');
		CREATE TABLE m_south PARTITION OF m FOR VALUES IN ('south');
		INSERT INTO m SELECT g, CASE WHEN g % 2 = 0 THEN 'north' ELSE 'south' END, 0 FROM generate_series(1, 40) g;`)
	emb := startBroker(t, t.TempDir(), "127.0.0.1:0")
	defer emb.Close()
	startCapture(t, emb.Addr(), testConfig(dsn, "m"))
	exec(t, db, `INSERT INTO m VALUES (41, 'north', 1), (42, 'south', 1); UPDATE m SET v = 2 WHERE id <= 4; DELETE FROM m WHERE id = 5;`)
	waitImage(t, emb.Addr(), dsn, "public.m", []string{"id", "region"})
}

// TestLargeRow captures a row above Kafka's default 1 MiB message size, and
// stops with an error naming the table for a row above Sluice's limit.
func TestLargeRow(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE b (id int PRIMARY KEY, data bytea);`)
	emb := startBroker(t, t.TempDir(), "127.0.0.1:0")
	defer emb.Close()
	run := startCapture(t, emb.Addr(), testConfig(dsn, "b"))
	exec(t, db, `INSERT INTO b SELECT 1, decode(string_agg(md5(g::text), ''), 'hex') FROM generate_series(1, 150000) g`) // 2.4 MB
	recs := waitImage(t, emb.Addr(), dsn, "public.b", []string{"id"})
	if n := len(recs[0].After["data"].([]byte)); n != 2400000 {
		t.Fatalf("captured %d bytes, want 2400000", n)
	}
	exec(t, db, `INSERT INTO b SELECT 2, decode(string_agg(md5(g::text), ''), 'hex') FROM generate_series(1, 400000) g`) // 6.4 MB
	select {
	case <-run.done:
	case <-time.After(30 * time.Second):
		t.Fatal("capture went on past a record above the limit")
	}
	var pe *cdc.PermanentError
	if !errors.As(run.err, &pe) || !strings.Contains(run.err.Error(), "public.b") || !strings.Contains(run.err.Error(), "record limit") {
		t.Fatalf("capture ended with %v, want a permanent error naming public.b and the record limit", run.err)
	}
}

// TestTableRemovedFromSpec restarts a source without one of its tables
// while changes to it are still in the slot: they are skipped, the other
// table keeps flowing, and nothing crash-loops.
func TestTableRemovedFromSpec(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE keep (id int PRIMARY KEY); CREATE TABLE gone (id int PRIMARY KEY);`)
	emb := startBroker(t, t.TempDir(), "127.0.0.1:0")
	defer emb.Close()
	run := startCapture(t, emb.Addr(), testConfig(dsn, "keep", "gone"))
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	exec(t, db, `INSERT INTO gone VALUES (1); INSERT INTO keep VALUES (1);`)
	run = startCapture(t, emb.Addr(), testConfig(dsn, "keep"))
	exec(t, db, `INSERT INTO keep VALUES (2)`)
	waitImage(t, emb.Addr(), dsn, "public.keep", []string{"id"})
	select {
	case <-run.done:
		t.Fatalf("capture stopped: %v", run.err)
	default:
	}
}
