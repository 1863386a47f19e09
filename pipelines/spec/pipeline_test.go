package spec

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

const allStages = "rename, drop, keep, set, cast, filter, route, map_values, uuid5, split, mask, hash, flatten, unwrap"

func TestPipelineErrors(t *testing.T) {
	head := "kind: Pipeline\nname: p\nfrom: {source: s}\n"
	sink := "sink: {postgres: {dsn: x}}\n"
	tests := []struct {
		name, in string
		want     []string
	}{
		{"good", head + "stages:\n  - rename: {table: v3.t, fields: {a: b, 'odd name': c}}\n  - drop: [x]\n  - keep: [b, c]\n" + sink, nil},
		{"two kinds in a stage", head + "stages:\n  - {drop: [a], keep: [b]}\n" + sink,
			[]string{`doc[0] Pipeline "p" (f.yaml:5): stages[0]: a stage needs exactly one of: ` + allStages}},
		{"unknown stage", head + "stages:\n  - explode: {}\n" + sink, []string{
			`doc[0] Pipeline "p" (f.yaml:5): stages[0].explode: unknown field`,
			`doc[0] Pipeline "p" (f.yaml:5): stages[0]: a stage needs exactly one of: ` + allStages}},
		{"empty rename", head + "stages:\n  - rename: {}\n" + sink,
			[]string{`doc[0] Pipeline "p" (f.yaml:5): stages[0].rename: needs table, fields or both`}},
		{"bad rename", head + "stages:\n  - rename:\n      table: a.b.c\n      fields: {a: x, b: x, c: [1]}\n" + sink, []string{
			`doc[0] Pipeline "p" (f.yaml:6): stages[0].rename.table: table "a.b.c": want schema.table`,
			`doc[0] Pipeline "p" (f.yaml:7): stages[0].rename.fields.c: want a string, got a list`,
			`doc[0] Pipeline "p" (f.yaml:7): stages[0].rename.fields.b: "x" is also the new name of "a"`}},
		{"duplicate rename key", head + "stages:\n  - rename:\n      fields:\n        a: x\n        a: y\n" + sink,
			[]string{`doc[0] Pipeline "p" (f.yaml:8): stages[0].rename.fields.a: duplicate field (first on line 7)`}},
		{"empty and duplicate drop", head + "stages:\n  - drop: []\n  - keep: [a, '', a]\n" + sink, []string{
			`doc[0] Pipeline "p" (f.yaml:5): stages[0].drop: want at least one field`,
			`doc[0] Pipeline "p" (f.yaml:6): stages[1].keep[1]: empty field name`,
			`doc[0] Pipeline "p" (f.yaml:6): stages[1].keep[2]: duplicate of stages[1].keep[0]`}},
		{"sink problems", head + "sink:\n  postgres: {offsets_schema: 'A b'}\n  mode: merge\n  batch_rows: 0\n  create_tables: yes please\n", []string{
			`doc[0] Pipeline "p" (f.yaml:5): sink.postgres.dsn: required`,
			`doc[0] Pipeline "p" (f.yaml:5): sink.postgres.offsets_schema: must match [a-z0-9_]{1,63}`,
			`doc[0] Pipeline "p" (f.yaml:6): sink.mode: want one of upsert, insert, history`,
			`doc[0] Pipeline "p" (f.yaml:7): sink.batch_rows: must be 1 to 100000`,
			`doc[0] Pipeline "p" (f.yaml:8): sink.create_tables: want a boolean, got a string`}},
		{"bad new stages", head + `stages:
  - set: {field: '', expr: ' ', type: int8}
  - cast: {fields: {a: 'int32[]', b: array, c: enum}, on_error: ignore}
  - filter: {}
  - route: {expr: ''}
  - map_values: {field: s, values: {A: x}, file: f.csv, default: y, unmapped: keep, type: text}
  - map_values: {field: s}
  - uuid5: {field: id, from: []}
  - split: []
  - mask: {fields: [a], char: '**', keep_first: -1}
  - hash: {fields: [a], salt: literal}
  - hash: {fields: [a], salt: '${env:}'}
  - flatten: {field: j, columns: {a: 'x..y'}, types: {b: int32}}
  - unwrap: {delete: soft, add: [op, lsn, bogus]}
  - split: [{stages: [{drop: []}]}, {}]
` + sink, []string{
			`doc[0] Pipeline "p" (f.yaml:5): stages[0].set.field: want a field name`,
			`doc[0] Pipeline "p" (f.yaml:5): stages[0].set.expr: required`,
			`doc[0] Pipeline "p" (f.yaml:5): stages[0].set.type: unknown type "int8" (want bool, int16, int32, int64, float32, float64, decimal, string, bytes, date, time, timetz, timestamp, timestamptz, interval, uuid, json, or one of them with [])`,
			`doc[0] Pipeline "p" (f.yaml:6): stages[1].cast.fields.b: unknown type "array" (want bool, int16, int32, int64, float32, float64, decimal, string, bytes, date, time, timetz, timestamp, timestamptz, interval, uuid, json, or one of them with [])`,
			`doc[0] Pipeline "p" (f.yaml:6): stages[1].cast.fields.c: unknown type "enum" (want bool, int16, int32, int64, float32, float64, decimal, string, bytes, date, time, timetz, timestamp, timestamptz, interval, uuid, json, or one of them with [])`,
			`doc[0] Pipeline "p" (f.yaml:6): stages[1].cast.on_error: want one of error, set_null`,
			`doc[0] Pipeline "p" (f.yaml:7): stages[2].filter.expr: required`,
			`doc[0] Pipeline "p" (f.yaml:8): stages[3].route.expr: required`,
			`doc[0] Pipeline "p" (f.yaml:9): stages[4].map_values: values and file exclude each other`,
			`doc[0] Pipeline "p" (f.yaml:9): stages[4].map_values.unmapped: default and unmapped exclude each other`,
			`doc[0] Pipeline "p" (f.yaml:9): stages[4].map_values.type: unknown type "text" (want bool, int16, int32, int64, float32, float64, decimal, string, bytes, date, time, timetz, timestamp, timestamptz, interval, uuid, json, or one of them with [])`,
			`doc[0] Pipeline "p" (f.yaml:10): stages[5].map_values: needs values or file`,
			`doc[0] Pipeline "p" (f.yaml:11): stages[6].uuid5.namespace: required`,
			`doc[0] Pipeline "p" (f.yaml:11): stages[6].uuid5.from: want at least one field`,
			`doc[0] Pipeline "p" (f.yaml:12): stages[7].split: want at least one branch`,
			`doc[0] Pipeline "p" (f.yaml:13): stages[8].mask.char: want one character`,
			`doc[0] Pipeline "p" (f.yaml:13): stages[8].mask.keep_first: must not be negative`,
			`doc[0] Pipeline "p" (f.yaml:14): stages[9].hash.salt: want a secret reference such as ${env:SALT} or ${file:PATH}, not the salt itself`,
			`doc[0] Pipeline "p" (f.yaml:15): stages[10].hash.salt: secret reference at offset 0: ${env:...}: bad variable name`,
			`doc[0] Pipeline "p" (f.yaml:16): stages[11].flatten.columns.a: want a path such as a.b.0`,
			`doc[0] Pipeline "p" (f.yaml:16): stages[11].flatten.types.b: not one of the columns`,
			`doc[0] Pipeline "p" (f.yaml:17): stages[12].unwrap.delete: want one of keep, drop, rewrite`,
			`doc[0] Pipeline "p" (f.yaml:17): stages[12].unwrap.add[2]: want one of op, table, schema, db, lsn, tx_id, source.ts_ms, snapshot`,
			`doc[0] Pipeline "p" (f.yaml:18): stages[13].split[0].stages[0].drop: want at least one field`}},
		{"stages that contain themselves", head + "stages: &s\n  - split: [{stages: *s}]\n" + sink, []string{
			`doc[0] Pipeline "p" (f.yaml:4): stages[0].split[0].stages: an alias refers to a node that contains it`}},
		{"bad error policy", head + "errors: ignore\n" + sink,
			[]string{`doc[0] Pipeline "p" (f.yaml:4): errors: want dead_letter or stop`}},
		{"bad reference", head + "sink: {postgres: {dsn: '${vault:x}'}}\n",
			[]string{`doc[0] Pipeline "p" (f.yaml:4): sink.postgres.dsn: secret reference at offset 0: want ${env:NAME} or ${file:PATH} (write "$${" for a literal "${")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := Parse([]byte(tt.in), "f.yaml")
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				p := specs[0].(*Pipeline)
				if len(p.Stages) != 3 || p.Stages[0].Kind() != "rename" || p.Stages[2].Kind() != "keep" ||
					p.Stages[0].Rename.Fields["odd name"] != "c" || p.Sink.Postgres.OffsetsSchema != "public" {
					t.Fatalf("decoded %+v", p)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error")
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestPipelineAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("kind: Pipeline\nname: p\nfrom: {source: s}\nsink: {postgres: {dsn: x}}\nstages:\n")
	b.WriteString("  - split: [{stages: &a0 [{drop: [x]}]}]\n")
	for i := 1; i < 8; i++ {
		fmt.Fprintf(&b, "  - split: [{stages: &a%d [{split: [", i)
		for j := 0; j < 10; j++ {
			fmt.Fprintf(&b, "{stages: *a%d}, ", i-1)
		}
		b.WriteString("]}]}]\n")
	}
	_, err := Parse([]byte(b.String()), "f.yaml")
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("got %v", err)
	}
}

func TestPipelineReferences(t *testing.T) {
	src := &Source{Name: "s", Postgres: &Postgres{DSN: "x", Tables: []string{"a", "other.b"}}}
	sources := map[string]*Source{"s": src}
	p := &Pipeline{Name: "p", From: From{Source: "s", Tables: []string{"public.a", "c"}}}
	err := p.CheckReferences(sources)
	if err == nil || err.Error() != `from.tables[1]: source "s" does not capture public.c` {
		t.Fatalf("got %v", err)
	}
	p.From.Source = "t"
	if err := p.CheckReferences(sources); err == nil || err.Error() != `from.source: no source named "t"` {
		t.Fatalf("got %v", err)
	}
	p.From = From{Source: "s"}
	got, err := p.SourceTables(src)
	want := []cdc.TableID{{Schema: "public", Name: "a"}, {Schema: "other", Name: "b"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("SourceTables = %v, %v", got, err)
	}
}

func TestOffsetsTable(t *testing.T) {
	if got := OffsetsTable("prod", "to-v3"); got != "_sluice_prod_to-v3_offsets" {
		t.Errorf("got %q", got)
	}
	long := OffsetsTable("prod", strings.Repeat("p", 63))
	if len(long) != 63 || !strings.HasSuffix(long, "_offsets") {
		t.Errorf("long name %q (%d bytes)", long, len(long))
	}
	if OffsetsTable("a-b", "c") == OffsetsTable("a", "b_c") {
		t.Error("names clash")
	}
}

func TestStagesDecode(t *testing.T) {
	in := `kind: Pipeline
name: p
from: {source: s}
sink: {postgres: {dsn: x}}
stages:
  - set: {field: a, expr: '1', type: 'int32[]'}
  - cast: {fields: {a: decimal}, on_error: set_null}
  - filter: {expr: 'true'}
  - route: {expr: '"x"'}
  - map_values: {field: s, values: {"1": one, "2": null}, default: other, type: string}
  - uuid5: {field: id, namespace: ns, from: [a, b]}
  - split: [{stages: [{drop: [x]}]}, {}]
  - mask: {fields: [a], char: '•', keep_last: 4}
  - hash: {fields: [a], salt: '${env:SALT}'}
  - flatten: {field: j, columns: {a: x.0.y}, types: {a: int64}, keep: true}
  - unwrap:
`
	specs, err := Parse([]byte(in), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := specs[0].(*Pipeline)
	var kinds []string
	for i := range p.Stages {
		kinds = append(kinds, p.Stages[i].Kind())
	}
	want := "set cast filter route map_values uuid5 split mask hash flatten unwrap"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("kinds %s", got)
	}
	if v := p.Stages[4].MapValues.Values; *v["1"] != "one" || v["2"] != nil || *p.Stages[4].MapValues.Default != "other" {
		t.Errorf("map_values %+v", p.Stages[4].MapValues)
	}
	if len(p.Stages[6].Split) != 2 || p.Stages[6].Split[0].Stages[0].Kind() != "drop" || p.Stages[10].Unwrap == nil {
		t.Errorf("split %+v, unwrap %+v", p.Stages[6].Split, p.Stages[10].Unwrap)
	}
	if k, e, err := ParseType("uuid[]"); err != nil || k != cdc.KindArray || e != cdc.KindUUID {
		t.Errorf("ParseType = %v %v %v", k, e, err)
	}
}
