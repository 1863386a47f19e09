package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-cdc/sluice/broker"
	"github.com/sluice-cdc/sluice/internal/throwaway"
	"github.com/sluice-cdc/sluice/pipelines/capture"
	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/debezium"
)

// testPG is the throwaway server shared by this package's tests; each test
// gets its own database.
var testPG *throwaway.Postgres

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	pg, err := throwaway.StartPostgres(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "connectors/postgres tests need a PostgreSQL server:", err)
		os.Exit(1)
	}
	testPG = pg
	code := m.Run()
	_ = pg.Stop(context.Background())
	os.Exit(code)
}

var dbSeq atomic.Int64

// newDB creates a database for the test and returns its DSN and name.
func newDB(t *testing.T, setup string) (dsn, name string) {
	t.Helper()
	name = strings.ToLower(regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), "_"))
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("%s_%d", name, dbSeq.Add(1))
	ctx := t.Context()
	dsn, err := testPG.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if setup != "" {
		if err := testPG.Exec(ctx, name, setup); err != nil {
			t.Fatalf("setup: %v", err)
		}
	}
	return dsn, name
}

func exec(t *testing.T, db, sql string) {
	t.Helper()
	if err := testPG.Exec(t.Context(), db, sql); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

func startBroker(t *testing.T, dir, listen string) *broker.Embedded {
	t.Helper()
	emb, err := broker.StartEmbedded(dir, listen, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return emb
}

// captureRun is a capture.Runner running in the background.
type captureRun struct {
	stats  *capture.Stats
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned; err is then set
	err    error
}

// stop ends the run cleanly and returns its error.
func (c *captureRun) stop(t *testing.T) error {
	t.Helper()
	c.cancel()
	select {
	case <-c.done:
		return c.err
	case <-time.After(30 * time.Second):
		t.Fatal("capture did not stop within 30s")
		return nil
	}
}

func testConfig(dsn string, tables ...string) Config {
	// Slots are cluster-wide and tests share the server: name them after
	// the test's database.
	u, err := url.Parse(dsn)
	if err != nil {
		panic(err)
	}
	slot := "slot_" + strings.TrimPrefix(u.Path, "/")
	cfg := Config{DSN: dsn, Slot: slot, Publication: "pub", ServerName: "test.src",
		ChunkRows: 100, Heartbeat: time.Second, Logger: testLogger()}
	for _, tb := range tables {
		id, err := cdc.ParseTableID(tb, "public")
		if err != nil {
			panic(err)
		}
		cfg.Tables = append(cfg.Tables, id)
	}
	return cfg
}

const topicPrefix = "test.src."

// testMaxRecordBytes is raised (as --max-record-bytes would) so TestLargeRow
// can send a row above Kafka's 1 MiB default.
const testMaxRecordBytes = 8 << 20

// startCapture runs a Source through the real capture runtime into the
// broker at addr.
func startCapture(t *testing.T, addr string, cfg Config) *captureRun {
	t.Helper()
	run := startCaptureOf(t, addr, New(cfg))
	waitStreaming(t, cfg, run)
	return run
}

// startCaptureOf runs src through the capture runtime without waiting.
func startCaptureOf(t *testing.T, addr string, src cdc.Source) *captureRun {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, broker.Config{MaxRecordBytes: testMaxRecordBytes}.ProducerOpts()...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	topics := broker.NewTopics(cl, 1, -1)
	topics.MaxMessageBytes = testMaxRecordBytes
	store, err := broker.NewStore(t.Context(), cl, topics, "_sluice.test.offsets")
	if err != nil {
		t.Fatal(err)
	}
	r := &capture.Runner{
		Name: "src", Source: src, Producer: cl, Topics: topics,
		TopicFor:    func(id cdc.TableID) string { return topicPrefix + id.Schema + "." + id.Name },
		Encoder:     debezium.NewJSON(),
		Checkpoints: store, Logger: testLogger(), CommitInterval: 100 * time.Millisecond,
		Stats: &capture.Stats{}, MaxRecordBytes: testMaxRecordBytes,
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &captureRun{stats: r.Stats, cancel: cancel, done: make(chan struct{})}
	go func() {
		run.err = r.Run(ctx)
		close(run.done)
	}()
	t.Cleanup(func() { cancel(); <-run.done })
	return run
}

// waitStreaming waits until the source streams (its slot is active), so a
// test's later changes are streamed rather than folded into the snapshot.
func waitStreaming(t *testing.T, cfg Config, run *captureRun) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for {
		var active bool
		err := conn.QueryRow(t.Context(), "SELECT bool_or(active) FROM pg_replication_slots WHERE slot_name IN ($1, $2)",
			cfg.Slot, altSlotName(cfg.Slot)).Scan(&active)
		if err == nil && active {
			return
		}
		select {
		case <-run.done:
			t.Fatalf("capture ended before streaming: %v", run.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot %s not streaming after 30s (last error %v)", cfg.Slot, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kafkaRecords reads every record of a table's topic, in offset order
// (nil value: a tombstone, kept as a record with OpUnknown).
func kafkaRecords(t *testing.T, addr, table string) []cdc.Record {
	t.Helper()
	topic := topicPrefix + table
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	end := int64(0)
	ends.Each(func(o kadm.ListedOffset) { end = max(end, o.Offset) })
	if end <= 0 {
		return nil
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	codec := debezium.NewJSON()
	var out []cdc.Record
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: got %d records before the deadline, want offsets up to %d", topic, len(out), end)
		}
		var last int64 = -1
		fs.EachRecord(func(r *kgo.Record) {
			last = r.Offset
			if r.Value == nil {
				k, err := codec.Decode(r.Key, nil)
				if err != nil && !errors.Is(err, debezium.ErrTombstone) {
					t.Fatalf("decode tombstone key %s: %v", r.Key, err)
				}
				out = append(out, cdc.Record{Op: cdc.OpUnknown, Key: k.Key})
				return
			}
			rec, err := codec.Decode(r.Key, r.Value)
			if err != nil {
				t.Fatalf("decode %s@%d: %v\nkey: %s\nvalue: %s", topic, r.Offset, err, r.Key, r.Value)
			}
			out = append(out, rec)
		})
		if last+1 >= end {
			return out
		}
	}
}

// keyString renders a key row in key order.
func keyString(schemaKey []string, key cdc.Row) string {
	parts := make([]string, len(schemaKey))
	for i, k := range schemaKey {
		parts[i] = fmt.Sprint(key[k])
	}
	return strings.Join(parts, "|")
}

// latestImage folds a topic's records into the latest row per key.
func latestImage(recs []cdc.Record, key []string) map[string]cdc.Row {
	img := map[string]cdc.Row{}
	for _, r := range recs {
		k := keyString(key, r.Key)
		switch r.Op {
		case cdc.OpDelete, cdc.OpUnknown:
			delete(img, k)
		case cdc.OpTruncate:
			clear(img)
		default:
			img[k] = r.After
		}
	}
	return img
}

// sourceImage reads a table as rows, parsed by the same rules as captured
// values, keyed like latestImage.
func sourceImage(t *testing.T, dsn, table string, key []string) map[string]cdc.Row {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for k, v := range sessionParams {
		if k == "application_name" {
			continue
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf("SET %s = '%s'", k, v)); err != nil {
			t.Fatal(err)
		}
	}
	id, _ := cdc.ParseTableID(table, "public")
	rows, err := conn.Query(ctx, `SELECT attname, atttypid, atttypmod FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, quoteTable(id))
	if err != nil {
		t.Fatal(err)
	}
	var defs []columnDef
	for rows.Next() {
		var d columnDef
		if err := rows.Scan(&d.name, &d.oid, &d.typmod); err != nil {
			t.Fatal(err)
		}
		defs = append(defs, d)
	}
	var oids []uint32
	for _, d := range defs {
		oids = append(oids, d.oid)
	}
	types, err := loadTypes(ctx, conn, oids)
	if err != nil {
		t.Fatal(err)
	}
	res := conn.PgConn().ExecParams(ctx, "SELECT * FROM "+quoteTable(id), nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	img := map[string]cdc.Row{}
	for _, raw := range res.Rows {
		row := cdc.Row{}
		for i, v := range raw {
			col := columnFor(defs[i].name, defs[i].oid, defs[i].typmod, types)
			if v == nil {
				row[col.Name] = nil
				continue
			}
			pv, err := parseText(col, v)
			if err != nil {
				t.Fatalf("%s.%s: %v", table, col.Name, err)
			}
			row[col.Name] = pv
		}
		img[keyString(key, row)] = row
	}
	return img
}

var rowCmp = []cmp.Option{cmpopts.EquateNaNs(), cmpopts.EquateEmpty()}

// waitImage polls until the latest image of table on Kafka equals the
// source table, failing with a diff at the deadline.
func waitImage(t *testing.T, addr, dsn, table string, key []string) []cdc.Record {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		recs := kafkaRecords(t, addr, table)
		got := latestImage(recs, key)
		want := sourceImage(t, dsn, table, key)
		diff := cmp.Diff(want, got, rowCmp...)
		if diff == "" {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on Kafka differs from the source (-source +kafka):\n%s", table, diff)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startServer starts a second throwaway server with one setting changed.
func startServer(t *testing.T, key, value string) *throwaway.Postgres {
	t.Helper()
	pg, err := throwaway.StartPostgres(t.Context(), throwaway.WithSetting(key, value))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })
	return pg
}

// testLogger discards logs unless SLUICE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
