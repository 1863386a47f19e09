package debezium

import (
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// benchRecord is an update of a 12-column row of typical types.
func benchRecord() cdc.Record {
	cols := []cdc.Column{
		{Name: "id", Kind: cdc.KindInt64, SourceType: "bigint"},
		{Name: "customer_id", Kind: cdc.KindInt32, SourceType: "integer"},
		{Name: "email", Kind: cdc.KindString, SourceType: "character varying(255)", Length: 255, Nullable: true},
		{Name: "amount", Kind: cdc.KindDecimal, SourceType: "numeric(12,2)", Precision: 12, Scale: 2},
		{Name: "ratio", Kind: cdc.KindFloat64, SourceType: "double precision", Nullable: true},
		{Name: "active", Kind: cdc.KindBool, SourceType: "boolean"},
		{Name: "created_at", Kind: cdc.KindTimestampTZ, SourceType: "timestamp with time zone"},
		{Name: "updated_at", Kind: cdc.KindTimestamp, SourceType: "timestamp without time zone", Nullable: true},
		{Name: "birthday", Kind: cdc.KindDate, SourceType: "date", Nullable: true},
		{Name: "ref", Kind: cdc.KindUUID, SourceType: "uuid"},
		{Name: "attrs", Kind: cdc.KindJSON, SourceType: "jsonb", Nullable: true},
		{Name: "tags", Kind: cdc.KindArray, Elem: cdc.KindString, SourceType: "text[]", Nullable: true},
	}
	ts := time.Date(2024, 1, 31, 10, 11, 12, 123456000, time.UTC)
	row := func(email string) cdc.Row {
		return cdc.Row{"id": int64(123456789), "customer_id": int32(42), "email": email,
			"amount": cdc.Decimal("1234.50"), "ratio": 0.25, "active": true, "created_at": ts,
			"updated_at": ts, "birthday": date(1990, 5, 17), "ref": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
			"attrs": cdc.JSON(`{"plan": "pro", "seats": 5}`), "tags": []any{"vip", "eu"}}
	}
	table := cdc.TableID{Schema: "public", Name: "orders"}
	return cdc.Record{Table: table, Op: cdc.OpUpdate, Key: cdc.Row{"id": int64(123456789)},
		Before: row("old@example.com"), After: row("new@example.com"), TxID: "771", Seq: 1, CommitTime: ts,
		Schema: &cdc.TableSchema{Table: table, Columns: cols, Key: []string{"id"}},
		Source: cdc.SourceInfo{Connector: "postgresql", Name: "prod.pg", DB: "shop", Snapshot: "false",
			Extra: map[string]any{"lsn": int64(24023128), "txId": int64(771)}}}
}

func BenchmarkEncodeValue(b *testing.B) {
	for _, schemas := range []bool{true, false} {
		name := "schemas"
		if !schemas {
			name = "bare"
		}
		b.Run(name, func(b *testing.B) {
			codec := NewJSON(WithSchemas(schemas))
			r := benchRecord()
			b.ReportAllocs()
			for b.Loop() {
				v, err := codec.EncodeValue(r)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(v)))
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	codec := NewJSON()
	r := benchRecord()
	key, _ := codec.EncodeKey(r)
	value, _ := codec.EncodeValue(r)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codec.Decode(key, value); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeInsert decodes what the apply benchmark's topic holds: an
// insert of a 5-column row as the PostgreSQL source writes it.
func BenchmarkDecodeInsert(b *testing.B) {
	codec := NewJSON()
	cols := []cdc.Column{
		{Name: "id", Kind: cdc.KindInt64, SourceType: "bigint"},
		{Name: "a", Kind: cdc.KindInt32, SourceType: "integer", Nullable: true},
		{Name: "b", Kind: cdc.KindString, SourceType: "text", Nullable: true},
		{Name: "c", Kind: cdc.KindDecimal, SourceType: "numeric(12,2)", Precision: 12, Scale: 2, Nullable: true},
		{Name: "d", Kind: cdc.KindTimestampTZ, SourceType: "timestamp with time zone", Nullable: true},
	}
	ts := time.Date(2024, 1, 31, 10, 11, 12, 123456000, time.UTC)
	table := cdc.TableID{Schema: "public", Name: "bench"}
	r := cdc.Record{Table: table, Op: cdc.OpCreate, Key: cdc.Row{"id": int64(123456)},
		After: cdc.Row{"id": int64(123456), "a": int32(23456), "b": "e10adc3949ba59abbe56e057f20f883e",
			"c": cdc.Decimal("1234.56"), "d": ts},
		TxID: "771", Seq: 1, CommitTime: ts,
		Schema: &cdc.TableSchema{Table: table, Columns: cols, Key: []string{"id"}},
		Source: cdc.SourceInfo{Connector: "postgresql", Name: "bench.bench", DB: "apply_src", Snapshot: "false",
			Extra: map[string]any{"lsn": int64(24023128), "txId": int64(771)}}}
	key, _ := codec.EncodeKey(r)
	value, _ := codec.EncodeValue(r)
	b.SetBytes(int64(len(key) + len(value)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codec.Decode(key, value); err != nil {
			b.Fatal(err)
		}
	}
}
