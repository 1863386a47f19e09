package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

var usersID = cdc.TableID{Schema: "public", Name: "users"}

var usersSchema = &cdc.TableSchema{Table: usersID, Key: []string{"id"}, Columns: []cdc.Column{
	{Name: "id", Kind: cdc.KindInt64, SourceType: "bigint"},
	{Name: "name", Kind: cdc.KindString, SourceType: "text", Nullable: true},
	{Name: "note", Kind: cdc.KindString, SourceType: "text", Nullable: true},
}}

// user builds a users row; note is left out when it is absentNote.
func user(id int64, name string, note any) cdc.Row {
	r := cdc.Row{"id": id, "name": name}
	if note != absentNote {
		r["note"] = note
	}
	return r
}

const absentNote = "<absent>"

func userKey(id int64) cdc.Row { return cdc.Row{"id": id} }

const usersTable = `CREATE TABLE users (id bigint PRIMARY KEY, name text, note text);`

func TestSinkUpsert(t *testing.T) {
	c, u, d := cdc.OpCreate, cdc.OpUpdate, cdc.OpDelete
	rec := func(op cdc.Op, row cdc.Row) cdc.Record { return record(op, usersSchema, row) }
	tests := []struct {
		name    string
		setup   string
		batches [][]cdc.Record
		want    []string
	}{
		{"changes across batches", "", [][]cdc.Record{
			{rec(c, user(1, "a", "x")), rec(c, user(2, "b", "y")), rec(cdc.OpRead, user(3, "c", nil))},
			{rec(u, user(1, "A", "x")), rec(d, userKey(2))},
		}, []string{"1|A|x", "3|c|NULL"}},
		{"create update delete of one key in a batch", "", [][]cdc.Record{
			{rec(c, user(1, "a", "x")), rec(u, user(1, "b", "x")), rec(d, userKey(1)), rec(c, user(2, "z", "z"))},
		}, []string{"2|z|z"}},
		{"delete then create in a batch replaces the row", "INSERT INTO users VALUES (1, 'old', 'old note');", [][]cdc.Record{
			{rec(d, userKey(1)), rec(c, user(1, "new", absentNote))},
		}, []string{"1|new|NULL"}},
		{"absent column keeps the destination value", "INSERT INTO users VALUES (1, 'a', 'big toasted');", [][]cdc.Record{
			{rec(u, user(1, "b", absentNote))},
		}, []string{"1|b|big toasted"}},
		{"absent column takes the earlier image in the batch", "INSERT INTO users VALUES (3, 'c', 'kept');", [][]cdc.Record{
			{rec(c, user(1, "a", "n1")), rec(u, user(1, "b", absentNote)), rec(u, user(3, "C", absentNote)), rec(c, user(2, "x", "y"))},
		}, []string{"1|b|n1", "2|x|y", "3|C|kept"}},
		{"null is not absent", "INSERT INTO users VALUES (1, 'a', 'n');", [][]cdc.Record{
			{rec(u, user(1, "a", nil))},
		}, []string{"1|a|NULL"}},
		{"delete with only a before image", "INSERT INTO users VALUES (1, 'a', 'n'), (2, 'b', 'n');", [][]cdc.Record{
			{{Table: usersID, Op: d, Schema: usersSchema, Before: user(1, "a", "n")}},
		}, []string{"2|b|n"}},
		{"delete of a missing key and update of a missing key", "", [][]cdc.Record{
			{rec(d, userKey(9)), rec(u, user(5, "e", absentNote))},
		}, []string{"5|e|NULL"}},
		{"replaying a batch is idempotent", "", [][]cdc.Record{
			{rec(c, user(1, "a", "x")), rec(u, user(1, "b", absentNote)), rec(c, user(2, "c", "y")), rec(d, userKey(2))},
			{rec(c, user(1, "a", "x")), rec(u, user(1, "b", absentNote)), rec(c, user(2, "c", "y")), rec(d, userKey(2))},
		}, []string{"1|b|x"}},
		{"truncate is skipped", "INSERT INTO users VALUES (1, 'a', 'n');", [][]cdc.Record{
			{{Table: usersID, Op: cdc.OpTruncate, Schema: usersSchema}, rec(c, user(2, "b", "m"))},
		}, []string{"1|a|n", "2|b|m"}},
	}
	for _, tt := range tests {
		// Each case twice: written as is, and prepared first (see
		// Prepare), which must come to the same.
		for _, prepared := range []bool{false, true} {
			name := tt.name
			if prepared {
				name += " (prepared)"
			}
			t.Run(name, func(t *testing.T) {
				dsn, _ := newDB(t, usersTable+tt.setup)
				s, _ := openSink(t, dsn, ModeUpsert, false)
				if prepared {
					cacheDest(t, s, usersID)
				}
				for i, b := range tt.batches {
					var plan *upsertPlan
					if prepared {
						plan = prepare(t, s, b, usersID)
					}
					if err := s.Write(t.Context(), cdc.Applied{Records: b}); err != nil {
						t.Fatalf("batch %d: %v", i, err)
					}
					if prepared && plan.d != s.dest(usersID) {
						t.Fatalf("batch %d: the prepared plan was not used", i)
					}
				}
				got := queryText(t, dsn, "SELECT id, name, note FROM users ORDER BY id")
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("rows (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestSinkInsertMode(t *testing.T) {
	dsn, _ := newDB(t, "")
	s, _ := openSink(t, dsn, ModeInsert, true)
	rec := func(op cdc.Op, row cdc.Row) cdc.Record { return record(op, usersSchema, row) }
	batch := []cdc.Record{
		rec(cdc.OpCreate, user(1, "a", "x")), rec(cdc.OpUpdate, user(1, "b", absentNote)),
		rec(cdc.OpDelete, userKey(1)), rec(cdc.OpRead, user(2, "c", nil)),
		{Table: usersID, Op: cdc.OpTruncate, Schema: usersSchema},
		rec(cdc.OpCreate, user(1, "a", "x")),
	}
	if err := s.Write(t.Context(), cdc.Applied{Records: batch}); err != nil {
		t.Fatal(err)
	}
	got := queryText(t, dsn, "SELECT id, name, note FROM users ORDER BY id, name")
	want := []string{"1|a|x", "1|a|x", "1|b|NULL", "2|c|NULL"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if got := queryText(t, dsn, "SELECT count(*) FROM pg_index WHERE indrelid = 'users'::regclass"); got[0] != "0" {
		t.Errorf("insert-mode table has %s indexes, want none (no primary key)", got[0])
	}
}

func TestSinkHistoryMode(t *testing.T) {
	dsn, _ := newDB(t, "")
	s, _ := openSink(t, dsn, ModeHistory, true)
	commit := utc(2024, 1, 31, 8, 11, 12, 123456)
	meta := func(r cdc.Record, seq int64, lsn int64) cdc.Record {
		r.TxID, r.Seq, r.CommitTime = "771", seq, commit
		r.Source = cdc.SourceInfo{Connector: "postgresql", Extra: map[string]any{"lsn": lsn}}
		return r
	}
	batch := []cdc.Record{
		meta(record(cdc.OpRead, usersSchema, user(1, "a", "n")), 1, 0x16E8F58),
		meta(record(cdc.OpUpdate, usersSchema, user(1, "b", absentNote)), 2, 0x1_0000_0010),
		meta(record(cdc.OpDelete, usersSchema, user(1, "b", "n")), 3, 0x1_0000_0020),
		{Table: usersID, Op: cdc.OpDelete, Schema: usersSchema, Key: userKey(2), Seq: 4},
		{Table: usersID, Op: cdc.OpTruncate, Schema: usersSchema, Seq: 5},
	}
	if err := s.Write(t.Context(), cdc.Applied{Records: batch}); err != nil {
		t.Fatal(err)
	}
	got := queryText(t, dsn, "SELECT id, name, note, __op, __position, __tx_id, __commit_time, __seq FROM users ORDER BY __seq")
	want := []string{
		"1|a|n|r|0/16E8F58|771|2024-01-31 08:11:12.123456+00|1",
		"1|b|NULL|u|1/10|771|2024-01-31 08:11:12.123456+00|2",
		"1|b|n|d|1/20|771|2024-01-31 08:11:12.123456+00|3",
		"2|NULL|NULL|d|NULL|NULL|NULL|4",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	// The same changes again, as a source replays them after a crash:
	// those with a position are already there; one without cannot be
	// told apart from a new change and is appended.
	if err := s.Write(t.Context(), cdc.Applied{Records: append(batch, batch[1])}); err != nil {
		t.Fatal(err)
	}
	got = queryText(t, dsn, "SELECT id, name, note, __op, __position, __tx_id, __commit_time, __seq FROM users ORDER BY __seq")
	if diff := cmp.Diff(append(want[:4:4], want[3]), got); diff != "" {
		t.Errorf("rows after a replay (-want +got):\n%s", diff)
	}
	types := queryText(t, dsn, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = 'users'::regclass AND attname LIKE '\_\_%' ORDER BY attnum`)
	wantTypes := []string{"__op|character(1)", "__position|text", "__tx_id|text",
		"__commit_time|timestamp with time zone", "__seq|bigint"}
	if diff := cmp.Diff(wantTypes, types); diff != "" {
		t.Errorf("history columns (-want +got):\n%s", diff)
	}
	if got := queryText(t, dsn, `SELECT indisprimary, pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'users'::regclass`); len(got) != 1 ||
		!strings.HasPrefix(got[0], "f|CREATE UNIQUE INDEX") || !strings.HasSuffix(got[0], "(id, __op, __position)") {
		t.Errorf("history table indexes %q, want one unique index on (id, __op, __position) and no primary key", got)
	}
}

func TestHistoryPosition(t *testing.T) {
	tests := []struct {
		extra map[string]any
		want  string
	}{
		{nil, ""},
		{map[string]any{"lsn": int64(0x16E8F58)}, "0/16E8F58"},
		{map[string]any{"lsn": float64(0x2_0000_0001)}, "2/1"},
		{map[string]any{"gtid": "3e11fa47-71ca-11e1-9e33-c80aa9429562:23", "file": "binlog.000003", "pos": int64(4)},
			"3e11fa47-71ca-11e1-9e33-c80aa9429562:23"},
		{map[string]any{"gtid": "", "file": "binlog.000003", "pos": int64(1234)}, "binlog.000003:1234"},
		{map[string]any{"file": "binlog.000003", "pos": float64(1234)}, "binlog.000003:1234"},
	}
	for _, tt := range tests {
		r := cdc.Record{Source: cdc.SourceInfo{Extra: tt.extra}}
		if got := historyPosition(&r); got != tt.want {
			t.Errorf("historyPosition(%v) = %q, want %q", tt.extra, got, tt.want)
		}
	}
}

func TestSinkOffsets(t *testing.T) {
	dsn, _ := newDB(t, usersTable)
	s, offs := openSink(t, dsn, ModeUpsert, false)
	if len(offs) != 0 {
		t.Fatalf("first Open returned offsets %v, want none", offs)
	}
	a0, a1, b0 := cdc.TopicPartition{Topic: "t.a", Partition: 0}, cdc.TopicPartition{Topic: "t.a", Partition: 1},
		cdc.TopicPartition{Topic: "t.b", Partition: 0}
	if err := s.Write(t.Context(), cdc.Applied{
		Records: []cdc.Record{record(cdc.OpCreate, usersSchema, user(1, "a", "x"))},
		Offsets: cdc.Offsets{a0: 10, a1: 5},
	}); err != nil {
		t.Fatal(err)
	}
	// Offsets without records commit too, and only touch their partitions.
	if err := s.Write(t.Context(), cdc.Applied{Offsets: cdc.Offsets{a0: 12, b0: 1}}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close(t.Context())
	_, offs = openSink(t, dsn, ModeUpsert, false)
	want := cdc.Offsets{a0: 12, a1: 5, b0: 1}
	if diff := cmp.Diff(want, offs); diff != "" {
		t.Errorf("stored offsets (-want +got):\n%s", diff)
	}
	cols := queryText(t, dsn, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = 'sluice.offsets'::regclass AND attnum > 0 ORDER BY attnum`)
	wantCols := []string{"topic|text", "partition|integer", "next_offset|bigint", "updated_at|timestamp with time zone"}
	if diff := cmp.Diff(wantCols, cols); diff != "" {
		t.Errorf("offsets table (-want +got):\n%s", diff)
	}
}

func TestSinkWriteIsAtomic(t *testing.T) {
	dsn, _ := newDB(t, usersTable+`
		CREATE TABLE other (id bigint PRIMARY KEY, v integer CHECK (v < 100));`)
	s, _ := openSink(t, dsn, ModeUpsert, false)
	tp := cdc.TopicPartition{Topic: "t", Partition: 0}
	if err := s.Write(t.Context(), cdc.Applied{Offsets: cdc.Offsets{tp: 1}}); err != nil {
		t.Fatal(err)
	}
	otherSchema := &cdc.TableSchema{Table: cdc.TableID{Schema: "public", Name: "other"}, Key: []string{"id"},
		Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt64}, {Name: "v", Kind: cdc.KindInt32}}}
	bad := cdc.Applied{
		Records: []cdc.Record{
			record(cdc.OpCreate, usersSchema, user(1, "a", "x")),
			record(cdc.OpCreate, otherSchema, cdc.Row{"id": int64(1), "v": int32(5)}),
			record(cdc.OpCreate, otherSchema, cdc.Row{"id": int64(2), "v": int32(500)}),
		},
		Offsets: cdc.Offsets{tp: 4},
	}
	err := s.Write(t.Context(), bad)
	if err == nil {
		t.Fatal("Write of a batch violating a check constraint succeeded")
	}
	if !isPermanent(err) || !strings.Contains(err.Error(), "public.other") {
		t.Errorf("error %v: want a permanent error naming public.other", err)
	}
	if got := queryText(t, dsn, "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM other)"); got[0] != "0" {
		t.Errorf("%s rows visible after a failed Write, want 0", got[0])
	}
	if got := queryText(t, dsn, "SELECT next_offset FROM sluice.offsets"); got[0] != "1" {
		t.Errorf("stored offset %s after a failed Write, want 1", got[0])
	}
	// The sink stays usable: the fixed batch applies.
	bad.Records[2].After["v"] = int32(50)
	if err := s.Write(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	if got := queryText(t, dsn, "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM other)"); got[0] != "3" {
		t.Errorf("%s rows after the fixed Write, want 3", got[0])
	}
	if got := queryText(t, dsn, "SELECT next_offset FROM sluice.offsets"); got[0] != "4" {
		t.Errorf("stored offset %s, want 4", got[0])
	}
}

func TestSinkOddIdentifiers(t *testing.T) {
	id := cdc.TableID{Schema: "Odd Schema", Name: `Tab"le`}
	sc := &cdc.TableSchema{Table: id, Key: []string{"select"}, Columns: []cdc.Column{
		{Name: "select", Kind: cdc.KindInt32, SourceType: "integer"},
		{Name: "Größe", Kind: cdc.KindString, SourceType: "text"},
		{Name: "a b", Kind: cdc.KindDecimal, SourceType: "numeric(5,2)"},
	}}
	for _, create := range []bool{true, false} {
		t.Run(fmt.Sprintf("create_tables=%v", create), func(t *testing.T) {
			setup := ""
			if !create {
				setup = `CREATE SCHEMA "Odd Schema"; CREATE TABLE "Odd Schema"."Tab""le" ("select" integer PRIMARY KEY, "Größe" text, "a b" numeric(5,2));`
			}
			dsn, _ := newDB(t, setup)
			s, err := NewSink(SinkConfig{DSN: dsn, CreateTables: create, Logger: testLogger(),
				OffsetsTable: cdc.TableID{Schema: "Odd Schema", Name: `off"sets`}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(t.Context())
			if _, err := s.Open(t.Context()); err != nil {
				t.Fatal(err)
			}
			b := cdc.Applied{Records: []cdc.Record{
				record(cdc.OpCreate, sc, cdc.Row{"select": int32(1), "Größe": "groß", "a b": cdc.Decimal("1.50")}),
				record(cdc.OpCreate, sc, cdc.Row{"select": int32(2), "Größe": "klein", "a b": nil}),
				record(cdc.OpUpdate, sc, cdc.Row{"select": int32(1), "a b": cdc.Decimal("2.25")}),
				record(cdc.OpDelete, sc, cdc.Row{"select": int32(2)}),
			}, Offsets: cdc.Offsets{{Topic: "odd", Partition: 0}: 4}}
			if err := s.Write(t.Context(), b); err != nil {
				t.Fatal(err)
			}
			got := queryText(t, dsn, `SELECT "select", "Größe", "a b" FROM "Odd Schema"."Tab""le" ORDER BY 1`)
			if diff := cmp.Diff([]string{"1|groß|2.25"}, got); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			if got := queryText(t, dsn, `SELECT topic, next_offset FROM "Odd Schema"."off""sets"`); !cmp.Equal(got, []string{"odd|4"}) {
				t.Errorf("offsets %v", got)
			}
			if err := s.Clear(t.Context(), []cdc.TableID{id}); err != nil {
				t.Fatal(err)
			}
			if got := queryText(t, dsn, `SELECT count(*) FROM "Odd Schema"."Tab""le"`); got[0] != "0" {
				t.Errorf("%s rows after Clear", got[0])
			}
		})
	}
}

// typeCase is one column of the type fidelity test: a value of its kind
// and the text PostgreSQL prints for it once stored.
type typeCase struct {
	col  cdc.Column
	v    any
	want string
}

func typeCases() []typeCase {
	col := func(name string, k cdc.Kind, st string) cdc.Column {
		return cdc.Column{Name: name, Kind: k, SourceType: st, Nullable: true}
	}
	arr := func(name string, elem cdc.Kind, st string) cdc.Column {
		return cdc.Column{Name: name, Kind: cdc.KindArray, Elem: elem, SourceType: st, Nullable: true}
	}
	mood := []string{"sad", "ok", "happy, really"}
	moodCol := col("c_mood", cdc.KindEnum, "mood")
	moodCol.EnumValues = mood
	moodArr := arr("c_mood_arr", cdc.KindEnum, "mood[]")
	moodArr.EnumValues = mood
	dec := col("c_numeric", cdc.KindDecimal, "numeric(38,12)")
	dec.Precision, dec.Scale = 38, 12
	return []typeCase{
		{col("id", cdc.KindInt32, "integer"), int32(1), "1"},
		{col("c_bool", cdc.KindBool, "boolean"), true, "true"},
		{col("c_int2", cdc.KindInt16, "smallint"), int16(math.MinInt16), "-32768"},
		{col("c_int4", cdc.KindInt32, "integer"), int32(math.MaxInt32), "2147483647"},
		{col("c_int8", cdc.KindInt64, "bigint"), int64(math.MinInt64), "-9223372036854775808"},
		{col("c_float4", cdc.KindFloat32, "real"), float32(math.Inf(-1)), "-Infinity"},
		{col("c_float4b", cdc.KindFloat32, "real"), float32(0.1), "0.1"},
		{col("c_float8", cdc.KindFloat64, "double precision"), math.NaN(), "NaN"},
		{col("c_float8b", cdc.KindFloat64, "double precision"), 1.0 / 3, "0.3333333333333333"},
		{col("c_float8c", cdc.KindFloat64, "double precision"), math.Inf(1), "Infinity"},
		{dec, cdc.Decimal("-12345678901234567890123456.123456789012"), "-12345678901234567890123456.123456789012"},
		{col("c_numeric_any", cdc.KindDecimal, "numeric"), cdc.Decimal("0.00000000000000000001"), "0.00000000000000000001"},
		{col("c_numeric_nan", cdc.KindDecimal, "numeric"), cdc.Decimal("NaN"), "NaN"},
		{col("c_text", cdc.KindString, "text"), "h\u00e9llo \U0001F389\n\"\t\\ \r end", "h\u00e9llo \U0001F389\n\"\t\\ \r end"},
		{col("c_varchar", cdc.KindString, "character varying(20)"), "x", "x"},
		{col("c_char", cdc.KindString, "character(3)"), "ab ", "ab"}, // ::text drops bpchar's padding,
		{col("c_bytea", cdc.KindBytes, "bytea"), []byte{0, 1, 2, 0xff, '\\', '\t'}, `\x000102ff5c09`},
		{col("c_date", cdc.KindDate, "date"), utc(-43, 3, 15, 0, 0, 0, 0), "0044-03-15 BC"},
		{col("c_date_inf", cdc.KindDate, "date"), cdc.Infinity{Sign: 1}, "infinity"},
		{col("c_time", cdc.KindTime, "time without time zone"), 24 * time.Hour, "24:00:00"},
		{col("c_time2", cdc.KindTime, "time(3) without time zone"), 10*time.Hour + 1500*time.Millisecond, "10:00:01.5"},
		{col("c_timetz", cdc.KindTimeTZ, "time with time zone"), "10:11:12.5+05:30", "10:11:12.5+05:30"},
		{col("c_timestamp", cdc.KindTimestamp, "timestamp(3) without time zone"), utc(2024, 1, 31, 10, 11, 12, 123000), "2024-01-31 10:11:12.123"},
		{col("c_timestamptz", cdc.KindTimestampTZ, "timestamp with time zone"), utc(2024, 1, 31, 8, 11, 12, 123456), "2024-01-31 08:11:12.123456+00"},
		{col("c_timestamptz_inf", cdc.KindTimestampTZ, "timestamp with time zone"), cdc.Infinity{Sign: -1}, "-infinity"},
		{col("c_timestamp_bc", cdc.KindTimestamp, "timestamp without time zone"), utc(-4, 2, 29, 23, 59, 59, 999999), "0005-02-29 23:59:59.999999 BC"},
		{col("c_interval", cdc.KindInterval, "interval"), cdc.Interval{Months: -14, Days: 3, Micros: -14706000007}, "-1 years -2 mons +3 days -04:05:06.000007"},
		{col("c_uuid", cdc.KindUUID, "uuid"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{col("c_json", cdc.KindJSON, "json"), cdc.JSON(`{"b": [1, 2.50], "a":"x\ty"}`), `{"b": [1, 2.50], "a":"x\ty"}`},
		{col("c_jsonb", cdc.KindJSON, "jsonb"), cdc.JSON(`{"b": [1, 2.50], "a": "\\"}`), `{"a": "\\", "b": [1, 2.50]}`},
		{moodCol, "happy, really", "happy, really"},
		{col("c_posint", cdc.KindInt32, "posint"), int32(7), "7"},
		{arr("c_int_arr", cdc.KindInt32, "integer[]"), []any{[]any{int32(1), nil}, []any{int32(3), int32(4)}}, "{{1,NULL},{3,4}}"},
		{arr("c_text_arr", cdc.KindString, "text[]"), []any{"a b", `c"d`, "NULL", nil, "", "x,y", `back\slash`, "tab\t"},
			`{"a b","c\"d","NULL",NULL,"","x,y","back\\slash","tab	"}`},
		{moodArr, []any{"sad", "happy, really"}, `{sad,"happy, really"}`},
		{arr("c_box_arr", cdc.KindString, "box[]"), []any{"(1,1),(0,0)", "(2,2),(1,1)"}, "{(1,1),(0,0);(2,2),(1,1)}"},
		{arr("c_ts_arr", cdc.KindTimestampTZ, "timestamp with time zone[]"), []any{utc(2024, 1, 1, 0, 0, 0, 1), cdc.Infinity{Sign: 1}},
			`{"2024-01-01 00:00:00.000001+00",infinity}`},
		{col("c_inet", cdc.KindString, "inet"), "192.168.0.1/24", "192.168.0.1/24"},
		{col("c_null", cdc.KindInt64, "bigint"), nil, "NULL"},
	}
}

const typesDest = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy, really');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE typed (
	id integer PRIMARY KEY, c_bool boolean, c_int2 smallint, c_int4 integer, c_int8 bigint,
	c_float4 real, c_float4b real, c_float8 double precision, c_float8b double precision, c_float8c double precision,
	c_numeric numeric(38,12), c_numeric_any numeric, c_numeric_nan numeric,
	c_text text, c_varchar varchar(20), c_char char(3), c_bytea bytea,
	c_date date, c_date_inf date, c_time time, c_time2 time(3), c_timetz timetz, c_timestamp timestamp(3),
	c_timestamptz timestamptz, c_timestamptz_inf timestamptz, c_timestamp_bc timestamp,
	c_interval interval, c_uuid uuid, c_json json, c_jsonb jsonb, c_mood mood, c_posint posint,
	c_int_arr integer[], c_text_arr text[], c_mood_arr mood[], c_box_arr box[], c_ts_arr timestamptz[],
	c_inet inet, c_null bigint
);`

// TestSinkTypes writes a value of every kind, into an existing table and
// into one create_tables makes, in each mode, and reads
// them back as text.
func TestSinkTypes(t *testing.T) {
	cases := typeCases()
	id := cdc.TableID{Schema: "public", Name: "typed"}
	sc := &cdc.TableSchema{Table: id, Key: []string{"id"}}
	row := cdc.Row{}
	var names []string
	for _, c := range cases {
		sc.Columns = append(sc.Columns, c.col)
		row[c.col.Name] = c.v
		names = append(names, `"`+c.col.Name+`"::text`)
	}
	for _, mode := range []string{ModeUpsert, ModeInsert, ModeHistory} {
		for _, create := range []bool{false, true} {
			{
				t.Run(fmt.Sprintf("%s/create=%v", mode, create), func(t *testing.T) {
					setup := typesDest
					if create {
						setup = ""
					}
					if mode != ModeUpsert && !create {
						setup += `ALTER TABLE typed DROP CONSTRAINT typed_pkey;`
					}
					if mode == ModeHistory && !create {
						setup += `ALTER TABLE typed ADD __op char(1), ADD __position text, ADD __tx_id text, ADD __commit_time timestamptz, ADD __seq bigint;`
					}
					dsn, _ := newDB(t, setup)
					s, _ := openSink(t, dsn, mode, create)
					for range 2 { // the second time updates (upsert) or appends
						if err := s.Write(t.Context(), cdc.Applied{Records: []cdc.Record{record(cdc.OpCreate, sc, row)}}); err != nil {
							t.Fatal(err)
						}
					}
					got := queryText(t, dsn, "SELECT "+strings.Join(names, ", ")+" FROM typed")
					wantRows := 1
					if mode != ModeUpsert {
						wantRows = 2
					}
					if len(got) != wantRows {
						t.Fatalf("%d rows, want %d", len(got), wantRows)
					}
					gotCols := strings.Split(got[0], "|")
					// Text values with "|" do not occur in the cases.
					for i, c := range cases {
						if i >= len(gotCols) || gotCols[i] != c.want {
							g := "<missing>"
							if i < len(gotCols) {
								g = gotCols[i]
							}
							t.Errorf("%s (%s): got %q, want %q", c.col.Name, c.col.SourceType, g, c.want)
						}
					}
				})
			}
		}
	}
}

// TestSinkCreateTables checks the types and keys of created tables.
func TestSinkCreateTables(t *testing.T) {
	id := cdc.TableID{Schema: "public", Name: "typed"}
	sc := &cdc.TableSchema{Table: id, Key: []string{"id"}}
	row := cdc.Row{}
	for _, c := range typeCases() {
		sc.Columns = append(sc.Columns, c.col)
		row[c.col.Name] = c.v
	}
	// Columns without a SourceType take their type from the kind.
	sc.Columns = append(sc.Columns,
		cdc.Column{Name: "k_decimal", Kind: cdc.KindDecimal, Precision: 10, Scale: 2},
		cdc.Column{Name: "k_json", Kind: cdc.KindJSON},
		cdc.Column{Name: "k_arr", Kind: cdc.KindArray, Elem: cdc.KindUUID},
		cdc.Column{Name: "k_bad_type", Kind: cdc.KindString, SourceType: "text); DROP TABLE x; --"},
	)
	dsn, _ := newDB(t, "")
	s, _ := openSink(t, dsn, ModeUpsert, true)
	if err := s.Write(t.Context(), cdc.Applied{Records: []cdc.Record{record(cdc.OpCreate, sc, row)}}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range queryText(t, dsn, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = 'typed'::regclass AND attnum > 0`) {
		name, typ, _ := strings.Cut(line, "|")
		got[name] = typ
	}
	want := map[string]string{
		"c_numeric": "numeric(38,12)", "c_varchar": "character varying(20)", "c_char": "character(3)",
		"c_timestamp": "timestamp(3) without time zone", "c_time2": "time(3) without time zone",
		"c_jsonb": "jsonb", "c_json": "json", "c_int_arr": "integer[]", "c_uuid": "uuid", "c_bytea": "bytea",
		"c_box_arr": "box[]", "c_inet": "inet",
		"c_mood": "text", "c_mood_arr": "text[]", "c_posint": "integer", // user types of the source
		"k_decimal": "numeric(10,2)", "k_json": "jsonb", "k_arr": "uuid[]", "k_bad_type": "text",
	}
	for name, typ := range want {
		if got[name] != typ {
			t.Errorf("column %s: type %q, want %q", name, got[name], typ)
		}
	}
	pk := queryText(t, dsn, `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = 'typed'::regclass AND i.indisprimary`)
	if !cmp.Equal(pk, []string{"id"}) {
		t.Errorf("primary key %v, want [id]", pk)
	}
}

func TestSinkMissingTable(t *testing.T) {
	dsn, _ := newDB(t, "")
	s, _ := openSink(t, dsn, ModeUpsert, false)
	tp := cdc.TopicPartition{Topic: "t", Partition: 0}
	err := s.Write(t.Context(), cdc.Applied{Records: []cdc.Record{record(cdc.OpCreate, usersSchema, user(1, "a", "x"))},
		Offsets: cdc.Offsets{tp: 1}})
	if err == nil || !isPermanent(err) {
		t.Fatalf("Write into a missing table: %v, want a permanent error", err)
	}
	if want := "destination table public.users does not exist (create it, or set sink.create_tables: true)"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if got := queryText(t, dsn, "SELECT count(*) FROM sluice.offsets"); got[0] != "0" {
		t.Errorf("offsets stored after a failed Write")
	}
}

func TestSinkNoUniqueKey(t *testing.T) {
	dsn, _ := newDB(t, "CREATE TABLE users (id bigint, name text, note text);")
	s, _ := openSink(t, dsn, ModeUpsert, false)
	err := s.Write(t.Context(), cdc.Applied{Records: []cdc.Record{record(cdc.OpCreate, usersSchema, user(1, "a", "x"))}})
	if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), `no primary key or unique index on ("id")`) {
		t.Fatalf("upsert into a table without a key: %v, want a permanent error about the key", err)
	}
}

func TestSinkUniqueIndexKey(t *testing.T) {
	dsn, _ := newDB(t, "CREATE TABLE users (serial bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id bigint NOT NULL UNIQUE, name text, note text);")
	s, _ := openSink(t, dsn, ModeUpsert, false)
	for _, b := range [][]cdc.Record{
		{record(cdc.OpCreate, usersSchema, user(1, "a", "x")), record(cdc.OpCreate, usersSchema, user(2, "b", "y"))},
		{record(cdc.OpUpdate, usersSchema, user(1, "c", absentNote)), record(cdc.OpDelete, usersSchema, userKey(2))},
	} {
		if err := s.Write(t.Context(), cdc.Applied{Records: b}); err != nil {
			t.Fatal(err)
		}
	}
	if got := queryText(t, dsn, "SELECT id, name, note FROM users"); !cmp.Equal(got, []string{"1|c|x"}) {
		t.Errorf("rows %v", got)
	}
}

func TestSinkAddColumn(t *testing.T) {
	wide := &cdc.TableSchema{Table: usersID, Key: []string{"id"}, Columns: append(append([]cdc.Column{}, usersSchema.Columns...),
		cdc.Column{Name: "Added Col", Kind: cdc.KindDecimal, SourceType: "numeric(38,12)"})}
	rows := []cdc.Record{record(cdc.OpCreate, wide, cdc.Row{"id": int64(1), "name": "a", "Added Col": cdc.Decimal("1.500000000000")})}
	t.Run("without create_tables", func(t *testing.T) {
		dsn, _ := newDB(t, usersTable)
		s, _ := openSink(t, dsn, ModeUpsert, false)
		err := s.Write(t.Context(), cdc.Applied{Records: rows})
		if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), `public.users has no column "Added Col"`) {
			t.Fatalf("Write with a new column: %v, want a permanent error naming it", err)
		}
	})
	t.Run("with create_tables", func(t *testing.T) {
		dsn, _ := newDB(t, usersTable)
		s, _ := openSink(t, dsn, ModeUpsert, true)
		// The old schema first: the table is cached before it grows.
		if err := s.Write(t.Context(), cdc.Applied{Records: []cdc.Record{record(cdc.OpCreate, usersSchema, user(2, "b", "y"))}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(t.Context(), cdc.Applied{Records: rows}); err != nil {
			t.Fatal(err)
		}
		got := queryText(t, dsn, `SELECT id, name, note, "Added Col", format_type(atttypid, atttypmod) FROM users, pg_attribute
			WHERE attrelid = 'users'::regclass AND attname = 'Added Col' ORDER BY id`)
		want := []string{"1|a|NULL|1.500000000000|numeric(38,12)", "2|b|y|NULL|numeric(38,12)"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("rows (-want +got):\n%s", diff)
		}
	})
	t.Run("column outside the schema", func(t *testing.T) {
		dsn, _ := newDB(t, usersTable)
		s, _ := openSink(t, dsn, ModeUpsert, true)
		r := record(cdc.OpCreate, usersSchema, cdc.Row{"id": int64(1), "name": "a", "extra": int64(42)})
		if err := s.Write(t.Context(), cdc.Applied{Records: []cdc.Record{r}}); err != nil {
			t.Fatal(err)
		}
		if got := queryText(t, dsn, `SELECT id, extra, pg_typeof(extra) FROM users`); !cmp.Equal(got, []string{"1|42|bigint"}) {
			t.Errorf("rows %v", got)
		}
	})
}

func TestSinkMissingColumnsWithoutCreate(t *testing.T) {
	t.Run("column outside the schema", func(t *testing.T) {
		dsn, _ := newDB(t, usersTable)
		s, _ := openSink(t, dsn, ModeUpsert, false)
		r := record(cdc.OpCreate, usersSchema, cdc.Row{"id": int64(1), "name": "a", "extra": int64(42)})
		err := s.Write(t.Context(), cdc.Applied{Records: []cdc.Record{r}})
		if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), `has no column "extra"`) {
			t.Fatalf("Write with an unknown column: %v, want a permanent error naming it", err)
		}
	})
	t.Run("history columns", func(t *testing.T) {
		dsn, _ := newDB(t, usersTable)
		s, _ := openSink(t, dsn, ModeHistory, false)
		err := s.Write(t.Context(), cdc.Applied{Records: []cdc.Record{record(cdc.OpCreate, usersSchema, user(1, "a", "b"))}})
		if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), `has no column "__op", "__position"`) {
			t.Fatalf("history Write into a table without the metadata columns: %v, want a permanent error naming them", err)
		}
	})
}

func TestSinkCompositeKey(t *testing.T) {
	dsn, _ := newDB(t, `CREATE TABLE items (tenant text, id integer, v text, PRIMARY KEY (id, tenant));
		INSERT INTO items VALUES ('a', 1, 'old'), ('b', 1, 'other'), ('a', 2, 'gone');`)
	sc := &cdc.TableSchema{Table: cdc.TableID{Schema: "public", Name: "items"}, Key: []string{"tenant", "id"}, Columns: []cdc.Column{
		{Name: "tenant", Kind: cdc.KindString}, {Name: "id", Kind: cdc.KindInt32}, {Name: "v", Kind: cdc.KindString}}}
	s, _ := openSink(t, dsn, ModeUpsert, false)
	b := []cdc.Record{
		record(cdc.OpUpdate, sc, cdc.Row{"tenant": "a", "id": int32(1), "v": "new"}),
		{Table: sc.Table, Op: cdc.OpDelete, Schema: sc, Before: cdc.Row{"tenant": "a", "id": int32(2), "v": "gone"}},
		record(cdc.OpCreate, sc, cdc.Row{"tenant": "c", "id": int32(1), "v": "x"}),
		record(cdc.OpUpdate, sc, cdc.Row{"tenant": "c", "id": int32(1)}), // absent v: keeps "x"
	}
	if err := s.Write(t.Context(), cdc.Applied{Records: b}); err != nil {
		t.Fatal(err)
	}
	got := queryText(t, dsn, "SELECT tenant, id, v FROM items ORDER BY tenant, id")
	if diff := cmp.Diff([]string{"a|1|new", "b|1|other", "c|1|x"}, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

func TestSinkClear(t *testing.T) {
	dsn, _ := newDB(t, usersTable+"INSERT INTO users VALUES (1, 'a', 'b'); CREATE TABLE keep (x int); INSERT INTO keep VALUES (1);")
	s, _ := openSink(t, dsn, ModeUpsert, false)
	if err := s.Write(t.Context(), cdc.Applied{Offsets: cdc.Offsets{{Topic: "t", Partition: 0}: 7}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Clear(t.Context(), []cdc.TableID{usersID, {Schema: "public", Name: "never_created"}}); err != nil {
		t.Fatal(err)
	}
	if got := queryText(t, dsn, "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM keep), (SELECT count(*) FROM sluice.offsets)"); got[0] != "0|1|0" {
		t.Errorf("users|keep|offsets rows after Clear: %s, want 0|1|0", got[0])
	}
	_ = s.Close(t.Context())
	if _, offs := openSink(t, dsn, ModeUpsert, false); len(offs) != 0 {
		t.Errorf("Open after Clear returned %v", offs)
	}
}

// TestSinkReconnect kills the sink's server session between writes: the
// next Write reconnects by itself.
func TestSinkReconnect(t *testing.T) {
	dsn, _ := newDB(t, usersTable)
	s, _ := openSink(t, dsn, ModeUpsert, false)
	tp := cdc.TopicPartition{Topic: "t", Partition: 0}
	for i := range int64(3) {
		pid := s.conn.PgConn().PID()
		if got := queryText(t, dsn, fmt.Sprintf("SELECT pg_terminate_backend(%d)", pid)); got[0] != "t" {
			t.Fatalf("pg_terminate_backend: %v", got)
		}
		waitFor(t, 10*time.Second, "the backend to end", func() bool {
			return queryText(t, dsn, fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid))[0] == "0"
		})
		b := cdc.Applied{Records: []cdc.Record{record(cdc.OpCreate, usersSchema, user(i, "a", "b"))}, Offsets: cdc.Offsets{tp: i + 1}}
		if err := s.Write(t.Context(), b); err != nil {
			// One failed attempt is allowed; the runtime retries.
			if isPermanent(err) {
				t.Fatalf("write %d after the backend was terminated: permanent error %v", i, err)
			}
			t.Logf("write %d: %v (retrying)", i, err)
			if err := s.Write(t.Context(), b); err != nil {
				t.Fatalf("write %d retried: %v", i, err)
			}
		}
	}
	if got := queryText(t, dsn, "SELECT count(*), (SELECT next_offset FROM sluice.offsets) FROM users"); got[0] != "3|3" {
		t.Errorf("rows|offset = %s, want 3|3", got[0])
	}
}

// TestSinkUncertainCommit: when a COMMIT went unanswered, the retried
// batch is not applied again if its offsets are stored (an append mode
// would otherwise duplicate it).
func TestSinkUncertainCommit(t *testing.T) {
	dsn, _ := newDB(t, "CREATE TABLE users (id bigint, name text, note text);")
	s, _ := openSink(t, dsn, ModeInsert, false)
	tp := cdc.TopicPartition{Topic: "t", Partition: 0}
	b := cdc.Applied{Records: []cdc.Record{record(cdc.OpCreate, usersSchema, user(1, "a", "b"))}, Offsets: cdc.Offsets{tp: 5}}
	if err := s.Write(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	s.uncertain = true
	if err := s.Write(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if got := queryText(t, dsn, "SELECT count(*) FROM users"); got[0] != "1" {
		t.Errorf("%s rows, want 1: the committed batch was applied again", got[0])
	}
	s.uncertain = true
	b.Offsets[tp] = 6
	if err := s.Write(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if got := queryText(t, dsn, "SELECT count(*) FROM users"); got[0] != "2" {
		t.Errorf("%s rows, want 2: a batch that did not commit was not applied", got[0])
	}
}

func TestSinkBadValue(t *testing.T) {
	dsn, _ := newDB(t, usersTable)
	s, _ := openSink(t, dsn, ModeUpsert, false)
	r := record(cdc.OpCreate, usersSchema, cdc.Row{"id": int64(1), "name": 42})
	err := s.Write(t.Context(), cdc.Applied{Records: []cdc.Record{r}})
	if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "public.users") || !strings.Contains(err.Error(), "id: 1") {
		t.Fatalf("Write of a value that does not match its kind: %v, want a permanent error with table and key", err)
	}
}

func TestNewSinkValidates(t *testing.T) {
	for _, cfg := range []SinkConfig{
		{DSN: "postgres://localhost/x", Mode: "merge", OffsetsTable: testOffsetsTable},
		{DSN: "", OffsetsTable: testOffsetsTable},
		{DSN: "postgres://localhost/x"},
		{DSN: "postgres://u:secret@localhost:notaport/x", OffsetsTable: testOffsetsTable},
	} {
		_, err := NewSink(cfg)
		if err == nil {
			t.Errorf("NewSink(%+v) succeeded", cfg)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// benchSchema is a typical table: a bigint key and nine other columns.
var benchSchema = &cdc.TableSchema{Table: cdc.TableID{Schema: "public", Name: "bench"}, Key: []string{"id"}, Columns: []cdc.Column{
	{Name: "id", Kind: cdc.KindInt64, SourceType: "bigint"},
	{Name: "name", Kind: cdc.KindString, SourceType: "text"},
	{Name: "status", Kind: cdc.KindString, SourceType: "character varying(20)"},
	{Name: "amount", Kind: cdc.KindDecimal, SourceType: "numeric(12,2)"},
	{Name: "qty", Kind: cdc.KindInt32, SourceType: "integer"},
	{Name: "ok", Kind: cdc.KindBool, SourceType: "boolean"},
	{Name: "created", Kind: cdc.KindTimestampTZ, SourceType: "timestamp with time zone"},
	{Name: "ref", Kind: cdc.KindUUID, SourceType: "uuid"},
	{Name: "attrs", Kind: cdc.KindJSON, SourceType: "jsonb"},
	{Name: "ratio", Kind: cdc.KindFloat64, SourceType: "double precision"},
}}

const benchRows = 10000

// benchBatch is a batch of benchRows creates/updates; batch i covers keys
// [i*benchRows/2, i*benchRows/2+benchRows): half of them exist already.
func benchBatch(i int) cdc.Applied {
	recs := make([]cdc.Record, benchRows)
	base := int64(i * benchRows / 2)
	ts := utc(2024, 5, 1, 12, 0, 0, 0)
	for j := range recs {
		id := base + int64(j)
		recs[j] = record(cdc.OpUpdate, benchSchema, cdc.Row{
			"id": id, "name": fmt.Sprintf("customer %d with a name", id), "status": "APPROVED",
			"amount": cdc.Decimal(fmt.Sprintf("%d.%02d", id, i%100)), "qty": int32(j), "ok": j%2 == 0,
			"created": ts.Add(time.Duration(id) * time.Second), "ref": fmt.Sprintf("a0eebc99-9c0b-4ef8-bb6d-%012x", id),
			"attrs": cdc.JSON(fmt.Sprintf(`{"batch": %d, "tags": ["a", "b"]}`, i)), "ratio": float64(j) / 7,
		})
	}
	return cdc.Applied{Records: recs, Offsets: cdc.Offsets{{Topic: "bench", Partition: 0}: int64((i + 1) * benchRows)}}
}

func runSinkBench(b *testing.B, mode string) {
	name := fmt.Sprintf("bench_%s_%d", mode, dbSeq.Add(1))
	dsn, err := testPG.CreateDatabase(b.Context(), name)
	if err != nil {
		b.Fatal(err)
	}
	s, _ := openSink(b, dsn, mode, true)
	batches := make([]cdc.Applied, b.N+1)
	for i := range batches {
		batches[i] = benchBatch(i)
	}
	// The first batch creates the table, outside the timing.
	if err := s.Write(b.Context(), batches[0]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := s.Write(b.Context(), batches[i+1]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*benchRows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkSinkUpsert writes batches of 10k upserts of a 10-column table
// (half new keys, half updates of existing ones).
func BenchmarkSinkUpsert(b *testing.B) { runSinkBench(b, ModeUpsert) }

// BenchmarkSinkInsert appends batches of 10k rows (insert mode).
func BenchmarkSinkInsert(b *testing.B) { runSinkBench(b, ModeInsert) }

func TestSinkResetOffsets(t *testing.T) {
	dsn, _ := newDB(t, "")
	s, _ := openSink(t, dsn, ModeUpsert, true)
	a := cdc.TopicPartition{Topic: "a", Partition: 0}
	b := cdc.TopicPartition{Topic: "b", Partition: 2}
	if err := s.Write(t.Context(), cdc.Applied{Offsets: cdc.Offsets{a: 10, b: 20}}); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetOffsets(t.Context(), cdc.Offsets{b: 5}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cdc.Offsets{b: 5}, got); diff != "" {
		t.Errorf("offsets after reset (-want +got):\n%s", diff)
	}
}

func TestClassifyCatalogRace(t *testing.T) {
	race := &pgconn.PgError{Code: "23505", ConstraintName: "pg_type_typname_nsp_index", Message: "duplicate key"}
	var perm *cdc.PermanentError
	if errors.As(classify(race), &perm) {
		t.Error("a concurrent CREATE TABLE is classified permanent")
	}
	dup := &pgconn.PgError{Code: "23505", ConstraintName: "users_pkey", Message: "duplicate key"}
	if !errors.As(classify(dup), &perm) {
		t.Error("a duplicate key in a user table is not permanent")
	}
}

// TestSinkFencesAnotherWriter: two sinks of the same pipeline (a second
// server, a process that lingers) never apply a batch twice: the one whose
// view of the stored offsets is stale fails retryably and, opened again,
// resumes from what the other stored. In upsert mode the stale batch's rows
// reach its temporary tables before the check; the destination table must
// keep the other sink's values.
func TestSinkFencesAnotherWriter(t *testing.T) {
	for _, mode := range []string{ModeInsert, ModeUpsert} {
		t.Run(mode, func(t *testing.T) {
			dsn, _ := newDB(t, usersTable)
			a, _ := openSink(t, dsn, mode, false)
			b, _ := openSink(t, dsn, mode, false)
			tp := cdc.TopicPartition{Topic: "t", Partition: 0}
			batch := func(from, to int64, name string) cdc.Applied {
				var recs []cdc.Record
				for i := from; i < to; i++ {
					recs = append(recs, record(cdc.OpCreate, usersSchema, user(i, name, "b")))
				}
				return cdc.Applied{Records: recs, Offsets: cdc.Offsets{tp: to}}
			}
			const rows = "SELECT count(*), string_agg(DISTINCT name, ',' ORDER BY name), (SELECT next_offset FROM sluice.offsets) FROM users"
			if err := a.Write(t.Context(), batch(0, 3, "a")); err != nil {
				t.Fatal(err)
			}
			// b read the offsets before a's batch: the same records, again.
			err := b.Write(t.Context(), batch(0, 3, "b"))
			if err == nil || isPermanent(err) || !strings.Contains(err.Error(), "another process applies this pipeline") {
				t.Fatalf("stale writer: %v, want a retryable error naming another process", err)
			}
			if got := queryText(t, dsn, rows); got[0] != "3|a|3" {
				t.Fatalf("rows|names|offset = %s, want 3|a|3: the stale batch was applied", got[0])
			}
			// Opened again, b resumes from a's offsets; now a is the stale one.
			offs, err := b.Open(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if offs[tp] != 3 {
				t.Fatalf("reopened at %v, want 3", offs)
			}
			if err := b.Write(t.Context(), batch(3, 5, "b")); err != nil {
				t.Fatal(err)
			}
			if err := a.Write(t.Context(), batch(3, 5, "a")); err == nil {
				t.Fatal("a wrote after b moved the offsets")
			}
			// An offsets reset by an operator fences the running sink too.
			if err := b.ResetOffsets(t.Context(), cdc.Offsets{tp: 1}); err != nil {
				t.Fatal(err)
			}
			if err := a.Write(t.Context(), batch(5, 6, "a")); err == nil {
				t.Fatal("a wrote after its offsets were reset")
			}
			if got := queryText(t, dsn, rows); got[0] != "5|a,b|1" {
				t.Errorf("rows|names|offset = %s, want 5|a,b|1", got[0])
			}
		})
	}
}

// TestSinkFencesFirstOffsets: two sinks that both find no stored offset
// for a partition (a new pipeline) race for the first batch; only one
// applies it.
func TestSinkFencesFirstOffsets(t *testing.T) {
	for _, mode := range []string{ModeInsert, ModeUpsert} {
		t.Run(mode, func(t *testing.T) {
			for i := range 5 {
				dsn, _ := newDB(t, usersTable)
				a, _ := openSink(t, dsn, mode, false)
				b, _ := openSink(t, dsn, mode, false)
				tp := cdc.TopicPartition{Topic: "t", Partition: 0}
				batch := func(name string) cdc.Applied {
					var recs []cdc.Record
					for id := range int64(200) {
						recs = append(recs, record(cdc.OpCreate, usersSchema, user(id, name, "b")))
					}
					return cdc.Applied{Records: recs, Offsets: cdc.Offsets{tp: 200}}
				}
				type result struct {
					name string
					err  error
				}
				results := make(chan result, 2)
				for name, s := range map[string]*Sink{"a": a, "b": b} {
					go func() { results <- result{name, s.Write(t.Context(), batch(name))} }()
				}
				var won []string
				for range 2 {
					r := <-results
					switch {
					case r.err == nil:
						won = append(won, r.name)
					case isPermanent(r.err):
						t.Fatalf("round %d: %s: %v, want a retryable error", i, r.name, r.err)
					}
				}
				if len(won) != 1 {
					t.Fatalf("round %d: %d writes succeeded (%v), want 1", i, len(won), won)
				}
				// Only the winner's rows: in upsert mode the loser's would
				// not add rows but overwrite names.
				if got := queryText(t, dsn, "SELECT count(*), string_agg(DISTINCT name, ',') FROM users"); got[0] != "200|"+won[0] {
					t.Fatalf("round %d: rows|names = %s, want 200|%s: the first batch was applied twice", i, got[0], won[0])
				}
			}
		})
	}
}

// TestSinkFenceBeforePermanentError: a stale sink whose batch holds a value
// the destination rejects gets the retryable fence error, not the
// permanent one, which would have the runtime set a record aside as a dead
// letter that the other process applies. In upsert mode the value fails
// while rows are copied into temporary tables, before the check.
func TestSinkFenceBeforePermanentError(t *testing.T) {
	for _, mode := range []string{ModeInsert, ModeUpsert} {
		t.Run(mode, func(t *testing.T) {
			dsn, _ := newDB(t, `CREATE TABLE users (id bigint PRIMARY KEY, name varchar(3), note text);`)
			a, _ := openSink(t, dsn, mode, false)
			b, _ := openSink(t, dsn, mode, false)
			tp := cdc.TopicPartition{Topic: "t", Partition: 0}
			write := func(s *Sink, name string) error {
				return s.Write(t.Context(), cdc.Applied{
					Records: []cdc.Record{record(cdc.OpCreate, usersSchema, user(1, name, "x"))},
					Offsets: cdc.Offsets{tp: 1}})
			}
			if err := write(a, "abc"); err != nil {
				t.Fatal(err)
			}
			err := write(b, "too long")
			if err == nil || isPermanent(err) || !strings.Contains(err.Error(), "another process applies this pipeline") {
				t.Fatalf("stale writer: %v, want the retryable fence error", err)
			}
			// Not stale, the same value is a permanent error.
			if _, err := b.Open(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := b.Write(t.Context(), cdc.Applied{
				Records: []cdc.Record{record(cdc.OpCreate, usersSchema, user(2, "too long", "x"))},
				Offsets: cdc.Offsets{tp: 2}}); !isPermanent(err) || !strings.Contains(err.Error(), "22001") {
				t.Fatalf("current writer: %v, want a permanent value-too-long error", err)
			}
		})
	}
}

// TestSinkLocksOffsetsFirst: a sink takes the pipeline's offsets lock
// before anything that locks a destination table, such as what an upsert
// batch runs before its offsets check: the DDL of create_tables (adding a
// column), the first CREATE TEMP TABLE ... AS SELECT of a session, or pgx
// preparing the batch's statements (always so in describe_exec mode; in
// the default mode, when they dropped out of its statement cache). Were
// the order the other way round, a sink waiting for the offsets lock would
// hold a lock on the table meanwhile, and a writer that holds the offsets
// lock and then needs the table would deadlock with it.
func TestSinkLocksOffsetsFirst(t *testing.T) {
	tp := cdc.TopicPartition{Topic: "t", Partition: 0}
	wider := &cdc.TableSchema{Table: usersID, Key: []string{"id"},
		Columns: append(slices.Clone(usersSchema.Columns), cdc.Column{Name: "age", Kind: cdc.KindInt32, SourceType: "integer", Nullable: true})}
	aged := user(2, "b", "y")
	aged["age"] = int32(7)
	for _, tc := range []struct {
		name, mode string
		dsnParams  string
		warm       bool // a first batch before, in the same session
		rec        cdc.Record
		query      string
		want       string
	}{
		{"adds a column/insert", ModeInsert, "", true, record(cdc.OpCreate, wider, aged), "SELECT id, age FROM users ORDER BY id", "1|NULL,2|7"},
		{"adds a column/upsert", ModeUpsert, "", true, record(cdc.OpCreate, wider, aged), "SELECT id, age FROM users ORDER BY id", "1|NULL,2|7"},
		{"first batch of a session/upsert", ModeUpsert, "", false, record(cdc.OpCreate, usersSchema, user(2, "b", "y")),
			"SELECT id, name FROM users ORDER BY id", "2|b"},
		{"statements prepared first/upsert", ModeUpsert, "&default_query_exec_mode=describe_exec", true,
			record(cdc.OpCreate, usersSchema, user(2, "b", "y")), "SELECT id, name FROM users ORDER BY id", "1|a,2|b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn, _ := newDB(t, usersTable)
			s, _ := openSink(t, dsn+tc.dsnParams, tc.mode, true)
			var next int64
			if tc.warm {
				next++
				if err := s.Write(t.Context(), cdc.Applied{Records: []cdc.Record{record(cdc.OpCreate, usersSchema, user(1, "a", "x"))},
					Offsets: cdc.Offsets{tp: next}}); err != nil {
					t.Fatal(err)
				}
			}
			// Another writer of the pipeline holds the lock.
			holder := sinkConn(t, dsn)
			tx, err := holder.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background()) //nolint:errcheck // committed below unless the test failed
			if _, err := tx.Exec(t.Context(), s.lockOffsetsSQL()); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				done <- s.Write(t.Context(), cdc.Applied{Records: []cdc.Record{tc.rec}, Offsets: cdc.Offsets{tp: next + 1}})
			}()
			waitFor(t, 10*time.Second, "the sink to wait for the offsets lock", func() bool {
				return queryText(t, dsn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")[0] == "1"
			})
			// Waiting, the sink holds no lock on the table.
			queryText(t, dsn, "SET lock_timeout = '1s'; BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; ROLLBACK")
			if err := tx.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if got := queryText(t, dsn, tc.query); strings.Join(got, ",") != tc.want {
				t.Fatalf("rows = %v, want %s", got, tc.want)
			}
		})
	}
}

// TestSinkUpsertCanceledMidExchange cancels a write while the destination
// runs its pipelined exchange (a trigger sleeps in the upsert): nothing of
// the batch commits, the error does not blame the offsets lock, and the
// next write applies.
func TestSinkUpsertCanceledMidExchange(t *testing.T) {
	dsn, _ := newDB(t, usersTable+`
CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.name = 'slow' THEN PERFORM pg_sleep(5); END IF; RETURN NEW; END $$;
CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION slow();`)
	s, _ := openSink(t, dsn, ModeUpsert, false)
	tp := cdc.TopicPartition{Topic: "t", Partition: 0}
	write := func(ctx context.Context, name string, next int64) error {
		return s.Write(ctx, cdc.Applied{Records: []cdc.Record{record(cdc.OpCreate, usersSchema, user(1, name, "x"))},
			Offsets: cdc.Offsets{tp: next}})
	}
	const state = "SELECT name, (SELECT next_offset FROM sluice.offsets) FROM users"
	if err := write(t.Context(), "a", 1); err != nil {
		t.Fatal(err)
	}
	// Long enough for BEGIN and the COPY into the temporary table on a
	// loaded machine, well short of the trigger's sleep.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	err := write(ctx, "slow", 2)
	if err == nil || !strings.Contains(err.Error(), "apply batch") || strings.Contains(err.Error(), "lock offsets") {
		t.Fatalf("canceled write: %v, want an error of the batch's exchange", err)
	}
	if got := queryText(t, dsn, state); got[0] != "a|1" {
		t.Fatalf("name|offset after the canceled write = %s, want a|1", got[0])
	}
	if err := write(t.Context(), "b", 2); err != nil {
		t.Fatal(err)
	}
	if got := queryText(t, dsn, state); got[0] != "b|2" {
		t.Fatalf("name|offset after the next write = %s, want b|2", got[0])
	}
}

// exchangeCounter counts the statements pgx sends on its own (a query or
// Exec, including BEGIN and COMMIT) and the pipelined batches.
type exchangeCounter struct {
	queries, batches atomic.Int64
}

func (c *exchangeCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.queries.Add(1)
	return ctx
}
func (c *exchangeCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *exchangeCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.batches.Add(1)
	return ctx
}
func (c *exchangeCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *exchangeCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// TestSinkUpsertRoundTrips checks that an upsert batch of a known table
// costs BEGIN, one pipelined batch (offsets check, delete, upsert, offsets
// store) and COMMIT, besides its COPYs: each round trip counts over a
// slow link to the destination.
func TestSinkUpsertRoundTrips(t *testing.T) {
	dsn, _ := newDB(t, usersTable)
	s, err := NewSink(SinkConfig{DSN: dsn, OffsetsTable: testOffsetsTable, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var n exchangeCounter
	s.conf.Tracer = &n
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	if _, err := s.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	tp := cdc.TopicPartition{Topic: "t", Partition: 0}
	rec := func(op cdc.Op, row cdc.Row) cdc.Record { return record(op, usersSchema, row) }
	for i := range 3 {
		b := []cdc.Record{rec(cdc.OpCreate, user(int64(10*i+1), "a", "x")), rec(cdc.OpUpdate, user(int64(10*i+1), "b", "y")),
			rec(cdc.OpCreate, user(int64(10*i+2), "c", nil)), rec(cdc.OpDelete, userKey(int64(10*i+2)))}
		q0, b0 := n.queries.Load(), n.batches.Load()
		if err := s.Write(t.Context(), cdc.Applied{Records: b, Offsets: cdc.Offsets{tp: int64(4 * (i + 1))}}); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if i == 0 {
			continue // the first batch looks the table up and creates the temporary tables
		}
		if q, b := n.queries.Load()-q0, n.batches.Load()-b0; q != 2 || b != 1 {
			t.Errorf("batch %d: %d statements and %d pipelined batches, want 2 (BEGIN, COMMIT) and 1", i, q, b)
		}
	}
	if got, want := queryText(t, dsn, "SELECT id, name, note FROM users ORDER BY id"), []string{"1|b|y", "11|b|y", "21|b|y"}; !cmp.Equal(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	if got := queryText(t, dsn, "SELECT next_offset FROM "+quoteTable(testOffsetsTable)); !cmp.Equal(got, []string{"12"}) {
		t.Errorf("stored offsets %v, want [12]", got)
	}
}
