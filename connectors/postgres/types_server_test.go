package postgres

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

const typesSetup = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy, really');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN amount AS numeric(12,2);
CREATE DOMAIN int_list AS integer[];
CREATE TABLE all_types (
	c_bool boolean, c_int2 smallint, c_int4 integer, c_int8 bigint, c_oid oid,
	c_float4 real, c_float8 double precision, c_numeric numeric(38,12), c_numeric_any numeric,
	c_text text, c_varchar varchar(20), c_char char(3), c_bytea bytea,
	c_date date, c_time time, c_timetz timetz, c_timestamp timestamp(3), c_timestamptz timestamptz,
	c_interval interval, c_uuid uuid, c_json json, c_jsonb jsonb, c_mood mood, c_posint posint,
	c_amount amount, c_int_list int_list, c_int_arr integer[], c_text_arr text[], c_mood_arr mood[],
	c_posint_arr posint[], c_inet inet, c_money money, c_box_arr box[], c_varchar_arr varchar(5)[]
);
INSERT INTO all_types VALUES (
	true, -32768, 2147483647, -9223372036854775808, 4294967295,
	'-Infinity', 'NaN', '-12345678901234567890123456.123456789012', '1e-20',
	E'h\u00e9llo \U0001F389\n"', 'x', 'ab', '\x0102ff',
	'0044-03-15 BC', '24:00:00', '10:11:12.5+05:30', '2024-01-31 10:11:12.123', '2024-01-31 10:11:12.123456+02',
	'-1 years -2 mons +3 days -04:05:06.000007', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{"b": [1, 2.50]}', '{"b": [1, 2.50]}',
	'happy, really', 7, 1.5, '{1,2}', '{{1,NULL},{3,4}}', ARRAY['a b', 'c"d', 'NULL', NULL, '', 'x,y'], '{sad,"happy, really"}',
	'{1}', '192.168.0.1/24', 1234.5, '{(1,1),(0,0);(2,2),(1,1)}', '{ab}'
);`

// TestTypesAgainstServer checks loadTypes, columnFor and parseText against
// a real server, and that what formatText writes reads back the same.
func TestTypesAgainstServer(t *testing.T) {
	dsn, _ := newDB(t, typesSetup)
	ctx := t.Context()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"TimeZone": "UTC", "DateStyle": "ISO, MDY",
		"IntervalStyle": "postgres", "extra_float_digits": "3", "bytea_output": "hex"} {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	rows, err := conn.Query(ctx, `SELECT attname::text, atttypid, atttypmod, format_type(atttypid, atttypmod)
		FROM pg_attribute WHERE attrelid = 'all_types'::regclass AND attnum > 0 ORDER BY attnum`)
	if err != nil {
		t.Fatal(err)
	}
	var defs []columnDef
	var formatted []string
	for rows.Next() {
		var d columnDef
		var f string
		if err := rows.Scan(&d.name, &d.oid, &d.typmod, &f); err != nil {
			t.Fatal(err)
		}
		defs, formatted = append(defs, d), append(formatted, f)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	oids := make([]uint32, len(defs))
	for i, d := range defs {
		oids[i] = d.oid
	}
	types, err := loadTypes(ctx, conn, oids)
	if err != nil {
		t.Fatal(err)
	}
	res := conn.PgConn().ExecParams(ctx, "SELECT * FROM all_types", nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	want := wantAllTypes()
	for i, d := range defs {
		col := columnFor(d.name, d.oid, d.typmod, types)
		if col.SourceType != formatted[i] {
			t.Errorf("%s: SourceType %q, format_type says %q", d.name, col.SourceType, formatted[i])
		}
		got, err := parseText(col, res.Rows[0][i])
		if err != nil {
			t.Errorf("%s: %v", d.name, err)
			continue
		}
		if diff := cmp.Diff(want[d.name], got, cmpOpts...); diff != "" {
			t.Errorf("%s (%s) parsed from %q (-want +got):\n%s", d.name, col.Kind, res.Rows[0][i], diff)
		}
		lit, err := formatText(col, got)
		if err != nil {
			t.Errorf("%s: %v", d.name, err)
			continue
		}
		back := conn.PgConn().ExecParams(ctx, "SELECT $1::"+formatted[i], [][]byte{[]byte(lit)}, nil, nil, nil).Read()
		if back.Err != nil {
			t.Errorf("%s: server rejects %q: %v", d.name, lit, back.Err)
			continue
		}
		again, err := parseText(col, back.Rows[0][0])
		if err != nil {
			t.Errorf("%s: %v", d.name, err)
			continue
		}
		if diff := cmp.Diff(got, again, cmpOpts...); diff != "" {
			t.Errorf("%s: through the server as %q (-want +got):\n%s", d.name, lit, diff)
		}
	}
}

func wantAllTypes() map[string]any {
	return map[string]any{
		"c_bool": true, "c_int2": int16(math.MinInt16), "c_int4": int32(math.MaxInt32),
		"c_int8": int64(math.MinInt64), "c_oid": int64(4294967295),
		"c_float4": float32(math.Inf(-1)), "c_float8": math.NaN(),
		"c_numeric":     cdc.Decimal("-12345678901234567890123456.123456789012"),
		"c_numeric_any": cdc.Decimal("0.00000000000000000001"),
		"c_text":        "héllo 🎉\n\"", "c_varchar": "x", "c_char": "ab ", "c_bytea": []byte{1, 2, 0xff},
		"c_date": utc(-43, 3, 15, 0, 0, 0, 0), "c_time": 24 * time.Hour, "c_timetz": "10:11:12.5+05:30",
		"c_timestamp":   utc(2024, 1, 31, 10, 11, 12, 123000),
		"c_timestamptz": utc(2024, 1, 31, 8, 11, 12, 123456),
		"c_interval":    cdc.Interval{Months: -14, Days: 3, Micros: -14706000007},
		"c_uuid":        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		"c_json":        cdc.JSON(`{"b": [1, 2.50]}`), "c_jsonb": cdc.JSON(`{"b": [1, 2.50]}`),
		"c_mood": "happy, really", "c_posint": int32(7), "c_amount": cdc.Decimal("1.50"),
		"c_int_list": []any{int32(1), int32(2)},
		"c_int_arr":  []any{[]any{int32(1), nil}, []any{int32(3), int32(4)}},
		"c_text_arr": []any{"a b", `c"d`, "NULL", nil, "", "x,y"},
		"c_mood_arr": []any{"sad", "happy, really"}, "c_posint_arr": []any{int32(1)},
		"c_inet": "192.168.0.1/24", "c_money": "$1,234.50",
		"c_box_arr":     []any{"(1,1),(0,0)", "(2,2),(1,1)"},
		"c_varchar_arr": []any{"ab"},
	}
}
