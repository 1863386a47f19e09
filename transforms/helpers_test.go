package transforms

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// stageCase is one table-driven stage test: stages in YAML, an input
// record, and the records wanted, or a part of the error wanted.
type stageCase struct {
	name    string
	stages  string
	in      cdc.Record
	want    []cdc.Record
	wantErr string
	// schemas, when false, leaves the output schemas out of the comparison.
	schemas bool
}

var testClock = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// compileYAML compiles stages written as a YAML list, with the test clock.
func compileYAML(t testing.TB, stages string, opts ...Option) (*Chain, error) {
	t.Helper()
	opts = append([]Option{WithClock(func() time.Time { return testClock })}, opts...)
	return Compile(mustStages(t, stages), opts...)
}

// mustStages parses stages written as a YAML list.
func mustStages(t testing.TB, stages string) []spec.Stage {
	t.Helper()
	specs, err := spec.Parse([]byte("kind: Pipeline\nname: p\nfrom: {source: s}\nsink: {postgres: {dsn: x}}\nstages: "+stages+"\n"), "p.yaml")
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	return specs[0].(*spec.Pipeline).Stages
}

func runCases(t *testing.T, cases []stageCase, opts ...Option) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			chain, err := compileYAML(t, tt.stages, opts...)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			before := deepCopy(tt.in)
			got, err := chain.Apply(context.Background(), tt.in)
			if d := cmp.Diff(before, tt.in); d != "" {
				t.Errorf("the input record changed (-before +after):\n%s", d)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			opts := []cmp.Option{cmpopts.EquateEmpty()}
			if !tt.schemas {
				opts = append(opts, cmpopts.IgnoreFields(cdc.Record{}, "Schema"))
			}
			if d := cmp.Diff(tt.want, got, opts...); d != "" {
				t.Errorf("output (-want +got):\n%s", d)
			}
		})
	}
}

// deepCopy copies a record's rows and schema, so that a change to the
// original shows in a comparison.
func deepCopy(r cdc.Record) cdc.Record {
	r.Key, r.Before, r.After = maps.Clone(r.Key), maps.Clone(r.Before), maps.Clone(r.After)
	if r.Schema != nil {
		s := *r.Schema
		s.Columns, s.Key = slices.Clone(s.Columns), slices.Clone(s.Key)
		r.Schema = &s
	}
	return r
}

var people = cdc.TableID{Schema: "public", Name: "people"}

// peopleSchema is the schema of the records the tests use.
func peopleSchema() *cdc.TableSchema {
	return &cdc.TableSchema{Table: people, Key: []string{"id"}, Columns: []cdc.Column{
		{Name: "id", Kind: cdc.KindInt32, SourceType: "integer"},
		{Name: "name", Kind: cdc.KindString, SourceType: "character varying(20)", Length: 20, Nullable: true},
		{Name: "status", Kind: cdc.KindString, SourceType: "text", Nullable: true},
		{Name: "amount", Kind: cdc.KindDecimal, SourceType: "numeric(10,2)", Nullable: true},
		{Name: "born", Kind: cdc.KindDate, SourceType: "date", Nullable: true},
		{Name: "doc", Kind: cdc.KindJSON, SourceType: "jsonb", Nullable: true},
	}}
}

// person is a record of people: op, before and after; the key is taken
// from the image's id.
func person(op cdc.Op, before, after cdc.Row) cdc.Record {
	r := cdc.Record{Table: people, Op: op, Before: before, After: after, Schema: peopleSchema()}
	img := after
	if img == nil {
		img = before
	}
	r.Key = cdc.Row{"id": img["id"]}
	return r
}

// withSchema returns r with schema s.
func withSchema(r cdc.Record, s *cdc.TableSchema) cdc.Record {
	r.Schema = s
	return r
}

// addColumns returns peopleSchema with columns replaced or added.
func addColumns(cols ...cdc.Column) *cdc.TableSchema {
	s := peopleSchema()
	for _, c := range cols {
		if i := slices.IndexFunc(s.Columns, func(x cdc.Column) bool { return x.Name == c.Name }); i >= 0 {
			s.Columns[i] = c
		} else {
			s.Columns = append(s.Columns, c)
		}
	}
	return s
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
