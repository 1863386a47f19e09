package transforms

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

func TestSplit(t *testing.T) {
	row := cdc.Row{"id": int32(1), "name": "a", "status": "x"}
	names := person(cdc.OpCreate, nil, cdc.Row{"id": int32(1), "name": "a"})
	names.Table = cdc.TableID{Schema: "public", Name: "names"}
	runCases(t, []stageCase{
		{name: "two branches", stages: `[{split: [{}, {stages: [{rename: {table: names}}, {keep: [name]}]}]}]`,
			in: person(cdc.OpCreate, nil, row), want: []cdc.Record{person(cdc.OpCreate, nil, row), names}},
		{name: "a branch that drops", stages: `[{split: [{stages: [{filter: {expr: 'false'}}]}, {}]}, {drop: [status]}]`,
			in: person(cdc.OpCreate, nil, row), want: []cdc.Record{person(cdc.OpCreate, nil, cdc.Row{"id": int32(1), "name": "a"})}},
		{name: "an error names the inner stage", stages: `[{split: [{}, {stages: [{set: {field: x, expr: 'row.nope', type: string}}]}]}]`,
			in: person(cdc.OpCreate, nil, row), wantErr: "stages[0].split[1].stages[0].set: x: no such key: nope"},
	})
}

func TestMaskAndHash(t *testing.T) {
	t.Setenv("TEST_SALT", "pepper")
	row := cdc.Row{"id": int32(1), "name": "Jürgen Groß", "status": "+41 79 123 45 67", "amount": cdc.Decimal("12.34"), "born": nil}
	// HMAC-SHA256("pepper", "Jürgen Groß"): python3 -c 'import hmac,hashlib;
	// print(hmac.new(b"pepper", "Jürgen Groß".encode(), hashlib.sha256).hexdigest())'
	const h = "278aec86ee8d9e443736488e6ae7fd9aafa3c7a918569f6f1ef8434d4f7f7d3e"
	runCases(t, []stageCase{
		{name: "mask runes", stages: `[{mask: {fields: [name, status, amount, born], keep_last: 2, keep_first: 1, char: '•'}}]`,
			in: person(cdc.OpCreate, nil, row), want: []cdc.Record{withSchema(person(cdc.OpCreate, nil, cdc.Row{"id": int32(1),
				"name": "J••••••••oß", "status": "+•••••••••••••67", "amount": "1••34", "born": nil}), addColumns(
				cdc.Column{Name: "name", Kind: cdc.KindString, Nullable: true}, cdc.Column{Name: "status", Kind: cdc.KindString, Nullable: true},
				cdc.Column{Name: "amount", Kind: cdc.KindString, Nullable: true}, cdc.Column{Name: "born", Kind: cdc.KindString, Nullable: true}))},
			schemas: true},
		{name: "mask everything", stages: `[{mask: {fields: [name]}}]`,
			in: person(cdc.OpCreate, nil, cdc.Row{"id": int32(1), "name": "ab"}), want: []cdc.Record{person(cdc.OpCreate, nil, cdc.Row{"id": int32(1), "name": "**"})}},
		{name: "hash", stages: `[{hash: {fields: [name, born], salt: '${env:TEST_SALT}'}}]`,
			in: person(cdc.OpCreate, nil, row), want: []cdc.Record{person(cdc.OpCreate, nil, cdc.Row{"id": int32(1),
				"name": h, "status": "+41 79 123 45 67", "amount": cdc.Decimal("12.34"), "born": nil})}},
		{name: "hash a key field", stages: `[{hash: {fields: [id], salt: '${env:TEST_SALT}'}}]`,
			in: person(cdc.OpDelete, cdc.Row{"id": int32(1)}, nil), want: []cdc.Record{{Table: people, Op: cdc.OpDelete,
				Key:    cdc.Row{"id": "13c71d08eed0daa49c1292d5877aad4b1cbc4707a5c631693fe684ebb7b91ebd"},
				Before: cdc.Row{"id": "13c71d08eed0daa49c1292d5877aad4b1cbc4707a5c631693fe684ebb7b91ebd"}}}},
	})
	_, err := compileYAML(t, `[{hash: {fields: [a], salt: '${env:NO_SUCH_SALT_VAR}'}}]`)
	if err == nil || !strings.Contains(err.Error(), "stages[0].hash.salt: resolving ${env:NO_SUCH_SALT_VAR}") {
		t.Errorf("got %v", err)
	}
	t.Setenv("EMPTY_SALT", "")
	_, err = compileYAML(t, `[{hash: {fields: [a], salt: '${env:EMPTY_SALT}'}}]`)
	if err == nil || !strings.Contains(err.Error(), "the salt is empty") {
		t.Errorf("got %v", err)
	}
}

func TestFlatten(t *testing.T) {
	doc := cdc.JSON(`{"type": "HC", "geo": {"lat": 1.5, "tags": ["a", "ü"]}, "n": 12, "on": true, "none": null}`)
	runCases(t, []stageCase{
		{name: "paths, types, the field removed", stages: `[{flatten: {field: doc, columns: {type: type, lat: geo.lat, tag: geo.tags.1, n: n, on: on, geo: geo, none: none, missing: x.y}, types: {lat: float64, n: int32, on: bool}}}]`,
			in: person(cdc.OpCreate, nil, cdc.Row{"id": int32(1), "doc": doc}),
			want: []cdc.Record{withSchema(person(cdc.OpCreate, nil, cdc.Row{"id": int32(1), "type": "HC", "lat": 1.5, "tag": "ü", "n": int32(12),
				"on": true, "geo": `{"lat":1.5,"tags":["a","ü"]}`, "none": nil, "missing": nil}), func() *cdc.TableSchema {
				s := addColumns(
					cdc.Column{Name: "geo", Kind: cdc.KindString, Nullable: true}, cdc.Column{Name: "lat", Kind: cdc.KindFloat64, Nullable: true},
					cdc.Column{Name: "missing", Kind: cdc.KindString, Nullable: true}, cdc.Column{Name: "n", Kind: cdc.KindInt32, Nullable: true},
					cdc.Column{Name: "none", Kind: cdc.KindString, Nullable: true}, cdc.Column{Name: "on", Kind: cdc.KindBool, Nullable: true},
					cdc.Column{Name: "tag", Kind: cdc.KindString, Nullable: true}, cdc.Column{Name: "type", Kind: cdc.KindString, Nullable: true})
				s.Columns = append(s.Columns[:5], s.Columns[6:]...) // doc removed
				return s
			}())}, schemas: true},
		{name: "keep, NULL and absent", stages: `[{flatten: {field: doc, columns: {t: type}, keep: true}}]`,
			in:   person(cdc.OpUpdate, cdc.Row{"id": int32(1)}, cdc.Row{"id": int32(1), "doc": nil}),
			want: []cdc.Record{person(cdc.OpUpdate, cdc.Row{"id": int32(1)}, cdc.Row{"id": int32(1), "doc": nil, "t": nil})}},
		{name: "a value that does not convert", stages: `[{flatten: {field: doc, columns: {t: type}, types: {t: int64}}}]`,
			in: person(cdc.OpCreate, nil, cdc.Row{"id": int32(1), "doc": doc}), wantErr: `t: cannot convert string "HC" to int64`},
		{name: "not JSON", stages: `[{flatten: {field: doc, columns: {t: type}}}]`,
			in: person(cdc.OpCreate, nil, cdc.Row{"id": int32(1), "doc": "{oops"}), wantErr: "not a JSON document"},
		{name: "the key cannot go", stages: `[{flatten: {field: id, columns: {t: type}}}]`,
			in: person(cdc.OpCreate, nil, cdc.Row{"id": int32(1)}), wantErr: "flatten: the field holds integer"},
	})
}

func TestUnwrap(t *testing.T) {
	commit := time.UnixMilli(1700000000123).UTC()
	rec := func(op cdc.Op, before, after cdc.Row) cdc.Record {
		r := person(op, before, after)
		r.CommitTime, r.TxID = commit, "77"
		r.Source = cdc.SourceInfo{DB: "elmis", Extra: map[string]any{"lsn": int64(99)}}
		return r
	}
	row := cdc.Row{"id": int32(1), "name": "a"}
	meta := func(r cdc.Row, op string) cdc.Row {
		out := cdc.Row{"__op": op, "__table": "people", "__source_ts_ms": int64(1700000000123), "__lsn": int64(99)}
		for k, v := range r {
			out[k] = v
		}
		return out
	}
	runCases(t, []stageCase{
		{name: "an update keeps after, with metadata", stages: `[{unwrap: {add: [op, table, source.ts_ms, lsn]}}]`,
			in: rec(cdc.OpUpdate, row, row), want: []cdc.Record{withSchema(rec(cdc.OpUpdate, nil, meta(row, "u")), addColumns(
				cdc.Column{Name: "__op", Kind: cdc.KindString, Nullable: true}, cdc.Column{Name: "__table", Kind: cdc.KindString, Nullable: true},
				cdc.Column{Name: "__source_ts_ms", Kind: cdc.KindInt64, Nullable: true}, cdc.Column{Name: "__lsn", Kind: cdc.KindInt64, Nullable: true}))},
			schemas: true},
		{name: "a delete kept", stages: `[{unwrap: {}}]`, in: rec(cdc.OpDelete, row, nil), want: []cdc.Record{rec(cdc.OpDelete, row, nil)}},
		{name: "a delete dropped", stages: `[{unwrap: {delete: drop}}]`, in: rec(cdc.OpDelete, row, nil)},
		{name: "a delete rewritten", stages: `[{unwrap: {delete: rewrite, add: [op]}}]`,
			in:   rec(cdc.OpDelete, cdc.Row{"id": int32(1)}, nil),
			want: []cdc.Record{rec(cdc.OpUpdate, nil, cdc.Row{"id": int32(1), "__op": "d", "__deleted": true})}},
		{name: "rewrite marks the others", stages: `[{unwrap: {delete: rewrite}}]`,
			in: rec(cdc.OpCreate, nil, row), want: []cdc.Record{rec(cdc.OpCreate, nil, cdc.Row{"id": int32(1), "name": "a", "__deleted": false})}},
	})
}

func TestCheckNeedsNoSecretsOrFiles(t *testing.T) {
	specs := `[{hash: {fields: [a], salt: '${env:NOT_SET_ANYWHERE}'}}, {map_values: {field: s, file: /no/such/file.csv}}]`
	if _, err := compileYAML(t, specs); err == nil {
		t.Fatal("Compile resolved nothing")
	}
	chain, err := compileYAML(t, "[]")
	if err != nil || chain.Len() != 0 {
		t.Fatal(err)
	}
	p := mustStages(t, specs)
	if err := Check(p); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := Check(mustStages(t, `[{filter: {expr: '1'}}]`)); err == nil || !strings.Contains(err.Error(), "stages[0].filter.expr") {
		t.Fatalf("Check: %v", err)
	}
}
