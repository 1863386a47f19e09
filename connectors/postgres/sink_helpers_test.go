package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

var testOffsetsTable = cdc.TableID{Schema: "sluice", Name: "offsets"}

// openSink opens a sink on dsn and closes it at the end of the test.
func openSink(t testing.TB, dsn, mode string, create bool) (*Sink, cdc.Offsets) {
	t.Helper()
	s, err := NewSink(SinkConfig{DSN: dsn, Mode: mode, CreateTables: create, OffsetsTable: testOffsetsTable, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	offs, err := s.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s, offs
}

// sinkConn connects to dsn with the session settings the sink uses, so
// text output is in a known form.
func sinkConn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// queryText runs sql and returns each row as its columns' text joined by
// "|", NULL as "NULL".
func queryText(t testing.TB, dsn, sql string) []string {
	t.Helper()
	conn := sinkConn(t, dsn)
	res, err := conn.PgConn().Exec(context.Background(), sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var out []string
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v", sql, r.Err)
		}
		for _, row := range r.Rows {
			parts := make([]string, len(row))
			for i, v := range row {
				if v == nil {
					parts[i] = "NULL"
				} else {
					parts[i] = string(v)
				}
			}
			out = append(out, strings.Join(parts, "|"))
		}
	}
	return out
}

// record builds a record of schema sc: row is the after image (before
// image for deletes); the key is taken from row.
func record(op cdc.Op, sc *cdc.TableSchema, row cdc.Row) cdc.Record {
	r := cdc.Record{Table: sc.Table, Op: op, Schema: sc, Key: cdc.Row{}}
	for _, k := range sc.Key {
		if v, ok := row[k]; ok {
			r.Key[k] = v
		}
	}
	if op == cdc.OpDelete {
		r.Before = row
	} else {
		r.After = row
	}
	return r
}

func isPermanent(err error) bool {
	var pe *cdc.PermanentError
	return errors.As(err, &pe)
}
