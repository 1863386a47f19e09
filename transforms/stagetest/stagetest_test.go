package stagetest

import (
	"strings"
	"testing"

	"github.com/sluice-cdc/sluice/pipelines/spec"
)

const head = "kind: Pipeline\nname: p\nfrom: {source: s, tables: [public.t]}\nsink: {postgres: {dsn: x}}\n"

func pipeline(t *testing.T, body string) *spec.Pipeline {
	t.Helper()
	specs, err := spec.Parse([]byte(head+body), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return specs[0].(*spec.Pipeline)
}

func TestRunPasses(t *testing.T) {
	p := pipeline(t, `stages:
  - cast: {fields: {n: int32, d: decimal, u: uuid}}
  - set: {field: at, expr: 'now()'}
  - set: {field: doc2, expr: 'row.doc', type: string}
tests:
  - name: values of every sort
    input:
      op: u
      key: {id: 1}
      before: {id: 1, n: 1}
      after: {id: 1, n: "7", d: 1.5, u: 6AE909D4-7A22-56F6-9019-388E2235CC94, doc: {a: [1, "ü"]}, l: [1, null],
              t: 2024-01-02T03:04:05Z, b: !!binary aGk=, x: !int16 3, nothing: null}
    expect:
      - op: u
        table: public.t
        key: {id: 1}
        before: {id: 1, n: 1, at: 2000-01-01T00:00:00Z}
        after: {id: 1, n: 7, d: "1.50", u: 6ae909d4-7a22-56f6-9019-388e2235cc94, doc: {a: [1, "ü"]}, doc2: '{"a":[1,"ü"]}',
                l: [1, null], t: "2024-01-02T03:04:05Z", b: !!binary aGk=, x: !int16 3, nothing: null, at: 2000-01-01T00:00:00Z}
  - name: dropped by a filter elsewhere is no records
    input: {op: d, key: {id: 2}}
    expect: [{op: d, key: {id: 2}, after: null}]
  - name: an error
    input: {op: c, after: {id: 3, n: "x"}}
    expect_error: 'cannot convert string "x" to int32'
`)
	results, err := Run(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 3 {
		t.Fatalf("%d results", len(results))
	}
	for _, r := range results {
		if !r.Passed {
			t.Error(r.Report())
		}
	}
}

func TestRunFailures(t *testing.T) {
	p := pipeline(t, `stages:
  - rename: {fields: {name: label}}
tests:
  - name: wrong values
    input: {op: c, after: {id: 1, name: Zoë, n: 5}}
    expect:
      - op: u
        table: public.other
        after: {id: 1, label: Zoe, n: "5", extra: 1}
  - name: wrong count
    input: {op: c, after: {id: 1, name: x}}
    expect: []
  - name: no error
    input: {op: c, after: {id: 1}}
    expect_error: boom
  - name: a tagged type must match
    input: {op: c, after: {id: 1, n: 5}}
    expect: [{after: {id: 1, n: !int32 5}}]
`)
	results, err := Run(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{`record[0].op: want u, got c`, `record[0].table: want public.other, got public.t`,
			`record[0].after.label: want "Zoe", got "Zoë" (string)`, `record[0].after.n: want "5", got 5 (int64)`,
			`record[0].after.extra: want 1, got no such field`},
		{`want 0 record(s), got 1`, `      - {op: c, table: public.t, key: {id: 1}, after: {id: 1, label: "x"}}`},
		{`want an error containing "boom", got 1 record(s)`},
		{`record[0].after.n: want !int32 5, got 5 (int64)`},
	}
	for i, r := range results {
		if r.Passed {
			t.Errorf("%s passed", r.Name)
		}
		rep := r.Report()
		if !strings.HasPrefix(rep, "FAIL "+r.Name) {
			t.Errorf("report %q", rep)
		}
		for _, w := range want[i] {
			if !strings.Contains(rep, w) {
				t.Errorf("%s: report lacks %q:\n%s", r.Name, w, rep)
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ tests, want string }{
		{"tests: {a: 1}", "tests: want a list of tests (line 5)"},
		{"tests:\n  - {input: {op: c, after: {}}, expect: []}", "tests[0].name: want the test's name (line 6)"},
		{"tests:\n  - {name: a, expect: []}", "tests[0].input: required (line 6)"},
		{"tests:\n  - {name: a, input: {op: x}, expect: []}", "tests[0].input.op: want r, c, u or d (line 6)"},
		{"tests:\n  - {name: a, input: {op: c}, expect: []}", "tests[0].input.after: required for op c (line 6)"},
		{"tests:\n  - {name: a, input: {op: c, after: {}}}", "tests[0]: want one of expect or expect_error (line 6)"},
		{"tests:\n  - {name: a, input: {op: c, after: {}}, expect: [], bogus: 1}", "tests[0].bogus: unknown field (want name, input, expect, expect_error) (line 6)"},
		{"tests:\n  - {name: a, input: {op: c, after: {x: !int8 1}}, expect: []}", "tests[0].input.after.x: tag !int8: unknown type"},
		{"tests:\n  - {name: a, input: {op: c, after: {x: !int16 99999}}, expect: []}", "tests[0].input.after.x: cannot convert string \"99999\" to int16: out of range"},
		{"tests:\n  - {name: a, input: {op: c, after: {}}, expect: [{after: [1]}]}", "tests[0].expect[0].after: want a mapping of fields to values, or null"},
		{"tests:\n  - {name: a, input: {op: c, after: {}}, expect: []}\n  - {name: a, input: {op: c, after: {}}, expect: []}", "tests[1].name: duplicate of tests[0].name"},
		{"tests:\n  - &a {name: a, input: {op: c, after: {x: [*a, *a]}}, expect: []}", "nested too deeply or too large"},
	}
	for _, tt := range tests {
		_, err := Run(t.Context(), pipeline(t, tt.tests+"\n"))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s:\ngot  %v\nwant %s", tt.tests, err, tt.want)
		}
		for _, fe := range spec.FieldErrors(err) {
			if !strings.HasPrefix(fe.Path, "tests") {
				t.Errorf("path %q", fe.Path)
			}
		}
	}
}

func TestRunCompileError(t *testing.T) {
	_, err := Run(t.Context(), pipeline(t, "stages: [{filter: {expr: 'after.status !=== ('}}]\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "stages[0].filter.expr: 1:16: syntax error") {
		t.Fatalf("got %v", err)
	}
}
