package debezium

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var (
	fixedNow   = time.Date(2024, 2, 1, 12, 0, 0, 0, time.UTC)
	testCommit = time.Date(2024, 1, 31, 10, 11, 12, 123456000, time.UTC)
	idColumn   = cdc.Column{Name: "id", Kind: cdc.KindInt32, SourceType: "integer"}
	moodLabels = []string{"sad", "ok", "happy, really"}
	cmpOpts    = []cmp.Option{cmpopts.EquateNaNs()}
)

func newCodec(schemas bool) *JSON {
	return NewJSON(WithSchemas(schemas), WithClock(func() time.Time { return fixedNow }))
}

// record returns an insert into public.t (id integer primary key, v col)
// whose row holds id 1 and, when present, v.
func record(col cdc.Column, v any, present bool) cdc.Record {
	col.Name = "v"
	after := cdc.Row{"id": int32(1)}
	if present {
		after["v"] = v
	}
	table := cdc.TableID{Schema: "public", Name: "t"}
	return cdc.Record{
		Table: table, Op: cdc.OpCreate, Key: cdc.Row{"id": int32(1)}, After: after,
		TxID: "771", Seq: 3, CommitTime: testCommit,
		Schema: &cdc.TableSchema{Table: table, Columns: []cdc.Column{idColumn, col}, Key: []string{"id"}},
		Source: cdc.SourceInfo{Connector: "postgresql", Name: "prod.pg", DB: "shop", Snapshot: "false",
			Extra: map[string]any{"lsn": int64(24023128), "txId": int64(771), "xmin": nil,
				"sequence": `["24023000","24023128"]`}},
	}
}

func col(k cdc.Kind, sourceType string) cdc.Column {
	return cdc.Column{Kind: k, SourceType: sourceType, Nullable: true}
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// kindCases has one record per kind and edge case; each has a golden file.
func kindCases() map[string]cdc.Record {
	intArr := cdc.Column{Kind: cdc.KindArray, Elem: cdc.KindInt32, SourceType: "integer[]", Nullable: true}
	textArr := cdc.Column{Kind: cdc.KindArray, Elem: cdc.KindString, SourceType: "text[]", Nullable: true}
	enumArr := cdc.Column{Kind: cdc.KindArray, Elem: cdc.KindEnum, SourceType: "mood[]", Nullable: true,
		EnumValues: moodLabels}
	ts := time.Date(2024, 1, 31, 10, 11, 12, 123456000, time.UTC)
	return map[string]cdc.Record{
		"bool":                record(col(cdc.KindBool, "boolean"), true, true),
		"int16":               record(col(cdc.KindInt16, "smallint"), int16(math.MinInt16), true),
		"int32":               record(col(cdc.KindInt32, "integer"), int32(-42), true),
		"int64":               record(col(cdc.KindInt64, "bigint"), int64(math.MaxInt64), true),
		"float32":             record(col(cdc.KindFloat32, "real"), float32(1.1), true),
		"float32_nan":         record(col(cdc.KindFloat32, "real"), float32(math.NaN()), true),
		"float64":             record(col(cdc.KindFloat64, "double precision"), 1e-300, true),
		"float64_inf":         record(col(cdc.KindFloat64, "double precision"), math.Inf(1), true),
		"float64_neg_inf":     record(col(cdc.KindFloat64, "double precision"), math.Inf(-1), true),
		"float64_neg_zero":    record(col(cdc.KindFloat64, "double precision"), math.Copysign(0, -1), true),
		"decimal_40_digits":   record(cdc.Column{Kind: cdc.KindDecimal, SourceType: "numeric(40,2)", Precision: 40, Scale: 2}, cdc.Decimal("12345678901234567890123456789012345678.90"), true),
		"decimal_nan":         record(col(cdc.KindDecimal, "numeric"), cdc.Decimal("NaN"), true),
		"string_unicode":      record(cdc.Column{Kind: cdc.KindString, SourceType: "character varying(50)", Length: 50}, "héllo 日本語 🎉 \"q\" \\ \n\t\x01 </script>", true),
		"bytes":               record(col(cdc.KindBytes, "bytea"), []byte{0, 1, 2, 0xff}, true),
		"bytes_empty":         record(col(cdc.KindBytes, "bytea"), []byte{}, true),
		"date":                record(col(cdc.KindDate, "date"), date(2024, 1, 31), true),
		"date_bc":             record(col(cdc.KindDate, "date"), date(-43, 3, 15), true),
		"date_infinity":       record(col(cdc.KindDate, "date"), cdc.Infinity{Sign: 1}, true),
		"date_neg_infinity":   record(col(cdc.KindDate, "date"), cdc.Infinity{Sign: -1}, true),
		"time":                record(col(cdc.KindTime, "time without time zone"), 10*time.Hour+11*time.Minute+12123456*time.Microsecond, true),
		"timetz":              record(col(cdc.KindTimeTZ, "time with time zone"), "10:11:12.5+05:30", true),
		"timestamp":           record(col(cdc.KindTimestamp, "timestamp without time zone"), ts, true),
		"timestamp_bc":        record(col(cdc.KindTimestamp, "timestamp without time zone"), time.Date(-43, 3, 15, 1, 2, 3, 4000, time.UTC), true),
		"timestamp_infinity":  record(col(cdc.KindTimestamp, "timestamp without time zone"), cdc.Infinity{Sign: 1}, true),
		"timestamptz":         record(col(cdc.KindTimestampTZ, "timestamp with time zone"), ts, true),
		"timestamptz_bc":      record(col(cdc.KindTimestampTZ, "timestamp with time zone"), time.Date(-43, 3, 15, 1, 2, 3, 0, time.UTC), true),
		"timestamptz_far":     record(col(cdc.KindTimestampTZ, "timestamp with time zone"), time.Date(294276, 12, 31, 23, 59, 59, 999999000, time.UTC), true),
		"timestamptz_neg_inf": record(col(cdc.KindTimestampTZ, "timestamp with time zone"), cdc.Infinity{Sign: -1}, true),
		"interval":            record(col(cdc.KindInterval, "interval"), cdc.Interval{Months: 14, Days: 3, Micros: 4*3600e6 + 5*60e6 + 6e6 + 7}, true),
		"interval_negative":   record(col(cdc.KindInterval, "interval"), cdc.Interval{Months: -14, Days: -1, Micros: 2*3600e6 - 500000}, true),
		"interval_sub_second": record(col(cdc.KindInterval, "interval"), cdc.Interval{Micros: -1}, true),
		"uuid":                record(col(cdc.KindUUID, "uuid"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", true),
		"json":                record(col(cdc.KindJSON, "json"), cdc.JSON(`{"b": [1, 2.50], "a": null}`), true),
		"jsonb":               record(col(cdc.KindJSON, "jsonb"), cdc.JSON(`{"a": null, "b": [1, 2.50]}`), true),
		"enum":                record(cdc.Column{Kind: cdc.KindEnum, SourceType: "mood", EnumValues: moodLabels}, "happy, really", true),
		"array":               record(intArr, []any{int32(1), nil, int32(-3)}, true),
		"array_empty":         record(intArr, []any{}, true),
		"array_nested":        record(intArr, []any{[]any{int32(1), int32(2)}, []any{int32(3), nil}}, true),
		"array_text":          record(textArr, []any{"a b", `c"d`, "NULL", nil, ""}, true),
		"array_enum":          record(enumArr, []any{"sad", "happy, really"}, true),
		"null":                record(col(cdc.KindString, "text"), nil, true),
		"absent":              record(col(cdc.KindString, "text"), nil, false),
	}
}

// opCases has one record per operation.
func opCases() map[string]cdc.Record {
	c := cdc.Column{Kind: cdc.KindString, SourceType: "text", Nullable: true}
	create := record(c, "new", true)
	upd := record(c, "newer", true)
	upd.Op, upd.Before, upd.Seq = cdc.OpUpdate, cdc.Row{"id": int32(1), "v": "new"}, 4
	del := record(c, nil, false)
	del.Op, del.Before, del.After = cdc.OpDelete, cdc.Row{"id": int32(1)}, nil
	read := record(c, "old", true)
	read.Op, read.TxID, read.Seq = cdc.OpRead, "", 0
	read.Source.Snapshot, read.Source.Extra = "last", map[string]any{"lsn": int64(24023000)}
	trunc := record(c, nil, false)
	trunc.Op, trunc.Key, trunc.After = cdc.OpTruncate, nil, nil
	return map[string]cdc.Record{"op_create": create, "op_update": upd, "op_delete": del,
		"op_read": read, "op_truncate": trunc}
}

func allCases() map[string]cdc.Record {
	m := kindCases()
	for k, v := range opCases() {
		m[k] = v
	}
	return m
}

func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return buf.Bytes()
}

func TestGolden(t *testing.T) {
	codec := newCodec(true)
	for name, r := range allCases() {
		t.Run(name, func(t *testing.T) {
			key, err := codec.EncodeKey(r)
			if err != nil {
				t.Fatal(err)
			}
			value, err := codec.EncodeValue(r)
			if err != nil {
				t.Fatal(err)
			}
			got := append(append(indent(t, key), '\n'), indent(t, value)...)
			got = append(got, '\n')
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs (-want +got):\n%s", path, diff)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	codec := newCodec(true)
	for name, r := range allCases() {
		t.Run(name, func(t *testing.T) {
			got := roundTrip(t, codec, r)
			if diff := cmp.Diff(r, got, cmpOpts...); diff != "" {
				t.Errorf("round trip differs (-want +got):\n%s", diff)
			}
		})
	}
}

func roundTrip(t *testing.T, codec *JSON, r cdc.Record) cdc.Record {
	t.Helper()
	key, err := codec.EncodeKey(r)
	if err != nil {
		t.Fatal(err)
	}
	value, err := codec.EncodeValue(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := codec.Decode(key, value)
	if err != nil {
		t.Fatalf("decode %s: %v", value, err)
	}
	return got
}

func TestRoundTripSchemas(t *testing.T) {
	codec := newCodec(true)
	tests := map[string]cdc.Column{
		"decimal unconstrained": {Name: "v", Kind: cdc.KindDecimal, SourceType: "numeric"},
		"decimal scale only":    {Name: "v", Kind: cdc.KindDecimal, Scale: 3, Length: 7},
		"string odd precision":  {Name: "v", Kind: cdc.KindString, Precision: 3, Scale: 2, Length: 9},
		"enum empty label":      {Name: "v", Kind: cdc.KindEnum, EnumValues: []string{"", "a"}},
		"enum no labels":        {Name: "v", Kind: cdc.KindEnum},
		"not null":              {Name: "v", Kind: cdc.KindBool, Nullable: false},
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			got := roundTrip(t, codec, record(c, nil, true))
			if diff := cmp.Diff(c, got.Schema.Columns[1]); diff != "" {
				t.Errorf("column differs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeWithoutSchemas(t *testing.T) {
	codec := newCodec(false)
	r := record(col(cdc.KindString, "text"), "x", true)
	r.After["n"] = nil
	r.Schema.Columns = append(r.Schema.Columns, cdc.Column{Name: "n", Kind: cdc.KindInt64})
	key, err := codec.EncodeKey(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(key) != `{"id":1}` {
		t.Errorf("key = %s", key)
	}
	value, err := codec.EncodeValue(r)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(value, []byte(`"schema":{`)) {
		t.Errorf("value has a schema: %s", value)
	}
	got, err := codec.Decode(key, value)
	if err != nil {
		t.Fatal(err)
	}
	want := r
	want.Key = cdc.Row{"id": json.Number("1")}
	want.After = cdc.Row{"id": json.Number("1"), "v": "x", "n": nil}
	want.Schema = &cdc.TableSchema{Table: r.Table, Key: []string{"id"},
		Columns: []cdc.Column{{Name: "id"}, {Name: "v"}, {Name: "n"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
}

func TestDecodeTombstone(t *testing.T) {
	codec := newCodec(true)
	typedKey, err := codec.EncodeKey(record(col(cdc.KindBool, ""), nil, true))
	if err != nil {
		t.Fatal(err)
	}
	typed := &cdc.TableSchema{Columns: []cdc.Column{idColumn}, Key: []string{"id"}}
	untyped := &cdc.TableSchema{Columns: []cdc.Column{{Name: "id"}}, Key: []string{"id"}}
	tests := []struct {
		key, value string
		want       cdc.Record
	}{
		{`{"id":1}`, "", cdc.Record{Key: cdc.Row{"id": json.Number("1")}, Schema: untyped}},
		{`{"id":1}`, "null", cdc.Record{Key: cdc.Row{"id": json.Number("1")}, Schema: untyped}},
		{string(typedKey), `{"schema":null,"payload":null}`, cdc.Record{Key: cdc.Row{"id": int32(1)}, Schema: typed}},
	}
	for _, tt := range tests {
		got, err := codec.Decode([]byte(tt.key), []byte(tt.value))
		if !errors.Is(err, ErrTombstone) {
			t.Errorf("Decode(%s, %q) error = %v, want ErrTombstone", tt.key, tt.value, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Decode(%s, %q) (-want +got):\n%s", tt.key, tt.value, diff)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := map[string]struct {
		rec  cdc.Record
		want string
	}{
		"wrong type":           {record(col(cdc.KindInt32, ""), int64(1), true), "int32 column holds int64"},
		"invalid utf8":         {record(col(cdc.KindString, ""), "\xff", true), "not valid UTF-8"},
		"not midnight":         {record(col(cdc.KindDate, ""), testCommit, true), "not at midnight"},
		"nanoseconds":          {record(col(cdc.KindTimestamp, ""), testCommit.Add(1), true), "sub-microsecond"},
		"unknown kind":         {record(col(cdc.KindUnknown, ""), nil, true), "cannot encode kind"},
		"array of arrays":      {record(cdc.Column{Kind: cdc.KindArray, Elem: cdc.KindArray}, nil, true), "array of array"},
		"extra clash":          {func() cdc.Record { r := record(col(cdc.KindBool, ""), nil, true); r.Source.Extra["db"] = "x"; return r }(), "clashes"},
		"column not in schema": {func() cdc.Record { r := record(col(cdc.KindBool, ""), nil, true); r.After["zz"] = 1; return r }(), `"zz" is not in the schema`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := newCodec(true).EncodeValue(tt.rec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestNoKey(t *testing.T) {
	r := record(col(cdc.KindBool, ""), true, true)
	r.Schema.Key, r.Key = nil, nil
	key, err := newCodec(true).EncodeKey(r)
	if err != nil || key != nil {
		t.Errorf("EncodeKey = %s, %v; want nil, nil", key, err)
	}
}
