package transforms

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// fuzzRecords are the records the expression fuzzers evaluate on: a full
// row with a schema, a delete's key-only image, a row without a schema,
// and one whose values come from the fuzzer.
func fuzzRecords(s string, n int64, doc string) []cdc.Record {
	full := person(cdc.OpCreate, nil, cdc.Row{"id": int32(n), "name": s, "status": "open", "amount": cdc.Decimal("1.50"),
		"born": date(2000, 1, 2), "doc": cdc.JSON(doc)})
	return []cdc.Record{
		full,
		person(cdc.OpDelete, cdc.Row{"id": int32(1)}, nil),
		{Op: cdc.OpUpdate, Before: cdc.Row{"x": nil}, After: cdc.Row{"x": []any{n, s, nil}, "t": time.Unix(n, 0).UTC(), "b": []byte(s)}},
		{Op: cdc.OpRead, After: cdc.Row{"doc": cdc.JSON(doc), "n": n, "f": float64(n) / 3, "i": cdc.Interval{Months: 1}, "inf": cdc.Infinity{Sign: -1}}},
	}
}

// FuzzFilter checks that no expression panics, whatever it computes on
// whatever record, and that a filter returns its input or nothing.
func FuzzFilter(f *testing.F) {
	for _, e := range []string{`after.status != "DRAFT"`, `row.id > 3 && has(row.name)`, `row.doc.a.b[0] == 1`,
		`size(row.name) > 2`, `row.?x.orValue(1) == 1`, `[1, 2].exists(x, x == row.n)`, `uuid5("a", row.id) != ""`,
		`lower(row.name).contains("ß")`, `row.t < now()`, `row.f / 0.0 > 1.0`, `int(row.amount) == 1`} {
		f.Add(e, "Zoë", int64(3), `{"a": {"b": [1]}}`)
	}
	f.Fuzz(func(t *testing.T, expr, s string, n int64, doc string) {
		chain, err := Compile([]spec.Stage{{Filter: &spec.FilterStage{Expr: expr}}})
		if err != nil {
			return
		}
		for _, r := range fuzzRecords(s, n, doc) {
			out, err := chain.Apply(context.Background(), r)
			if err == nil && len(out) > 1 {
				t.Fatalf("a filter returned %d records", len(out))
			}
		}
	})
}

// FuzzSet checks that no expression panics, and that whatever a set stage
// writes is of the kind its output schema says.
func FuzzSet(f *testing.F) {
	for _, e := range []string{`row.id * 2`, `string(row.amount) + "x"`, `{"a": [1, 2.5, null]}`, `row.doc`, `b"\xff"`,
		`timestamp("2024-01-02T03:04:05Z") + duration("1ns")`, `row.x`, `[row.n, row.n]`, `uuid5("ns", [row.id, row.name])`,
		`18446744073709551615u`, `null`, `optional.of(1)`, `dyn(row.f)`} {
		f.Add(e, "", "snow ☃", int64(-9))
		f.Add(e, "int16", "1", int64(1<<40))
		f.Add(e, "json", `"x"`, int64(0))
	}
	types := []string{"", "bool", "int16", "int32", "int64", "float32", "float64", "decimal", "string", "bytes",
		"date", "time", "timestamp", "timestamptz", "interval", "uuid", "json", "int32[]", "string[]"}
	f.Fuzz(func(t *testing.T, expr, typ, s string, n int64) {
		if typ != "" {
			if _, _, err := spec.ParseType(typ); err != nil {
				typ = types[uint64(n)%uint64(len(types))]
			}
		}
		chain, err := Compile([]spec.Stage{{Set: &spec.SetStage{Field: "name", Expr: expr, Type: typ}}})
		if err != nil {
			return
		}
		for _, r := range fuzzRecords(s, n, s) {
			out, err := chain.Apply(context.Background(), r)
			if err != nil {
				continue
			}
			for _, o := range out {
				checkKinds(t, o)
			}
		}
	})
}

// checkKinds fails when a value of r is not of its column's Go type.
func checkKinds(t *testing.T, r cdc.Record) {
	t.Helper()
	if r.Schema == nil {
		return
	}
	for _, row := range []cdc.Row{r.Key, r.Before, r.After} {
		for name, v := range row {
			c, ok := r.Schema.Column(name)
			if !ok || v == nil {
				continue
			}
			if _, err := convert(v, c.Kind, c.Elem); err != nil {
				t.Fatalf("%s holds %T (%v), the schema says %s: %v", name, v, v, c.Kind, err)
			}
			if got, _ := convert(v, c.Kind, c.Elem); !sameGoType(got, v) {
				t.Fatalf("%s holds %T, the schema says %s (%T)", name, v, c.Kind, got)
			}
		}
	}
}

func sameGoType(a, b any) bool {
	switch a.(type) {
	case []any:
		_, ok := b.([]any)
		return ok
	}
	return a == nil || b == nil || typeOf(a) == typeOf(b)
}

func typeOf(v any) string {
	switch v.(type) {
	case cdc.Infinity, time.Time:
		return "time"
	}
	return fmtType(v)
}

// FuzzConvert checks that the conversion rules never panic, and that a
// converted value converts to the same kind again unchanged.
func FuzzConvert(f *testing.F) {
	for _, s := range []string{"12", "-1.5e3", "NaN", "2024-01-02 03:04:05.5+02", "true", `{"a": [1]}`, "[1, null]",
		"6ae909d4-7a22-56f6-9019-388e2235cc94", "10:11:12", "infinity", "ß", "1e999999"} {
		f.Add(s, uint8(cdc.KindInt32), uint8(cdc.KindInt32))
	}
	f.Fuzz(func(t *testing.T, s string, kind, elem uint8) {
		k, e := cdc.Kind(kind%20), cdc.Kind(elem%20)
		v, err := convert(s, k, e)
		if err != nil || v == nil {
			return
		}
		again, err := convert(v, k, e)
		if err != nil {
			t.Fatalf("%q as %s = %#v, which does not convert again: %v", s, k, v, err)
		}
		if text(again, k) != text(v, k) {
			t.Fatalf("%q as %s = %#v, then %#v", s, k, v, again)
		}
	})
}

func fmtType(v any) string { return fmt.Sprintf("%T", v) }
