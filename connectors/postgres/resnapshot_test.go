package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-cdc/sluice/broker"
	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// Table t is read again; table o only streams. Every change of the load
// bumps a row's ver by one, so a gap in a key's versions is a lost change.
const resnapSchema = `
CREATE TABLE t (id int PRIMARY KEY, ver int NOT NULL DEFAULT 0, v text);
CREATE TABLE o (id int PRIMARY KEY, ver int NOT NULL DEFAULT 0, v text);
INSERT INTO t SELECT g, 0, 't' || g FROM generate_series(1, 1500) g;
INSERT INTO o SELECT g, 0, 'o' || g FROM generate_series(1, 300) g;`

// resnapEvents records what a source tells Config.OnResnapshot.
type resnapEvents struct {
	mu     sync.Mutex
	events []string
}

func (e *resnapEvents) on(id int64, done bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, fmt.Sprintf("%d:%v", id, done))
}

func (e *resnapEvents) has(ev string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range e.events {
		if x == ev {
			return true
		}
	}
	return false
}

// updateLoad bumps ver of random rows of t and o in small transactions
// until the returned function is called.
func updateLoad(t *testing.T, dsn string) (stop func()) {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var loadErr error
	wg.Go(func() {
		for ctx.Err() == nil {
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				for range 5 {
					if _, err := tx.Exec(ctx, "UPDATE o SET ver = ver + 1 WHERE id = $1", 1+rand.IntN(300)); err != nil {
						return err
					}
					if _, err := tx.Exec(ctx, "UPDATE t SET ver = ver + 1 WHERE id = $1", 1+rand.IntN(1500)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil && ctx.Err() == nil {
				loadErr = err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	return func() {
		cancel()
		wg.Wait()
		pool.Close()
		if loadErr != nil {
			t.Fatalf("load: %v", loadErr)
		}
	}
}

// countOp counts the records of op.
func countOp(recs []cdc.Record, op cdc.Op) int {
	n := 0
	for _, r := range recs {
		if r.Op == op {
			n++
		}
	}
	return n
}

// checkNoGaps fails if a streamed version of a key is more than one above
// the previous one: a change is missing. Runs may start again lower (at
// least once after a restart), and snapshot reads may jump.
func checkNoGaps(t *testing.T, table string, recs []cdc.Record) {
	t.Helper()
	last := map[string]int32{}
	for i, r := range recs {
		k := keyString([]string{"id"}, r.Key)
		if r.Op == cdc.OpDelete || r.Op == cdc.OpUnknown {
			delete(last, k)
			continue
		}
		v := r.After["ver"].(int32)
		if prev, ok := last[k]; ok && r.Op != cdc.OpRead && v > prev+1 {
			t.Fatalf("%s key %s: version %d follows %d at record %d: a change is missing", table, k, v, prev, i)
		}
		last[k] = v
	}
}

// commitLSN is the commit position of a streamed record, from its
// transaction id (xid:commit LSN).
func commitLSN(t *testing.T, r cdc.Record) pglogrepl.LSN {
	t.Helper()
	_, s, ok := strings.Cut(r.TxID, ":")
	n, err := strconv.ParseUint(s, 10, 64)
	if !ok || err != nil {
		t.Fatalf("record %+v: transaction id %q has no commit LSN", r, r.TxID)
	}
	return pglogrepl.LSN(n)
}

// checkResnapshotOrder checks a topic around the resnapshot's reads that
// start at record from: every change before them committed before their
// consistent point P (its commit record starts below P: the old slot's
// share), every change after them at or after it (a commit record that
// starts exactly at P is decoded by the new slot). It returns P.
func checkResnapshotOrder(t *testing.T, table string, recs []cdc.Record, from int) pglogrepl.LSN {
	t.Helper()
	if from >= len(recs) || recs[from].Op != cdc.OpRead {
		t.Fatalf("%s: record %d is not a snapshot read", table, from)
	}
	p := pglogrepl.LSN(recs[from].Source.Extra["lsn"].(int64))
	end := from
	for end < len(recs) && recs[end].Op == cdc.OpRead {
		end++
	}
	for i, r := range recs {
		if r.Op == cdc.OpRead || r.Op == cdc.OpUnknown {
			continue
		}
		if c := commitLSN(t, r); (i < from && c >= p) || (i >= end && c < p) {
			t.Fatalf("%s record %d (%s, commit %s) is on the wrong side of the resnapshot at %s (reads at %d..%d)",
				table, i, r.Op, c, p, from, end)
		}
	}
	return p
}

// storedCheckpoint reads the source's stored checkpoint.
func storedCheckpoint(t *testing.T, addr string) checkpoint {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	store, err := broker.NewStore(t.Context(), cl, broker.NewTopics(cl, 1, -1), "_sluice.test.offsets")
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.Get(t.Context(), "src")
	if err != nil {
		t.Fatal(err)
	}
	var cp checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		t.Fatalf("stored checkpoint %q: %v", b, err)
	}
	return cp
}

// ourSlots returns the names of the source's slots that exist.
func ourSlots(t *testing.T, cfg Config) []string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), "SELECT slot_name::text FROM pg_replication_slots WHERE slot_name IN ($1, $2) ORDER BY 1",
		cfg.Slot, altSlotName(cfg.Slot))
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// waitOneSlot waits until only the slot named want is left.
func waitOneSlot(t *testing.T, cfg Config, want string) {
	t.Helper()
	waitFor(t, 20*time.Second, "only slot "+want+" to be left", func() bool {
		s := ourSlots(t, cfg)
		return len(s) == 1 && s[0] == want
	})
}

// dropSlotsAtEnd drops the source's slots when the test ends, once its
// capture runs stopped (cleanups run last registered first, so call it
// before starting them), so that the package's tests stay within the
// shared server's max_replication_slots.
func dropSlotsAtEnd(t *testing.T, cfg Config) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, cfg.DSN)
		if err != nil {
			t.Logf("dropping the test's slots: %v", err)
			return
		}
		defer conn.Close(context.Background())
		for {
			var active, left int
			err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE active), count(*) FROM pg_replication_slots
				WHERE slot_name IN ($1, $2)`, cfg.Slot, altSlotName(cfg.Slot)).Scan(&active, &left)
			if err == nil && left == 0 {
				return
			}
			if err == nil && active == 0 {
				_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
					WHERE slot_name IN ($1, $2) AND NOT active`, cfg.Slot, altSlotName(cfg.Slot))
			}
			if ctx.Err() != nil {
				t.Logf("dropping the test's slots: %v", err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// waitSlotsIdle waits until no walsender holds the source's slots (after
// a run ended, the server lets go of them a moment later).
func waitSlotsIdle(t *testing.T, cfg Config) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	waitFor(t, 20*time.Second, "the slots to be released", func() bool {
		var active bool
		err := conn.QueryRow(t.Context(), "SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name IN ($1, $2)",
			cfg.Slot, altSlotName(cfg.Slot)).Scan(&active)
		return err == nil && !active
	})
}

// TestResnapshotWhileStreaming reads table t again while a load changes t
// and o, with more changes of both waiting in the slot from while the
// source restarted for the request. On Kafka: t's rows come again as r
// at one consistent point, every change of t before them committed before
// it and every one after them after it; o gets no r and loses no change;
// both topics replay to the tables. The old slot is dropped and the
// stored position records the request, so a restart does not redo it.
func TestResnapshotWhileStreaming(t *testing.T) {
	dsn, db := newDB(t, resnapSchema)
	emb := startBroker(t, t.TempDir(), "127.0.0.1:0")
	defer emb.Close()
	addr := emb.Addr()
	cfg := testConfig(dsn, "t", "o")
	dropSlotsAtEnd(t, cfg)
	run := startCapture(t, addr, cfg)
	waitImage(t, addr, dsn, "public.t", []string{"id"})
	exec(t, db, `UPDATE t SET ver = ver + 1 WHERE id <= 10; UPDATE o SET ver = ver + 1 WHERE id <= 10;`)
	waitImage(t, addr, dsn, "public.o", []string{"id"})
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	// Changes between the stored position and the new consistent point.
	exec(t, db, `UPDATE o SET ver = ver + 1 WHERE id <= 20; DELETE FROM t WHERE id BETWEEN 11 AND 20;
		INSERT INTO o SELECT g, 0, 'new' FROM generate_series(301, 310) g; DELETE FROM o WHERE id = 300;
		UPDATE t SET ver = ver + 1 WHERE id <= 5;`)
	before := len(kafkaRecords(t, addr, "public.t"))
	oReads := countOp(kafkaRecords(t, addr, "public.o"), cdc.OpRead)

	stopLoad := updateLoad(t, dsn)
	ev := &resnapEvents{}
	cfg.Resnapshot = &ResnapshotRequest{ID: 1, Tables: []cdc.TableID{{Schema: "public", Name: "t"}}}
	cfg.OnResnapshot = ev.on
	run = startCapture(t, addr, cfg)
	waitFor(t, 45*time.Second, "the resnapshot to be durable", func() bool { return ev.has("1:true") })
	time.Sleep(300 * time.Millisecond) // some load after the resnapshot too
	stopLoad()

	tRecs := waitImage(t, addr, dsn, "public.t", []string{"id"})
	oRecs := waitImage(t, addr, dsn, "public.o", []string{"id"})
	if n := countOp(tRecs[before:], cdc.OpRead); n != 1490 {
		t.Errorf("t: %d snapshot reads after the request, want its 1490 rows", n)
	}
	checkResnapshotOrder(t, "t", tRecs, before+slicesIndexOp(tRecs[before:], cdc.OpRead))
	if n := countOp(oRecs, cdc.OpRead); n != oReads {
		t.Errorf("o was read again: %d snapshot reads, before %d", n, oReads)
	}
	checkNoGaps(t, "t", tRecs)
	checkNoGaps(t, "o", oRecs)
	waitOneSlot(t, cfg, altSlotName(cfg.Slot))
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	if cp := storedCheckpoint(t, addr); cp.Resnapshot != 1 || cp.Slot != altSlotName(cfg.Slot) {
		t.Fatalf("stored checkpoint %+v, want resnapshot 1 on the alternate slot", cp)
	}

	// The same request again: it is done, nothing is read again.
	waitSlotsIdle(t, cfg)
	ev = &resnapEvents{}
	cfg.OnResnapshot = ev.on
	run = startCapture(t, addr, cfg)
	exec(t, db, `UPDATE t SET ver = ver + 1 WHERE id = 1`)
	tRecs2 := waitImage(t, addr, dsn, "public.t", []string{"id"})
	if n := countOp(tRecs2, cdc.OpRead); n != countOp(tRecs, cdc.OpRead) {
		t.Errorf("a done request was taken again: %d snapshot reads, before %d", n, countOp(tRecs, cdc.OpRead))
	}
	if !ev.has("1:true") || ev.has("1:false") {
		t.Errorf("OnResnapshot calls %v, want only 1:true", ev.events)
	}
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}

	// The same ID with another nonce is another request (as after the
	// configs topic was rebuilt with the offsets topic kept): it is
	// carried out, not passed for done.
	waitSlotsIdle(t, cfg)
	ev = &resnapEvents{}
	cfg.Resnapshot = &ResnapshotRequest{ID: 1, Nonce: "after-rebuild", Tables: []cdc.TableID{{Schema: "public", Name: "t"}}}
	cfg.OnResnapshot = ev.on
	run = startCapture(t, addr, cfg)
	waitFor(t, 45*time.Second, "the new request 1 to be durable", func() bool { return ev.has("1:true") })
	tRecs3 := waitImage(t, addr, dsn, "public.t", []string{"id"})
	if n, was := countOp(tRecs3, cdc.OpRead), countOp(tRecs2, cdc.OpRead); n != was+1490 {
		t.Errorf("t: %d snapshot reads, before %d: want the 1490 rows read again", n, was)
	}
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	if cp := storedCheckpoint(t, addr); cp.resnapshot() != (resnapID{1, "after-rebuild"}) || cp.Slot != cfg.Slot {
		t.Fatalf("stored checkpoint %+v, want the new request 1 on %s", cp, cfg.Slot)
	}
}

func slicesIndexOp(recs []cdc.Record, op cdc.Op) int {
	for i, r := range recs {
		if r.Op == op {
			return i
		}
	}
	return len(recs)
}

// capturedThenStopped starts a source on resnapSchema's tables on a
// broker of its own, waits until public.t's image is on Kafka and stops
// it: a source with a stored position, where the resnapshot tests begin.
func capturedThenStopped(t *testing.T) (dsn, db, addr string, cfg Config) {
	t.Helper()
	dsn, db = newDB(t, resnapSchema)
	emb := startBroker(t, t.TempDir(), "127.0.0.1:0")
	t.Cleanup(func() { emb.Close() })
	addr = emb.Addr()
	cfg = testConfig(dsn, "t", "o")
	dropSlotsAtEnd(t, cfg)
	run := startCapture(t, addr, cfg)
	waitImage(t, addr, dsn, "public.t", []string{"id"})
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	return dsn, db, addr, cfg
}

// TestResnapshotCrashIsRedone cuts resnapshots short (during the replay of
// the current slot, and during the reads), changes both tables while the
// source is down, and restarts with the same request: it is taken again
// from the stored position, rows deleted meanwhile do not stay alive on
// Kafka, nothing of o is lost, and the leftover slot is dropped.
func TestResnapshotCrashIsRedone(t *testing.T) {
	dsn, db, addr, cfg := capturedThenStopped(t)
	cfg.Resnapshot = &ResnapshotRequest{ID: 1, Tables: []cdc.TableID{{Schema: "public", Name: "t"}}}
	for _, reads := range []int{1, 6} {
		// One transaction per harvest read: the first crash hits the
		// replay of the current slot, the second the snapshot's reads.
		exec(t, db, `UPDATE o SET ver = ver + 1 WHERE id <= 3; UPDATE o SET ver = ver + 1 WHERE id <= 2;
			UPDATE t SET ver = ver + 1 WHERE id <= 3;`)
		dying := startCaptureOf(t, addr, &dyingSource{Source: New(cfg), reads: reads})
		<-dying.done
		if dying.err == nil || !strings.Contains(dying.err.Error(), "simulated crash") {
			t.Fatalf("run ended with %v, want the simulated crash", dying.err)
		}
		if cp := storedCheckpoint(t, addr); cp.Resnapshot != 0 || cp.Slot != cfg.Slot {
			t.Fatalf("after a crash during the resnapshot the stored checkpoint is %+v, want resnapshot 0 on %s", cp, cfg.Slot)
		}
		if s := ourSlots(t, cfg); len(s) != 2 {
			t.Fatalf("slots after the crash: %v, want the current one and the new one", s)
		}
		waitSlotsIdle(t, cfg)
	}
	if n := countOp(kafkaRecords(t, addr, "public.t"), cdc.OpRead); n <= 1500 {
		t.Fatalf("t has %d snapshot reads: the second crash did not cut the reads short", n)
	}
	// Rows the cut-short reads published, deleted while the source is down.
	exec(t, db, `DELETE FROM t WHERE id <= 50; UPDATE o SET ver = ver + 1 WHERE id <= 100;`)
	ev := &resnapEvents{}
	cfg.OnResnapshot = ev.on
	run := startCapture(t, addr, cfg)
	waitFor(t, 45*time.Second, "the resnapshot to be durable", func() bool { return ev.has("1:true") })
	exec(t, db, `UPDATE o SET ver = ver + 1 WHERE id = 7; DELETE FROM t WHERE id = 60;`)
	tRecs := waitImage(t, addr, dsn, "public.t", []string{"id"})
	oRecs := waitImage(t, addr, dsn, "public.o", []string{"id"})
	checkNoGaps(t, "t", tRecs)
	checkNoGaps(t, "o", oRecs)
	if n := countOp(oRecs, cdc.OpRead); n != 300 {
		t.Errorf("o has %d snapshot reads, want only the initial 300", n)
	}
	waitOneSlot(t, cfg, altSlotName(cfg.Slot))
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	if cp := storedCheckpoint(t, addr); cp.Resnapshot != 1 {
		t.Fatalf("stored checkpoint %+v, want resnapshot 1", cp)
	}
}

// TestResnapshotOfUncapturedTable: a request naming only tables the source
// no longer captures is done without reading anything, and at once: not
// only at the next change or heartbeat, which on a quiet database may be
// long in coming.
func TestResnapshotOfUncapturedTable(t *testing.T) {
	dsn, db := newDB(t, resnapSchema)
	emb := startBroker(t, t.TempDir(), "127.0.0.1:0")
	defer emb.Close()
	cfg := testConfig(dsn, "o")
	dropSlotsAtEnd(t, cfg)
	run := startCapture(t, emb.Addr(), cfg)
	waitImage(t, emb.Addr(), dsn, "public.o", []string{"id"})
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	waitSlotsIdle(t, cfg)
	ev := &resnapEvents{}
	cfg.Resnapshot = &ResnapshotRequest{ID: 4, Tables: []cdc.TableID{{Schema: "public", Name: "t"}}}
	cfg.OnResnapshot = ev.on
	cfg.Heartbeat = time.Hour // no idle checkpoint
	run = startCapture(t, emb.Addr(), cfg)
	waitFor(t, 5*time.Second, "the request to be done without a change", func() bool { return ev.has("4:true") })
	if cp := storedCheckpoint(t, emb.Addr()); cp.Resnapshot != 4 {
		t.Errorf("stored checkpoint %+v, want it to record request 4", cp)
	}
	exec(t, db, `UPDATE o SET ver = ver + 1 WHERE id = 1`)
	waitImage(t, emb.Addr(), dsn, "public.o", []string{"id"})
	if ev.has("4:false") {
		t.Errorf("OnResnapshot calls %v: nothing should have started", ev.events)
	}
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	if n := countOp(kafkaRecords(t, emb.Addr(), "public.o"), cdc.OpRead); n != 300 {
		t.Errorf("o has %d snapshot reads, want 300", n)
	}
	if s := ourSlots(t, cfg); len(s) != 1 || s[0] != cfg.Slot {
		t.Errorf("slots %v, want only %s", s, cfg.Slot)
	}
}

// TestCheckpointFormat: checkpoints written before resnapshots existed
// read as "no request done", those written before nonces as the ID alone,
// and the fields round-trip.
func TestCheckpointFormat(t *testing.T) {
	cp, lsn, err := decodeCheckpoint(cdc.Position(`{"v":1,"slot":"s","lsn":"0/1A2B"}`))
	if err != nil || cp.resnapshot() != (resnapID{}) || cp.Slot != "s" || lsn != 0x1A2B {
		t.Fatalf("old checkpoint: %+v, %s, %v", cp, lsn, err)
	}
	cp, _, err = decodeCheckpoint(cdc.Position(`{"v":1,"slot":"s","lsn":"0/1A2B","resnapshot":3}`))
	if err != nil || cp.resnapshot() != (resnapID{ID: 3}) {
		t.Fatalf("checkpoint without a nonce: %+v, %v", cp, err)
	}
	b := encodeCheckpoint("s2", 0x10, resnapID{7, "n7"})
	if string(b) != `{"v":1,"slot":"s2","lsn":"0/10","resnapshot":7,"resnapshot_nonce":"n7"}` {
		t.Fatalf("encoded %s", b)
	}
	if cp, _, err := decodeCheckpoint(b); err != nil || cp.resnapshot() != (resnapID{7, "n7"}) {
		t.Fatalf("decoded %+v, %v", cp, err)
	}
}

// TestResnapshotDoneOnlyIfRecorded: a request is done only when the stored
// checkpoint records that very request (ID and nonce). A request with an
// ID at or below the recorded one but another nonce (the configs topic,
// which keeps the IDs, was rebuilt while the offsets topic was kept) is
// carried out, not passed for done.
func TestResnapshotDoneOnlyIfRecorded(t *testing.T) {
	tbl := cdc.TableID{Schema: "public", Name: "t"}
	for _, tc := range []struct {
		name     string
		recorded resnapID
		req      ResnapshotRequest
		done     bool
	}{
		{"the recorded request", resnapID{5, "a"}, ResnapshotRequest{ID: 5, Nonce: "a"}, true},
		{"same id, another nonce", resnapID{5, "a"}, ResnapshotRequest{ID: 5, Nonce: "b"}, false},
		{"lower id after the configs topic was rebuilt", resnapID{5, "a"}, ResnapshotRequest{ID: 1, Nonce: "c"}, false},
		{"higher id", resnapID{5, "a"}, ResnapshotRequest{ID: 6, Nonce: "d"}, false},
		{"nothing recorded", resnapID{}, ResnapshotRequest{ID: 1, Nonce: "e"}, false},
		{"from before nonces", resnapID{ID: 2}, ResnapshotRequest{ID: 2}, true},
		{"an old checkpoint, a new request", resnapID{ID: 2}, ResnapshotRequest{ID: 2, Nonce: "f"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &resnapEvents{}
			req := tc.req
			req.Tables = []cdc.TableID{tbl}
			s := New(Config{Tables: []cdc.TableID{tbl}, Resnapshot: &req, OnResnapshot: ev.on, Logger: testLogger()})
			s.tables[tbl] = &tableMeta{id: tbl}
			s.resnapDone = tc.recorded
			got := s.pendingResnapshot()
			if done := got == nil; done != tc.done {
				t.Fatalf("done %v, want %v (pending %+v)", done, tc.done, got)
			}
			if tc.done != ev.has(fmt.Sprintf("%d:true", req.ID)) {
				t.Errorf("OnResnapshot calls %v", ev.events)
			}
			if !tc.done && got.ident() != req.ident() {
				t.Errorf("pending %+v, want request %+v", got, req)
			}
		})
	}
}

// TestResnapshotCancelledMidway cuts a resnapshot short during its reads
// and restarts the source without the request (what cancelling it does):
// the slot created for it is dropped, the source streams on from the
// stored position, and both topics still replay to the tables (the rows
// already read again are harmless).
func TestResnapshotCancelledMidway(t *testing.T) {
	dsn, db, addr, cfg := capturedThenStopped(t)
	exec(t, db, `UPDATE o SET ver = ver + 1 WHERE id <= 3; UPDATE t SET ver = ver + 1 WHERE id <= 3;`)
	cfg.Resnapshot = &ResnapshotRequest{ID: 1, Tables: []cdc.TableID{{Schema: "public", Name: "t"}}}
	dying := startCaptureOf(t, addr, &dyingSource{Source: New(cfg), reads: 5})
	<-dying.done
	if dying.err == nil || !strings.Contains(dying.err.Error(), "simulated crash") {
		t.Fatalf("run ended with %v, want the simulated crash", dying.err)
	}
	if n := countOp(kafkaRecords(t, addr, "public.t"), cdc.OpRead); n <= 1500 {
		t.Fatalf("t has %d snapshot reads: the reads were not cut short", n)
	}
	waitSlotsIdle(t, cfg)

	exec(t, db, `DELETE FROM t WHERE id <= 50; UPDATE o SET ver = ver + 1 WHERE id <= 100;`)
	ev := &resnapEvents{}
	cfg.Resnapshot, cfg.OnResnapshot = nil, ev.on
	run := startCapture(t, addr, cfg)
	exec(t, db, `UPDATE t SET ver = ver + 1 WHERE id BETWEEN 100 AND 110; DELETE FROM o WHERE id = 7;`)
	tRecs := waitImage(t, addr, dsn, "public.t", []string{"id"})
	oRecs := waitImage(t, addr, dsn, "public.o", []string{"id"})
	checkNoGaps(t, "t", tRecs)
	checkNoGaps(t, "o", oRecs)
	if n := countOp(oRecs, cdc.OpRead); n != 300 {
		t.Errorf("o has %d snapshot reads, want only the initial 300", n)
	}
	if n := countOp(tRecs, cdc.OpRead); n >= 3000 {
		t.Errorf("t has %d snapshot reads: the cancelled request was carried out", n)
	}
	waitOneSlot(t, cfg, cfg.Slot)
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	if cp := storedCheckpoint(t, addr); cp.Resnapshot != 0 || cp.Slot != cfg.Slot {
		t.Fatalf("stored checkpoint %+v, want resnapshot 0 on %s", cp, cfg.Slot)
	}
	if len(ev.events) != 0 {
		t.Errorf("OnResnapshot calls %v without a request", ev.events)
	}
}

// storedPosition reads the source's stored checkpoint as a position to
// Open from.
func storedPosition(t *testing.T, addr string) cdc.Position {
	t.Helper()
	cp := storedCheckpoint(t, addr)
	lsn, err := pglogrepl.ParseLSN(cp.LSN)
	if err != nil {
		t.Fatal(err)
	}
	return encodeCheckpoint(cp.Slot, lsn, cp.resnapshot())
}

// TestResnapshotKeepsOldSlotUntilNewOneIsDurable drives a source by hand
// through a resnapshot and acknowledges the checkpoints of the slot it
// harvests: those say nothing about the new slot, so the old slot must
// stay (a crash before the checkpoint at P is stored resumes on it). Only
// once a checkpoint of the new slot is acknowledged is the old one dropped.
func TestResnapshotKeepsOldSlotUntilNewOneIsDurable(t *testing.T) {
	_, db, addr, cfg := capturedThenStopped(t)
	waitSlotsIdle(t, cfg)
	// Transactions for the harvest of the current slot, which makes
	// checkpoints of it.
	for range 3 {
		exec(t, db, `UPDATE o SET ver = ver + 1 WHERE id <= 5`)
	}
	ev := &resnapEvents{}
	cfg.Resnapshot = &ResnapshotRequest{ID: 1, Nonce: "n", Tables: []cdc.TableID{{Schema: "public", Name: "t"}}}
	cfg.OnResnapshot = ev.on
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s := New(cfg)
	defer s.Close(context.Background())
	if err := s.Open(ctx, storedPosition(t, addr)); err != nil {
		t.Fatal(err)
	}
	oldSlot, newSlot := cfg.Slot, altSlotName(cfg.Slot)
	var atP cdc.Position
	harvested := 0
	for atP == nil {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.Checkpoint == nil {
			continue
		}
		cp, _, err := decodeCheckpoint(b.Checkpoint)
		if err != nil {
			t.Fatal(err)
		}
		switch cp.Slot {
		case oldSlot:
			harvested++
			if err := s.Ack(ctx, b.Checkpoint); err != nil {
				t.Fatal(err)
			}
		case newSlot:
			if cp.resnapshot() != (resnapID{1, "n"}) {
				t.Fatalf("the checkpoint at P is %+v, want it to record request 1", cp)
			}
			atP = b.Checkpoint
		}
	}
	if harvested == 0 {
		t.Fatal("the harvest of the old slot made no checkpoint")
	}
	// Streaming from the new slot, with only the old slot's checkpoints
	// acknowledged: the old slot stays.
	readOne := func() {
		t.Helper()
		exec(t, db, `UPDATE o SET ver = ver + 1 WHERE id = 1`)
		for {
			b, err := s.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Records) > 0 {
				return
			}
		}
	}
	readOne()
	readOne()
	if got := ourSlots(t, cfg); len(got) != 2 {
		t.Fatalf("slots %v after acknowledging only the old slot's checkpoints: the old slot must stay", got)
	}
	if ev.has("1:true") {
		t.Fatalf("OnResnapshot calls %v: the request is not durable yet", ev.events)
	}
	if err := s.Ack(ctx, atP); err != nil {
		t.Fatal(err)
	}
	readOne()
	if got := ourSlots(t, cfg); len(got) != 1 || got[0] != newSlot {
		t.Fatalf("slots %v after the checkpoint at P was acknowledged, want only %s", got, newSlot)
	}
	if !ev.has("1:true") {
		t.Fatalf("OnResnapshot calls %v, want 1:true", ev.events)
	}
}

// TestResnapshotWithSnapshotNever: a source with snapshot: never reads
// only the requested tables. On a first run without a slot it reads them
// before streaming; with a slot left but no stored position (Kafka state
// lost) it streams that slot up to the new consistent point first, as
// when resuming.
func TestResnapshotWithSnapshotNever(t *testing.T) {
	dsn, db := newDB(t, resnapSchema)
	emb := startBroker(t, t.TempDir(), "127.0.0.1:0")
	defer emb.Close()
	addr := emb.Addr()
	cfg := testConfig(dsn, "t", "o")
	dropSlotsAtEnd(t, cfg)
	cfg.Snapshot = SnapshotNever
	ev := &resnapEvents{}
	cfg.Resnapshot = &ResnapshotRequest{ID: 1, Nonce: "a", Tables: []cdc.TableID{{Schema: "public", Name: "t"}}}
	cfg.OnResnapshot = ev.on

	// No slot: the tables asked for, then the stream.
	run := startCapture(t, addr, cfg)
	waitFor(t, 45*time.Second, "request 1 to be durable", func() bool { return ev.has("1:true") })
	exec(t, db, `UPDATE t SET ver = ver + 1 WHERE id <= 3; UPDATE o SET ver = ver + 1 WHERE id <= 3;`)
	tRecs := waitImage(t, addr, dsn, "public.t", []string{"id"})
	if n := countOp(tRecs, cdc.OpRead); n != 1500 {
		t.Errorf("t: %d snapshot reads, want its 1500 rows", n)
	}
	waitFor(t, 30*time.Second, "o's changes", func() bool { return countOp(kafkaRecords(t, addr, "public.o"), cdc.OpUpdate) == 3 })
	if n := countOp(kafkaRecords(t, addr, "public.o"), cdc.OpRead); n != 0 {
		t.Errorf("o: %d snapshot reads with snapshot: never, want none", n)
	}
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	if cp := storedCheckpoint(t, addr); cp.resnapshot() != (resnapID{1, "a"}) || cp.Slot != cfg.Slot {
		t.Fatalf("stored checkpoint %+v, want request 1 on %s", cp, cfg.Slot)
	}
	if s := ourSlots(t, cfg); len(s) != 1 || s[0] != cfg.Slot {
		t.Fatalf("slots %v, want only %s", s, cfg.Slot)
	}
	waitSlotsIdle(t, cfg)

	// The slot is left, the stored position is not (a new Kafka):
	// changes waiting in the slot come first, then t's rows as of P.
	exec(t, db, `UPDATE t SET ver = ver + 1 WHERE id <= 5; DELETE FROM t WHERE id = 1500; UPDATE o SET ver = ver + 1 WHERE id <= 2;`)
	emb2 := startBroker(t, t.TempDir(), "127.0.0.1:0")
	defer emb2.Close()
	addr2 := emb2.Addr()
	ev = &resnapEvents{}
	cfg.Resnapshot = &ResnapshotRequest{ID: 2, Nonce: "b", Tables: []cdc.TableID{{Schema: "public", Name: "t"}}}
	cfg.OnResnapshot = ev.on
	run = startCapture(t, addr2, cfg)
	waitFor(t, 45*time.Second, "request 2 to be durable", func() bool { return ev.has("2:true") })
	exec(t, db, `UPDATE t SET ver = ver + 1 WHERE id = 7`)
	tRecs = waitImage(t, addr2, dsn, "public.t", []string{"id"})
	if n := countOp(tRecs, cdc.OpRead); n != 1499 {
		t.Errorf("t: %d snapshot reads, want its 1499 rows", n)
	}
	if n := countOp(tRecs, cdc.OpUpdate); n < 6 {
		t.Errorf("t: %d updates, want the 5 waiting in the old slot and the one after", n)
	}
	checkResnapshotOrder(t, "t", tRecs, slicesIndexOp(tRecs, cdc.OpRead))
	if n := countOp(kafkaRecords(t, addr2, "public.o"), cdc.OpRead); n != 0 {
		t.Errorf("o: %d snapshot reads with snapshot: never, want none", n)
	}
	waitOneSlot(t, cfg, altSlotName(cfg.Slot))
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	if cp := storedCheckpoint(t, addr2); cp.resnapshot() != (resnapID{2, "b"}) || cp.Slot != altSlotName(cfg.Slot) {
		t.Fatalf("stored checkpoint %+v, want request 2 on the alternate slot", cp)
	}
}

// TestResnapshotSupersededMidway cuts request 1 short during its reads (as
// the worker's restart for a newer request does at any point) and starts
// the source with request 2, which names request 1's tables too (the
// control plane merges them): request 2 is carried out from the stored
// position, request 1 is never reported done, and nothing is lost.
func TestResnapshotSupersededMidway(t *testing.T) {
	dsn, db, addr, cfg := capturedThenStopped(t)
	exec(t, db, `UPDATE o SET ver = ver + 1 WHERE id <= 3; UPDATE t SET ver = ver + 1 WHERE id <= 3;`)
	ev := &resnapEvents{}
	cfg.Resnapshot = &ResnapshotRequest{ID: 1, Nonce: "a", Tables: []cdc.TableID{{Schema: "public", Name: "t"}}}
	cfg.OnResnapshot = ev.on
	dying := startCaptureOf(t, addr, &dyingSource{Source: New(cfg), reads: 5})
	<-dying.done
	if dying.err == nil || !strings.Contains(dying.err.Error(), "simulated crash") {
		t.Fatalf("run ended with %v, want the simulated crash", dying.err)
	}
	if !ev.has("1:false") {
		t.Fatalf("OnResnapshot calls %v: request 1 did not start", ev.events)
	}
	tReads := countOp(kafkaRecords(t, addr, "public.t"), cdc.OpRead)
	if tReads <= 1500 {
		t.Fatalf("t has %d snapshot reads: the reads were not cut short", tReads)
	}
	waitSlotsIdle(t, cfg)

	exec(t, db, `DELETE FROM t WHERE id <= 20; UPDATE o SET ver = ver + 1 WHERE id <= 50; DELETE FROM o WHERE id = 300;`)
	cfg.Resnapshot = &ResnapshotRequest{ID: 2, Nonce: "b", Tables: []cdc.TableID{{Schema: "public", Name: "o"}, {Schema: "public", Name: "t"}}}
	run := startCapture(t, addr, cfg)
	waitFor(t, 45*time.Second, "request 2 to be durable", func() bool { return ev.has("2:true") })
	exec(t, db, `UPDATE o SET ver = ver + 1 WHERE id = 9; UPDATE t SET ver = ver + 1 WHERE id = 99;`)
	tRecs := waitImage(t, addr, dsn, "public.t", []string{"id"})
	oRecs := waitImage(t, addr, dsn, "public.o", []string{"id"})
	checkNoGaps(t, "t", tRecs)
	checkNoGaps(t, "o", oRecs)
	if n := countOp(tRecs, cdc.OpRead); n != tReads+1480 {
		t.Errorf("t: %d snapshot reads, want %d and its 1480 rows", n, tReads)
	}
	if n := countOp(oRecs, cdc.OpRead); n != 300+299 {
		t.Errorf("o: %d snapshot reads, want the initial 300 and its 299 rows", n)
	}
	if ev.has("1:true") {
		t.Errorf("OnResnapshot calls %v: request 1 was superseded, not done", ev.events)
	}
	waitOneSlot(t, cfg, altSlotName(cfg.Slot))
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	if cp := storedCheckpoint(t, addr); cp.resnapshot() != (resnapID{2, "b"}) {
		t.Fatalf("stored checkpoint %+v, want request 2", cp)
	}
}
