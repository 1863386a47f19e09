package transforms

import (
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

func TestSet(t *testing.T) {
	full := cdc.Row{"id": int32(7), "name": "Zoë", "status": "open", "amount": cdc.Decimal("1.50"),
		"born": date(1990, 2, 3), "doc": cdc.JSON(`{"a": {"b": [1, "x"]}, "n": 2.5}`)}
	with := func(row cdc.Row, kv ...any) cdc.Row {
		out := cdc.Row{}
		for k, v := range row {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	runCases(t, []stageCase{
		{name: "a new field takes the expression's type", stages: `[{set: {field: n, expr: '1 + 2'}}]`,
			in: person(cdc.OpCreate, nil, full),
			want: []cdc.Record{withSchema(person(cdc.OpCreate, nil, with(full, "n", int64(3))),
				addColumns(cdc.Column{Name: "n", Kind: cdc.KindInt64, Nullable: true}))}, schemas: true},
		{name: "unicode upper keeps the string column", stages: `[{set: {field: name, expr: 'upper(row.name) + "ß"'}}]`,
			in:   person(cdc.OpCreate, nil, full),
			want: []cdc.Record{withSchema(person(cdc.OpCreate, nil, with(full, "name", "ZOËß")), peopleSchema())}, schemas: true},
		{name: "an int result into an int32 column stays int32", stages: `[{set: {field: id, expr: 'row.id * 2'}}]`,
			in: person(cdc.OpCreate, nil, full),
			want: []cdc.Record{func() cdc.Record {
				r := person(cdc.OpCreate, nil, with(full, "id", int32(14)))
				return r
			}()}},
		{name: "before and after are computed apart", stages: `[{set: {field: status, expr: 'row.status + "/" + op'}}]`,
			in:   person(cdc.OpUpdate, with(full, "status", "old"), full),
			want: []cdc.Record{person(cdc.OpUpdate, with(full, "status", "old/u"), with(full, "status", "open/u"))}},
		{name: "a delete's key-only before image leaves the field out", stages: `[{set: {field: status, expr: 'lower(row.status)'}}]`,
			in:   person(cdc.OpDelete, cdc.Row{"id": int32(7)}, nil),
			want: []cdc.Record{person(cdc.OpDelete, cdc.Row{"id": int32(7)}, nil)}},
		{name: "a missing TOASTed input leaves the field out", stages: `[{set: {field: status, expr: 'row.name + "!"'}}]`,
			in:   person(cdc.OpUpdate, nil, cdc.Row{"id": int32(7), "status": "x"}),
			want: []cdc.Record{person(cdc.OpUpdate, nil, cdc.Row{"id": int32(7)})}},
		{name: "a key field is set in the key too", stages: `[{set: {field: id, expr: 'uuid5("person", row.id)', type: uuid}}]`,
			in: person(cdc.OpDelete, cdc.Row{"id": int32(7)}, nil),
			want: []cdc.Record{{Table: people, Op: cdc.OpDelete, Key: cdc.Row{"id": "6ae909d4-7a22-56f6-9019-388e2235cc94"},
				Before: cdc.Row{"id": "6ae909d4-7a22-56f6-9019-388e2235cc94"}}}},
		{name: "null", stages: `[{set: {field: name, expr: 'null', type: string}}]`,
			in: person(cdc.OpCreate, nil, full), want: []cdc.Record{person(cdc.OpCreate, nil, with(full, "name", nil))}},
		{name: "decimals are strings; double() for arithmetic", stages: `[{set: {field: amount, expr: 'string(double(row.amount) * 2.0)'}}]`,
			in: person(cdc.OpCreate, nil, full), want: []cdc.Record{person(cdc.OpCreate, nil, with(full, "amount", cdc.Decimal("3")))}},
		{name: "a double into a decimal column", stages: `[{set: {field: amount, expr: 'double(row.amount) / 4.0'}}]`,
			in: person(cdc.OpCreate, nil, full), want: []cdc.Record{person(cdc.OpCreate, nil, with(full, "amount", cdc.Decimal("0.375")))}},
		{name: "JSON is a parsed document", stages: `[{set: {field: status, expr: 'row.doc.a.b[1] + string(row.doc.n)'}}]`,
			in: person(cdc.OpCreate, nil, full), want: []cdc.Record{person(cdc.OpCreate, nil, with(full, "status", "x2.5"))}},
		{name: "a map becomes JSON", stages: `[{set: {field: meta, expr: '{"op": op, "n": 1}'}}]`,
			in: person(cdc.OpCreate, nil, full), want: []cdc.Record{person(cdc.OpCreate, nil, with(full, "meta", cdc.JSON(`{"n":1,"op":"c"}`)))}},
		{name: "dates are timestamps", stages: `[{set: {field: born, expr: 'row.born + duration("36h")'}}]`,
			in: person(cdc.OpCreate, nil, full), want: []cdc.Record{person(cdc.OpCreate, nil, with(full, "born", date(1990, 2, 4)))}},
		{name: "now and a timestamp type", stages: `[{set: {field: seen, expr: 'now()'}}]`,
			in: person(cdc.OpCreate, nil, full),
			want: []cdc.Record{withSchema(person(cdc.OpCreate, nil, with(full, "seen", testClock)),
				addColumns(cdc.Column{Name: "seen", Kind: cdc.KindTimestampTZ, Nullable: true}))}, schemas: true},
		{name: "typed: a string result parsed as a date", stages: `[{set: {field: d, expr: '"2024-02-29"', type: date}}]`,
			in: person(cdc.OpCreate, nil, full), want: []cdc.Record{person(cdc.OpCreate, nil, with(full, "d", date(2024, 2, 29)))}},
		{name: "optional fields", stages: `[{set: {field: status, expr: 'row.?nickname.orValue("none")'}}]`,
			in: person(cdc.OpCreate, nil, full), want: []cdc.Record{person(cdc.OpCreate, nil, with(full, "status", "none"))}},
		{name: "source and table", stages: `[{set: {field: status, expr: 'table + " " + source.connector + " " + string(source.lsn)'}}]`,
			in: func() cdc.Record {
				r := person(cdc.OpCreate, nil, full)
				r.Source = cdc.SourceInfo{Connector: "postgresql", Extra: map[string]any{"lsn": int64(42)}}
				return r
			}(),
			want: []cdc.Record{func() cdc.Record {
				r := person(cdc.OpCreate, nil, with(full, "status", "public.people postgresql 42"))
				r.Source = cdc.SourceInfo{Connector: "postgresql", Extra: map[string]any{"lsn": int64(42)}}
				return r
			}()}},
		{name: "a field that no row has", stages: `[{set: {field: status, expr: 'row.nickname'}}]`,
			in: person(cdc.OpCreate, nil, full), wantErr: "stages[0].set: status: no such key: nickname"},
		{name: "a new field of unknown type", stages: `[{set: {field: x, expr: 'row.name'}}]`,
			in: person(cdc.OpCreate, nil, full), wantErr: `give it with "type"`},
		{name: "a wrong type at run time", stages: `[{set: {field: status, expr: 'row.name + 1'}}]`,
			in: person(cdc.OpCreate, nil, full), wantErr: "no such overload"},
		{name: "a result that does not convert", stages: `[{set: {field: id, expr: '"seven"', type: int32}}]`,
			in: person(cdc.OpCreate, nil, full), wantErr: `cannot convert string "seven" to int32`},
		{name: "no schema: natural types", stages: `[{set: {field: x, expr: 'row.id + 1'}}]`,
			in:   cdc.Record{Op: cdc.OpCreate, After: cdc.Row{"id": int64(1)}},
			want: []cdc.Record{{Op: cdc.OpCreate, After: cdc.Row{"id": int64(1), "x": int64(2)}}}},
	})
}

func TestFilter(t *testing.T) {
	open := cdc.Row{"id": int32(1), "status": "open", "name": nil}
	runCases(t, []stageCase{
		{name: "kept", stages: `[{filter: {expr: 'row.status == "open"'}}]`,
			in: person(cdc.OpCreate, nil, open), want: []cdc.Record{person(cdc.OpCreate, nil, open)}},
		{name: "dropped", stages: `[{filter: {expr: 'after.status != "open"'}}]`, in: person(cdc.OpCreate, nil, open)},
		{name: "null compares", stages: `[{filter: {expr: 'row.name == null'}}]`,
			in: person(cdc.OpCreate, nil, open), want: []cdc.Record{person(cdc.OpCreate, nil, open)}},
		{name: "deletes without the field are kept", stages: `[{filter: {expr: 'after.status != "open"'}}]`,
			in: person(cdc.OpDelete, cdc.Row{"id": int32(1)}, nil), want: []cdc.Record{person(cdc.OpDelete, cdc.Row{"id": int32(1)}, nil)}},
		{name: "deletes by op", stages: `[{filter: {expr: 'op != "d"'}}]`, in: person(cdc.OpDelete, cdc.Row{"id": int32(1)}, nil)},
		{name: "a dyn result that is not a bool", stages: `[{filter: {expr: 'row.status'}}]`,
			in: person(cdc.OpCreate, nil, open), wantErr: "gave string, want a bool"},
		{name: "unknown field", stages: `[{filter: {expr: 'row.statsu == "x"'}}]`,
			in: person(cdc.OpCreate, nil, open), wantErr: "no such key: statsu"},
		{name: "unicode", stages: `[{filter: {expr: 'row.name.startsWith("Ø")'}}]`,
			in:   person(cdc.OpCreate, nil, cdc.Row{"id": int32(1), "name": "Øystein"}),
			want: []cdc.Record{person(cdc.OpCreate, nil, cdc.Row{"id": int32(1), "name": "Øystein"})}},
	})
}

func TestRoute(t *testing.T) {
	row := cdc.Row{"id": int32(1), "status": "archived"}
	archived := cdc.TableID{Schema: "archive", Name: "people"}
	routed := person(cdc.OpCreate, nil, row)
	routed.Table = archived
	routed.Schema = peopleSchema()
	routed.Schema.Table = archived
	runCases(t, []stageCase{
		{name: "by value", stages: `[{route: {expr: 'row.status == "archived" ? "archive.people" : ""'}}]`,
			in: person(cdc.OpCreate, nil, row), want: []cdc.Record{routed}, schemas: true},
		{name: "empty keeps the table", stages: `[{route: {expr: '""'}}]`,
			in: person(cdc.OpCreate, nil, row), want: []cdc.Record{person(cdc.OpCreate, nil, row)}, schemas: true},
		{name: "default schema", stages: `[{route: {expr: '"Ünïcode"'}}]`,
			in: person(cdc.OpCreate, nil, row), want: []cdc.Record{func() cdc.Record {
				r := person(cdc.OpCreate, nil, row)
				r.Table = cdc.TableID{Schema: "public", Name: "Ünïcode"}
				return r
			}()}},
		{name: "a bad name", stages: `[{route: {expr: '"a.b.c"'}}]`, in: person(cdc.OpCreate, nil, row), wantErr: "want schema.table"},
		{name: "a dyn non-string", stages: `[{route: {expr: 'row.id'}}]`, in: person(cdc.OpCreate, nil, row), wantErr: "gave integer"},
	})
}

func TestCompileExpressionErrors(t *testing.T) {
	tests := []struct{ stages, want string }{
		{`[{filter: {expr: 'after.status !=== ('}}]`, "stages[0].filter.expr: 1:16: syntax error"},
		{`[{filter: {expr: '1 + 2'}}]`, "stages[0].filter.expr: the expression gives int, want bool"},
		{`[{drop: [x]}, {route: {expr: '1'}}]`, "stages[1].route.expr: the expression gives int, want string"},
		{`[{set: {field: x, expr: 'nope(1)'}}]`, "stages[0].set.expr: 1:5: undeclared reference to 'nope'"},
		{`[{set: {field: x, expr: 'after.a +'}}]`, "stages[0].set.expr: 1:10: syntax error"},
		{`[{split: [{stages: [{filter: {expr: 'x'}}]}]}]`, "stages[0].split[0].stages[0].filter.expr: 1:1: undeclared reference to 'x'"},
	}
	for _, tt := range tests {
		_, err := compileYAML(t, tt.stages)
		if err == nil || len(err.Error()) < len(tt.want) || err.Error()[:len(tt.want)] != tt.want {
			t.Errorf("%s: got %v, want %s...", tt.stages, err, tt.want)
		}
	}
}

func TestNowIsTheClock(t *testing.T) {
	chain, err := compileYAML(t, `[{set: {field: t, expr: 'now() + duration("1s")'}}]`, WithClock(func() time.Time { return time.Unix(0, 0) }))
	if err != nil {
		t.Fatal(err)
	}
	out, err := chain.Apply(t.Context(), cdc.Record{Op: cdc.OpCreate, After: cdc.Row{}})
	if err != nil || !out[0].After["t"].(time.Time).Equal(time.Unix(1, 0)) {
		t.Fatalf("got %v, %v", out, err)
	}
}

func TestIterationIsOrdered(t *testing.T) {
	chain, err := compileYAML(t, `[{set: {field: s, expr: 'row.map(k, k).join(",") + ";" + row.doc.map(k, k).join(",")'}}]`)
	if err != nil {
		t.Fatal(err)
	}
	row := cdc.Row{"id": int32(1), "name": "x", "status": "y", "amount": nil, "born": nil,
		"doc": cdc.JSON(`{"z": 1, "a": 2, "m": 3, "b": 4, "y": 5, "c": 6}`)}
	for range 20 {
		out, err := chain.Apply(t.Context(), person(cdc.OpCreate, nil, row))
		if err != nil {
			t.Fatal(err)
		}
		if got := out[0].After["s"]; got != "amount,born,doc,id,name,status;a,b,c,m,y,z" {
			t.Fatalf("got %v", got)
		}
	}
}
