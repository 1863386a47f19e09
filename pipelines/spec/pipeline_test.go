package spec

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

func TestPipelineErrors(t *testing.T) {
	head := "kind: Pipeline\nname: p\nfrom: {source: s}\n"
	sink := "sink: {postgres: {dsn: x}}\n"
	tests := []struct {
		name, in string
		want     []string
	}{
		{"good", head + "stages:\n  - rename: {table: v3.t, fields: {a: b, 'odd name': c}}\n  - drop: [x]\n  - keep: [b, c]\n" + sink, nil},
		{"two kinds in a stage", head + "stages:\n  - {drop: [a], keep: [b]}\n" + sink,
			[]string{`doc[0] Pipeline "p" (f.yaml:5): stages[0]: a stage needs exactly one of: rename, drop, keep`}},
		{"unknown stage", head + "stages:\n  - explode: {}\n" + sink, []string{
			`doc[0] Pipeline "p" (f.yaml:5): stages[0].explode: unknown field`,
			`doc[0] Pipeline "p" (f.yaml:5): stages[0]: a stage needs exactly one of: rename, drop, keep`}},
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
