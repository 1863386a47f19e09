package transforms

import (
	"testing"
	"testing/fstest"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

func TestCast(t *testing.T) {
	in := cdc.Row{"id": int32(7), "name": "12", "status": " 1.50 ", "amount": cdc.Decimal("12.000"), "born": date(2001, 2, 3), "doc": nil}
	runCases(t, []stageCase{
		{name: "several fields", stages: `[{cast: {fields: {name: int16, amount: int64, born: string, doc: json, status: decimal}}}]`,
			in: person(cdc.OpCreate, nil, in),
			want: []cdc.Record{withSchema(person(cdc.OpCreate, nil, cdc.Row{"id": int32(7), "name": int16(12), "status": cdc.Decimal("1.50"),
				"amount": int64(12), "born": "2001-02-03", "doc": nil}), addColumns(
				cdc.Column{Name: "name", Kind: cdc.KindInt16, Nullable: true},
				cdc.Column{Name: "status", Kind: cdc.KindDecimal, Nullable: true},
				cdc.Column{Name: "amount", Kind: cdc.KindInt64, Nullable: true},
				cdc.Column{Name: "born", Kind: cdc.KindString, Nullable: true},
				cdc.Column{Name: "doc", Kind: cdc.KindJSON, SourceType: "jsonb", Nullable: true}))}, schemas: true},
		{name: "a fraction is not an integer", stages: `[{cast: {fields: {status: int32}}}]`,
			in: person(cdc.OpCreate, nil, in), wantErr: `status: cannot convert string " 1.50 " to int32: has a fraction`},
		{name: "out of range", stages: `[{cast: {fields: {id: int16}}}]`,
			in: person(cdc.OpCreate, nil, cdc.Row{"id": int32(40000)}), wantErr: "out of range"},
		{name: "on_error set_null", stages: `[{cast: {fields: {status: int32}, on_error: set_null}}]`,
			in: person(cdc.OpCreate, nil, in), want: []cdc.Record{person(cdc.OpCreate, nil, cdc.Row{"id": int32(7), "name": "12", "status": nil,
				"amount": cdc.Decimal("12.000"), "born": date(2001, 2, 3), "doc": nil})}},
		{name: "absent stays absent, the key is cast too", stages: `[{cast: {fields: {id: string, name: bytes}}}]`,
			in:   person(cdc.OpDelete, cdc.Row{"id": int32(7)}, nil),
			want: []cdc.Record{{Table: people, Op: cdc.OpDelete, Key: cdc.Row{"id": "7"}, Before: cdc.Row{"id": "7"}}}},
		{name: "unicode text to bytes", stages: `[{cast: {fields: {name: bytes, status: uuid}}}]`,
			in:   person(cdc.OpCreate, nil, cdc.Row{"id": int32(1), "name": "日本", "status": "{6AE909D4-7A22-56F6-9019-388E2235CC94}"}),
			want: []cdc.Record{person(cdc.OpCreate, nil, cdc.Row{"id": int32(1), "name": []byte("日本"), "status": "6ae909d4-7a22-56f6-9019-388e2235cc94"})}},
		{name: "a wrong type", stages: `[{cast: {fields: {born: int32}}}]`,
			in: person(cdc.OpCreate, nil, in), wantErr: "cannot convert timestamp"},
		{name: "arrays", stages: `[{cast: {fields: {doc: 'int32[]'}}}]`,
			in:   person(cdc.OpCreate, nil, cdc.Row{"id": int32(1), "doc": cdc.JSON(`[1, 2, null]`)}),
			want: []cdc.Record{person(cdc.OpCreate, nil, cdc.Row{"id": int32(1), "doc": []any{int32(1), int32(2), nil}})}},
	})
}

func TestMapValues(t *testing.T) {
	row := func(status any) cdc.Row { return cdc.Row{"id": int32(1), "status": status} }
	files := fstest.MapFS{
		"codes.csv":  {Data: []byte("A,Active\nC,\"Closed, for good\"\n")},
		"codes.yaml": {Data: []byte("A: Active\nX: null\n1: one\n")},
	}
	runCases(t, []stageCase{
		{name: "mapped", stages: `[{map_values: {field: status, values: {A: Active, C: Closed}}}]`,
			in: person(cdc.OpUpdate, row("C"), row("A")), want: []cdc.Record{person(cdc.OpUpdate, row("Closed"), row("Active"))}},
		{name: "unmapped is an error", stages: `[{map_values: {field: status, values: {A: Active}}}]`,
			in: person(cdc.OpCreate, nil, row("Ω")), wantErr: `status: no mapping for string "Ω"`},
		{name: "default", stages: `[{map_values: {field: status, values: {A: Active}, default: Other}}]`,
			in: person(cdc.OpCreate, nil, row("B")), want: []cdc.Record{person(cdc.OpCreate, nil, row("Other"))}},
		{name: "keep", stages: `[{map_values: {field: status, values: {A: Active}, unmapped: keep}}]`,
			in: person(cdc.OpCreate, nil, row("B")), want: []cdc.Record{person(cdc.OpCreate, nil, row("B"))}},
		{name: "null and NULL", stages: `[{map_values: {field: status, values: {A: null}, unmapped: set_null}}]`,
			in: person(cdc.OpUpdate, row(nil), row("A")), want: []cdc.Record{person(cdc.OpUpdate, row(nil), row(nil))}},
		{name: "integer codes to integers", stages: `[{map_values: {field: id, values: {1: 100}, type: int32}}]`,
			in: person(cdc.OpCreate, nil, row("A")),
			want: []cdc.Record{withSchema(func() cdc.Record {
				r := person(cdc.OpCreate, nil, cdc.Row{"id": int32(100), "status": "A"})
				return r
			}(), addColumns(cdc.Column{Name: "id", Kind: cdc.KindInt32, Nullable: true}))}, schemas: true},
		{name: "absent stays absent", stages: `[{map_values: {field: status, values: {A: B}}}]`,
			in: person(cdc.OpCreate, nil, cdc.Row{"id": int32(1)}), want: []cdc.Record{person(cdc.OpCreate, nil, cdc.Row{"id": int32(1)})}},
		{name: "a CSV file", stages: `[{map_values: {field: status, file: codes.csv}}]`,
			in: person(cdc.OpCreate, nil, row("C")), want: []cdc.Record{person(cdc.OpCreate, nil, row("Closed, for good"))}},
		{name: "a YAML file", stages: `[{map_values: {field: status, file: ./codes.yaml}}]`,
			in: person(cdc.OpUpdate, row("X"), row("A")), want: []cdc.Record{person(cdc.OpUpdate, row(nil), row("Active"))}},
	}, WithFS(files))
	for _, bad := range []struct{ stages, want string }{
		{`[{map_values: {field: s, file: nope.csv}}]`, "stages[0].map_values.file: open nope.csv"},
		{`[{map_values: {field: s, values: {a: x}, type: int32}}]`, "stages[0].map_values.values.a: cannot convert"},
		{`[{map_values: {field: s, file: dup.csv}}]`, `stages[0].map_values.file: dup.csv:2: "a" is mapped twice`},
	} {
		_, err := compileYAML(t, bad.stages, WithFS(fstest.MapFS{"dup.csv": {Data: []byte("a,1\na,2\n")}}))
		if err == nil || len(err.Error()) < len(bad.want) || err.Error()[:len(bad.want)] != bad.want {
			t.Errorf("%s: got %v, want %s...", bad.stages, err, bad.want)
		}
	}
}

func TestUUID5(t *testing.T) {
	// Python: uuid.uuid5(uuid.NAMESPACE_DNS, "python.org")
	if got, _ := uuid5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "python.org"); got != "886313e1-3b8a-5372-9b90-0c9aee199e5d" {
		t.Errorf("uuid5 = %s", got)
	}
	// uuid5(uuid5(nil, "person"), "7")
	const p7 = "6ae909d4-7a22-56f6-9019-388e2235cc94"
	row := cdc.Row{"id": int32(7), "name": "a/b", "status": `c\d`}
	runCases(t, []stageCase{
		{name: "the key", stages: `[{uuid5: {field: id, namespace: person, from: [id]}}]`,
			in: person(cdc.OpCreate, nil, row),
			want: []cdc.Record{withSchema(cdc.Record{Table: people, Op: cdc.OpCreate, Key: cdc.Row{"id": p7},
				After: cdc.Row{"id": p7, "name": "a/b", "status": `c\d`}}, addColumns(cdc.Column{Name: "id", Kind: cdc.KindUUID, Nullable: true}))}, schemas: true},
		{name: "same as the helper, parts escaped", stages: `[{uuid5: {field: a, namespace: person, from: [name, status]}}, {set: {field: b, expr: 'uuid5("person", [row.name, row.status])'}}]`,
			in: person(cdc.OpCreate, nil, row), want: []cdc.Record{person(cdc.OpCreate, nil, cdc.Row{"id": int32(7), "name": "a/b", "status": `c\d`,
				"a": "dc2d817d-84ee-5c87-8ce4-5b0d9c2dd7ea", "b": "dc2d817d-84ee-5c87-8ce4-5b0d9c2dd7ea"})}},
		{name: "a NULL part gives NULL", stages: `[{uuid5: {field: ref, namespace: person, from: [name]}}]`,
			in: person(cdc.OpCreate, nil, cdc.Row{"id": int32(7), "name": nil}), want: []cdc.Record{person(cdc.OpCreate, nil, cdc.Row{"id": int32(7), "name": nil, "ref": nil})}},
		{name: "a delete's partial before image", stages: `[{uuid5: {field: ref, namespace: person, from: [name]}}]`,
			in: person(cdc.OpDelete, cdc.Row{"id": int32(7)}, nil), want: []cdc.Record{person(cdc.OpDelete, cdc.Row{"id": int32(7)}, nil)}},
		{name: "a field the table does not have", stages: `[{uuid5: {field: ref, namespace: person, from: [nick]}}]`,
			in: person(cdc.OpCreate, nil, row), wantErr: `the record has no field "nick"`},
		{name: "a key from non-key fields of a delete", stages: `[{uuid5: {field: id, namespace: person, from: [name]}}]`,
			in: person(cdc.OpDelete, cdc.Row{"id": int32(7)}, nil), wantErr: `key field "id" cannot be computed from the key alone`},
	})
}
